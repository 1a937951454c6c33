using Mix.Generated.Std;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// iFormer's layer-scale residual runs its fused region only where the drop path is the identity (eval, or training
/// without a rate) and the exact path where samples are dropped; fused (emulated by g++) against reference, 1e-5.
/// </summary>
/// <remarks>The training case draws the same drop masks twice from the process-wide torch generator after one seed, so
/// no other test may draw in between: a collection of its own that runs alone (it also keeps the emulator's launch
/// count to itself).</remarks>
[Collection(nameof(IformerDropPathRegionCollection))]
public class IformerDropPathRegionTests
{
    [Theory]
    [InlineData(false, 0.5, 2)]   // eval: the drop path is the identity
    [InlineData(true, 0.0, 2)]    // training without a drop rate: likewise
    [InlineData(true, 0.5, 0)]    // training with one: the exact path, samples dropped
    public void An_iformer_block_runs_its_regions_only_where_the_drop_path_is_the_identity(bool training, double rate, int calls)
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        using var block = new IformerBlock(new IformerBlock.Options(12, 2) { UseLayerScale = true, DropPathRate = rate, LayerScaleInitValue = 0.3 });
        block.train(training);
        using var _ = torch.no_grad();
        var x = torch.randn(3, 4, 4, 12);
        torch.manual_seed(7);
        var reference = block.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Tensor fused;
        torch.manual_seed(7);
        try { fused = block.call(x); }
        finally { FusedRegion.Emulator = null; }
        Assert.Equal(calls, emulator.Calls);
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"relative error {err}");
        if (training && rate > 0)
        {
            // some sample's branches were dropped: the output differs from the eval forward
            block.eval();
            Assert.False(block.call(x).allclose(fused, rtol: 1e-5, atol: 1e-6));
        }
    }
}

[CollectionDefinition(nameof(IformerDropPathRegionCollection), DisableParallelization = true)]
public sealed class IformerDropPathRegionCollection;
