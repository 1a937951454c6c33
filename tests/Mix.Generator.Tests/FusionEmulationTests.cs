using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Mix.Generated.Models;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The generated regions end to end without a GPU: each region's kernel (the generator's CUDA inside the runtime's
/// launch skeleton) is compiled as C++ with the CUDA built-ins emulated (one OS thread per CUDA thread, block barriers
/// for <c>__syncthreads</c> and shuffles), launched with the argument block the runtime's host code prepares, and
/// plugged into the generated forward through <see cref="FusedRegion"/>'s test hook. Whole forwards with every region
/// emulated must match the same forwards on the reference lambdas: float32, 1e-5 relative. Needs g++ (C++20).
/// </summary>
// Counts launches through ForwardCost's process-wide counters: never beside another class that runs emulated regions.
[Collection(nameof(PlannerSwitchCollection))]
public class FusionEmulationTests
{
    public static IEnumerable<object[]> Cases() => new[]
    {
        new object[] { "fusion_gated" }, new object[] { "fusion_pool" }, new object[] { "mamba2_lm" }, new object[] { "gla_lm" },
        new object[] { "softs" }, new object[] { "patchtsmixer" }, new object[] { "hybrid_lm" },
    };

    static (nn.Module<Tensor, Tensor>, Tensor) Model(string name) => name switch
    {
        "fusion_gated" => (new FusionGated(new FusionGated.Options { Dim = 8, Depth = 2 }), torch.randn(2, 8, 5, 7)),
        "fusion_pool" => (new FusionPool(new FusionPool.Options { Dim = 12 }), torch.randn(2, 7, 12)),
        "mamba2_lm" => (new Mamba2Lm(new Mamba2Lm.Options { VocabSize = 31, DModel = 64, NLayer = 1, DState = 8, ChunkSize = 8 }), torch.randint(0, 31, new long[] { 1, 9 })),
        "gla_lm" => (new GlaLm(new GlaLm.Options { VocabSize = 31, DModel = 32, NLayer = 1 }), torch.randint(0, 31, new long[] { 1, 9 })),
        "softs" => (new Softs(new Softs.Options { SeqLen = 12, PredLen = 5, EncIn = 3, DModel = 16, DCore = 8, DFf = 24, ELayers = 1 }), torch.randn(2, 12, 3)),
        "patchtsmixer" => (new Patchtsmixer(), torch.randn(1, 32, 3)),
        "hybrid_lm" => (new HybridLm(new HybridLm.Options { VocabSize = 31, DModel = 64, NLayer = 2, AttnEvery = 2 }), torch.randint(0, 31, new long[] { 1, 9 })),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Emulated_regions_match_the_reference_forward(string name)
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(11);
        var (model, x) = Model(name);
        model.eval();
        using var _ = torch.no_grad();
        var reference = model.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Tensor fused;
        try { fused = model.call(x); }
        finally { FusedRegion.Emulator = null; }
        Assert.True(emulator.Calls > 0, $"{name}: no region ran");
        Assert.Equal(reference.shape, fused.shape);
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"{name}: relative error {err} over regions {string.Join(", ", emulator.Regions)}");
    }

    [Fact]
    public void Forward_cost_counts_each_emulated_region_as_one_launch_and_fewer_torch_ops()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(11);
        var (model, x) = Model("fusion_gated");
        model.eval();
        using var _ = torch.no_grad();
        var reference = Mix.Runtime.Cuda.ForwardCost.Measure(() => { using var s = torch.NewDisposeScope(); model.call(x); });
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Mix.Runtime.Cuda.ForwardCost fused;
        try { fused = Mix.Runtime.Cuda.ForwardCost.Measure(() => { using var s = torch.NewDisposeScope(); model.call(x); }); }
        finally { FusedRegion.Emulator = null; }
        Assert.Equal(0, reference.Launches);
        Assert.Equal(emulator.Calls, fused.Launches);
        Assert.True(fused.Launches >= 4, $"{fused.Launches} launches for 2 blocks of norm + gate");
        // on the GPU a region creates one tensor (its output); the emulation's own reads and writes are not the forward's
        long fusedOps = fused.TorchOps - emulator.OwnTensors + emulator.Calls;
        Assert.True(fusedOps < reference.TorchOps, $"{fusedOps} torch ops with regions, {reference.TorchOps} without");
    }
}
