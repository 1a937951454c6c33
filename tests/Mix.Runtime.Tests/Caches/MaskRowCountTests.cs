using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// A masked step of a <see cref="CausalModel"/> reads its mask's row counts once for every slot (each layer used to read
/// the mask back from the device itself: one synchronisation per layer and step on CUDA), and every slot still
/// advances by its rows' valid tokens.
/// </summary>
public class MaskRowCountTests
{
    [Fact]
    public void A_masked_step_reads_its_mask_once_whatever_the_number_of_layers()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(2);
        var model = new TinyMixLM();   // an attention slot and a Mamba slot (three counters of its own)
        model.eval();
        var lm = new CausalModel(model, 30);
        using var cache = lm.CreateCache(2);
        var ids = torch.randint(0, 30, new long[] { 2, 3 });
        var mask = torch.tensor(new long[] { 1, 1, 1, 0, 1, 1 }).reshape(2, 3);
        long before = CacheSlot.MaskReads;
        lm.Forward(ids, cache, mask);
        Assert.Equal(1, CacheSlot.MaskReads - before);
        Assert.All(cache.Slots, s => Assert.Equal(new long[] { 3, 2 }, s.RowTokens));
        // a step without a mask reads nothing
        before = CacheSlot.MaskReads;
        lm.Forward(ids.narrow(1, 0, 1), cache);
        Assert.Equal(0, CacheSlot.MaskReads - before);
        Assert.All(cache.Slots, s => Assert.Equal(new long[] { 4, 3 }, s.RowTokens));
    }
}
