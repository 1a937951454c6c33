using System.Collections.Generic;
using System.Linq;
using Mix.Runtime;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The runtime's NCHW channel LayerNorm regions (<see cref="NormRegions"/>) are the planner's: their sources, inputs,
/// axis and reductions equal what <see cref="FusionPlanner"/> and <see cref="CudaRegionEmitter"/> make of the norm
/// written in tensor math; and <see cref="LayerNorm2d"/> / <see cref="LayerNorm2dNoBias"/> with the region emulated
/// (g++, <see cref="RegionEmulator"/>) match their reference forwards, alone and inside a small CAFormer-shaped model.
/// </summary>
[Collection(nameof(PlannerSwitchCollection))]
public class NormRegionTests
{
    // d = x - mean(x, -3); d * rsqrt(mean(d * d, -3) + eps) * w (+ b)
    static (FusionGraph Graph, RegionPlan Region) LayerNormGraph(bool bias)
    {
        var nodes = new List<FusionNode>();
        int Add(FusionNode n) { nodes.Add(n); return nodes.Count - 1; }
        int In() => Add(new FusionNode("input", "", EquatableArray<int>.Empty));
        int B(string op, int a, int b) => Add(new FusionNode("binary", op, new[] { a, b }.ToEquatableArray()));
        int Mean(int a) => Add(new FusionNode("reduce", "mean", new[] { a }.ToEquatableArray(), -3, true));
        int x = In(), w = In(), b = bias ? In() : -1;
        int eps = Add(new FusionNode("scalar", "", EquatableArray<int>.Empty));
        int d = B("sub", x, Mean(x));
        int r = Add(new FusionNode("unary", "rsqrt", new[] { B("add", Mean(B("mul", d, d)), eps) }.ToEquatableArray()));
        int y = B("mul", B("mul", d, r), w);
        if (bias) B("add", y, b);
        var graph = new FusionGraph(nodes.ToEquatableArray());
        var region = Assert.Single(FusionPlanner.Plan(graph));
        Assert.Equal(bias ? new[] { x, w, b } : new[] { x, w }, region.Inputs.ToArray());
        return (graph, region);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_runtime_norm_regions_are_what_the_planner_emits(bool bias)
    {
        var (graph, region) = LayerNormGraph(bias);
        var kernel = bias ? NormRegions.LayerNorm2dAffine : NormRegions.LayerNorm2dWeight;
        var name = bias ? "layernorm2d" : "layernorm2d_nobias";
        var source = CudaRegionEmitter.Emit(graph, region, $"{name}: (x - mean(x, -3)) * rsqrt(var(x, -3) + eps) * weight{(bias ? " + bias" : "")}");
        Assert.True(source == kernel.Source, "NormRegions' source differs from the planner's; paste this:\n" + source);
        Assert.Equal(region.Inputs.Count, kernel.Inputs);
        Assert.Equal(region.Scalars.Count, kernel.Scalars);
        Assert.Equal(region.Axis, kernel.Axis);
        Assert.Equal("row", region.Kind);
        Assert.False(region.Reduced);
        Assert.Equal(new[] { 0b1, 0b1 }, region.Reductions.ToArray());
    }

    [Fact]
    public void Layer_norms_of_nchw_run_their_region_and_match_the_reference()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(2);
        using var _ = torch.no_grad();
        var affine = new LayerNorm2d(7);
        var plain = new LayerNorm2dNoBias(7, eps: 1e-5);
        foreach (var p in affine.parameters().Concat(plain.parameters())) p.normal_(0.5, 0.5);
        var x = torch.randn(3, 7, 5, 9) * 2 + 1;
        var expected = new[] { affine.call(x), plain.call(x) };
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        SubBlockPlanner.HandKernels = false; // the planner alone: the default plan avoids these regions (SubBlockPlanner.AvoidRegions)
        Tensor[] fused;
        try { fused = new[] { affine.call(x), plain.call(x), plain.call(x.transpose(2, 3)) }; }
        finally
        {
            FusedRegion.Emulator = null;
            SubBlockPlanner.HandKernels = true;
        }
        Assert.Equal(new[] { "layernorm2d", "layernorm2d_nobias" }, emulator.Regions.OrderBy(r => r).ToArray());
        Assert.Equal(2, emulator.Calls); // the transposed view is not NCHW-contiguous: the reference ran
        Assert.Contains("mix_region_cols", emulator.EntriesRun);
        for (int i = 0; i < 2; i++)
        {
            var err = ((fused[i] - expected[i]).norm() / expected[i].norm()).item<float>();
            Assert.True(err <= 1e-5, $"norm {i}: relative error {err}");
        }
    }

    [Fact]
    public void The_norm_region_over_channels_last_memory_walks_rows_innermost_and_writes_channels_last()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(4);
        using var _ = torch.no_grad();
        using var emulator = new RegionEmulator(gxx!);
        foreach (long c in new long[] { 7, 12 })
        {
            var x = torch.randn(3, c, 5, 9).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) * 2 + 1;
            var w = torch.randn(c, 1, 1);
            var y = emulator.Run(NormRegions.LayerNorm2dWeight, new[] { x, w }, new[] { 1e-6f })!;
            Assert.Equal(x.stride(), y.stride());
            var xd = x.to_type(ScalarType.Float64);
            var mean = xd.mean(new long[] { 1 }, keepdim: true);
            var variance = (xd - mean).square().mean(new long[] { 1 }, keepdim: true);
            var expected = (xd - mean) * (variance + 1e-6).rsqrt() * w.to_type(ScalarType.Float64);
            var err = ((y.to_type(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
            Assert.True(err <= 1e-5, $"C{c}: relative error {err}");
        }
        // channels innermost in memory: a warp per row (whole vectors when C is a multiple of 4), no strided columns
        Assert.Contains("mix_region_warp", emulator.EntriesRun);
        Assert.Contains("mix_region_warp4", emulator.EntriesRun);
        Assert.DoesNotContain("mix_region_cols", emulator.EntriesRun);
    }

    [Fact]
    public void A_caformer_shaped_model_with_its_norm_regions_emulated_matches_its_reference()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(3);
        using var _ = torch.no_grad();
        using var model = new Mix.Generated.Models.CaformerS18(new Mix.Generated.Models.CaformerS18.Options { NumClasses = 5 });
        model.eval();
        var x = torch.randn(1, 3, 32, 32);
        var reference = model.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        SubBlockPlanner.HandKernels = false; // the planner alone: the default plan avoids these regions (SubBlockPlanner.AvoidRegions)
        Tensor fused;
        try { fused = model.call(x); }
        finally
        {
            FusedRegion.Emulator = null;
            SubBlockPlanner.HandKernels = true;
        }
        // stem + 2 NCHW stages of 3 blocks (2 norms each) + the downsampling into stage 2 (the head's norm sees [1, 512]: not 4-d)
        Assert.True(emulator.Calls >= 13, $"{emulator.Calls} norm regions ran");
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"relative error {err}");
    }
}
