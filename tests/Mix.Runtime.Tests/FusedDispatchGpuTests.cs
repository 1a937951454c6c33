using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The mixer call sites of generated code go through <see cref="MixDispatch.TokenMixer"/>: on CUDA without
/// gradients it takes the fused kernel, and the result equals the reference module's; <c>@fused(false)</c>
/// (allowFused: false) and the global switch keep the reference path.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class FusedDispatchGpuTests
{
    [Fact]
    public void DispatchHookIsRegisteredWhenTheRuntimeLoads()
    {
        // Runs everywhere: the hook exists and declines CPU inputs (the reference path runs there).
        System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(FusedMixers).Module.ModuleHandle);
        Assert.NotNull(MixDispatch.FusedMixer);
        using var g = new GlobalFilter(8, 4, 3);
        using var x = torch.randn(2, 16, 8);
        Assert.Null(FusedMixers.TryForward(g, x));
    }

    [Fact]
    public void PoolFormerBlockTakesTheFusedSubBlockAndMatchesTheReference()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        var m = ZooBlocks.PoolFormer(16, layerScale: 0.5).to(Gpu.Device);
        m.eval();
        var x = torch.randn(2, 16, 14, 14, device: Gpu.Device);
        var before = MixDispatch.FusedEnabled;
        using (torch.no_grad())
        {
            try
            {
                MixDispatch.FusedEnabled = false;
                var reference = m.forward(x);
                MixDispatch.FusedEnabled = true;
                var fused = m.forward(x);
                Assert.True(Gpu.RelErr(fused, reference) < 1e-5);
            }
            finally { MixDispatch.FusedEnabled = before; }
        }
    }

    [Fact]
    public void GlobalFilterCallSiteUsesTheFusedKernelAndMatchesTheReference()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        var g = new GlobalFilter(24, 7, 4).to(Gpu.Device);
        var x = torch.randn(3, 49, 24, device: Gpu.Device);
        using (torch.no_grad())
        {
            var reference = g.call(x);
            var fused = FusedMixers.TryForward(g, x);
            Assert.NotNull(fused);
            Assert.True(Gpu.RelErr(fused!, reference) < 1e-5);
            Assert.True(Gpu.RelErr(MixDispatch.TokenMixer(g, x), reference) < 1e-5);
            Assert.True(Gpu.RelErr(MixDispatch.TokenMixer(g, x, allowFused: false), reference) < 1e-6);
        }
        // With gradients the fused forward (no backward) must not be used.
        Assert.Null(FusedMixers.TryForward(g, x));
    }

    [Fact]
    public void MambaCallSiteUsesTheScanKernelAndFusedFalseKeepsTheReference()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var m = new MambaMixer(32, stateSize: 8).to(Gpu.Device);
        var x = torch.randn(2, 37, 32, device: Gpu.Device);
        using (torch.no_grad())
        {
            Tensor reference;
            using (SelectiveScan.SuppressKernel()) reference = m.call(x);
            var fused = MixDispatch.TokenMixer(m, x);
            Assert.NotNull(SelectiveScan.Kernel);
            Assert.True(Gpu.RelErr(fused, reference) < 2e-4);
            var off = MixDispatch.TokenMixer(m, x, allowFused: false);
            Assert.True(Gpu.RelErr(off, reference) < 1e-6);
        }
    }
}
