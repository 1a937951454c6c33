using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// The second buffers of <see cref="StateCacheSlot"/> that fused decoding steps write (read the state, write the spare,
/// swap): the state is never written in place, a committed step keeps the new value, a rolled-back step returns the
/// old one and keeps both buffers alive for the next step.
/// </summary>
public class StateSlotSpareTests
{
    private static StateCacheSlot Slot() => new(0, 2, new[] { new MixStateSpec("s", new long[] { 2, 3 }, ScalarType.Float32) });

    [Fact]
    public void SwapMakesTheSpareTheStateAndCommitKeepsIt()
    {
        using var slot = Slot();
        var old = slot.Get("s");
        var spare = slot.Spare("s");
        Assert.NotSame(old, spare);
        Assert.Same(spare, slot.Spare("s"));   // one spare per state, reused
        slot.BeginStep();
        spare.fill_(2.0f);
        slot.Swap("s");
        slot.CommitStep();
        Assert.Same(spare, slot.Get("s"));
        Assert.Equal(2.0f, slot.Get("s")[1, 2].item<float>());
        Assert.Same(old, slot.Spare("s"));     // the old state is the next step's spare
        Assert.Equal(0.0f, old[0, 0].item<float>());
    }

    [Fact]
    public void RollbackSwapsBackAndKeepsBothBuffers()
    {
        using var slot = Slot();
        var old = slot.Get("s");
        old.fill_(1.0f);
        var spare = slot.Spare("s");
        slot.BeginStep();
        spare.fill_(5.0f);
        slot.Swap("s");
        slot.RollbackStep();
        Assert.Same(old, slot.Get("s"));
        Assert.Equal(1.0f, slot.Get("s")[0, 1].item<float>());
        Assert.Same(spare, slot.Spare("s"));
        Assert.Equal(5.0f, spare[0, 0].item<float>());   // not disposed: still usable as the spare
    }

    [Fact]
    public void WorkspacesAndSparesCountInAllocatedBytes()
    {
        using var slot = Slot();
        long states = slot.AllocatedBytes;
        Assert.Equal(2 * 3 * 4, states);
        _ = slot.Spare("s");
        var w = slot.Workspace("w", new long[] { 4 }, ScalarType.Float32, torch.CPU);
        Assert.Same(w, slot.Workspace("w", new long[] { 4 }, ScalarType.Float32, torch.CPU));
        Assert.Equal(2 * states + 16, slot.AllocatedBytes);
    }
}
