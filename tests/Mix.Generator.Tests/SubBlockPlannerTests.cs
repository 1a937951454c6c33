using System.Collections.Generic;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The planner's sub-block plans (<see cref="SubBlockPlanner"/>): the MetaFormer sub-blocks that hand-written kernels
/// used to be matched to by type are planned as steps whose pointwise work is the planner's regions, with the hand
/// kernels as declared primitives; and whole MetaFormers (PoolFormer-, ConvFormer- and CAFormer-shaped, small, odd
/// channel counts, batch 1 and 2) with every region emulated (g++, <see cref="RegionEmulator"/>) match the reference
/// forward within 1e-5 (float32).
/// </summary>
[Collection(nameof(PlannerSwitchCollection))]
public class SubBlockPlannerTests
{
    static Metaformer Make(string kind)
    {
        MixerFactory pool = dim => new Mix.Generated.Std.Pool(new Mix.Generated.Std.Pool.Options(dim) { PoolSize = 3 });
        MixerFactory sep = dim => new Mix.Generated.Std.SepConv(new Mix.Generated.Std.SepConv.Options(dim));
        MixerFactory att = dim => new Mix.Generated.Std.Attention(new Mix.Generated.Std.Attention.Options(dim));
        NormFactory ln2d = dim => Builtin.LayerNorm2dNoBias(dim);
        NormFactory ln = dim => Builtin.LayerNormNoBias(dim, eps: 1e-6);
        return kind switch
        {
            // poolformer_s12's arguments
            "poolformer" => new Metaformer(new Metaformer.Options
            {
                NumClasses = 5, Depths = new long[] { 1, 1, 2, 1 }, Dims = new long[] { 5, 7, 9, 11 },
                TokenMixers = Fn.Repeat(4, pool), Norms = Fn.Repeat<NormFactory>(4, dim => Builtin.GroupNorm1(dim)),
                MlpAct = () => Builtin.GELU(), MlpBias = true, DownsampleNorm = dim => Builtin.Identity(dim: dim),
                LayerScales = Fn.Repeat<double?>(4, 0.5), ResScales = Fn.Repeat<double?>(4, null), UseMlpHead = false,
            }),
            // convformer_s18 / caformer_s18's arguments (caformer's mixers), no biases, res scales in the last two stages
            "caformer" => new Metaformer(new Metaformer.Options
            {
                NumClasses = 5, Depths = new long[] { 1, 1, 1, 1 }, Dims = new long[] { 7, 13, 32, 64 },
                TokenMixers = new[] { sep, sep, att, att }, UseNchw = new[] { true, true, false, false },
                Norms = new[] { ln2d, ln2d, ln, ln },
            }),
            // the same with MLP biases and layer scales: every residual variant with a bias and a layer scale
            _ => new Metaformer(new Metaformer.Options
            {
                NumClasses = 5, Depths = new long[] { 1, 1, 1, 1 }, Dims = new long[] { 7, 13, 32, 64 },
                TokenMixers = new[] { sep, sep, att, att }, UseNchw = new[] { true, true, false, false },
                Norms = new[] { ln2d, ln2d, ln, ln }, MlpBias = true, LayerScales = Fn.Repeat<double?>(4, 0.5),
            }),
        };
    }

    [Theory]
    [InlineData("poolformer", new[] { "pool_tail_ls", "bias_gelu", "residual_b_ls" })]
    [InlineData("caformer", new[] { "layernorm2d_nobias", "layernorm_nobias", "starrelu", "residual_rs" })]
    [InlineData("caformer+bias+ls", new[] { "layernorm2d_nobias", "layernorm_nobias", "bias_starrelu", "starrelu", "residual_ls", "residual_b_ls", "residual_ls_rs", "residual_b_ls_rs" })]
    public void A_metaformer_with_the_planners_regions_emulated_matches_its_reference(string kind, string[] regions)
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(5);
        using var _ = torch.no_grad();
        using var model = Make(kind);
        model.eval();
        foreach (var p in model.parameters()) p.normal_(0.2, 0.4);
        foreach (long batch in new long[] { 1, 2 })
        {
            var x = torch.randn(batch, 3, 32, 32);
            var reference = model.call(x);
            using var emulator = new RegionEmulator(gxx!);
            FusedRegion.Emulator = emulator.Run;
            SubBlockPlanner.Trace = new List<string>();
            SubBlockPlanner.HandKernels = false; // the planner alone (on the CPU no hand kernel runs anyway; AvoidRegions is off)
            Tensor fused;
            List<string> trace;
            try { fused = model.call(x); }
            finally
            {
                FusedRegion.Emulator = null;
                SubBlockPlanner.HandKernels = true;
                trace = SubBlockPlanner.Trace!;
                SubBlockPlanner.Trace = null;
            }
            foreach (var r in regions) Assert.Contains(r, emulator.Regions);
            // nothing the planner has a region for fell back to the reference (only library steps and norms without a region did)
            Assert.DoesNotContain(trace, t => t.EndsWith(": reference") && !t.StartsWith("norm (groupnorm") && !t.StartsWith("bias, scales, residual add"));
            var err = ((fused - reference).norm() / reference.norm()).item<float>();
            Assert.True(err <= 1e-5, $"{kind} b{batch}: relative error {err}; steps run:\n{string.Join("\n", trace)}");
        }
    }

    [Fact]
    public void The_default_plan_avoids_the_nchw_norm_regions_and_the_planner_alone_takes_them()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        using var _ = torch.no_grad();
        using var norm = new LayerNorm2dNoBias(7);
        norm.weight.normal_(1, 0.3);
        var x = torch.randn(2, 7, 5, 9);
        var expected = norm.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        try
        {
            var avoided = norm.call(x); // hand kernels on: the reference's permuted layer_norm, channels-last memory
            Assert.Equal(0, emulator.Calls);
            Assert.False(avoided.is_contiguous());
            SubBlockPlanner.HandKernels = false;
            var region = norm.call(x);
            Assert.Equal(1, emulator.Calls);
            Assert.True(((region - expected).norm() / expected.norm()).item<float>() <= 1e-5);
        }
        finally
        {
            FusedRegion.Emulator = null;
            SubBlockPlanner.HandKernels = true;
        }
    }

    static ResidualParts Parts(nn.Module<Tensor, Tensor> norm, nn.Module<Tensor, Tensor> branch, nn.Module<Tensor, Tensor>? ls, nn.Module<Tensor, Tensor>? rs, bool mixer) =>
        new(norm, branch, ls, rs, mixer);

    [Fact]
    public void The_planner_forms_the_regions_the_hand_kernels_cover()
    {
        // PoolFormer's mixer sub-block: the hand kernel spans norm, window and tail; the tail alone is a region.
        var pool = SubBlockPlanner.For(Parts(new GroupNorm1(8), new Mix.Generated.Std.Pool(new Mix.Generated.Std.Pool.Options(8) { PoolSize = 3 }),
            new Scale(8, 1e-5), null, mixer: true))!;
        Assert.Equal(new[] { "pooling_sub_block", "group_norm1", null, null }, pool.Steps.Select(s => s.Hand).ToArray());
        Assert.Equal(3, pool.Steps[0].Covers);
        Assert.Equal(new[] { null, null, null, "pool_tail_ls" }, pool.Steps.Select(s => s.Region).ToArray());

        // ConvFormer's mixer: the channel LayerNorm, bias + StarReLU and the residual epilogue are regions, each with its hand kernel.
        var sep = SubBlockPlanner.For(Parts(new LayerNorm2dNoBias(8), new Mix.Generated.Std.SepConv(new Mix.Generated.Std.SepConv.Options(8)),
            null, new Scale(8, 1.0), mixer: true))!;
        Assert.Equal(new[] { "layernorm2d_nobias", null, "starrelu", null, null, "residual_rs" }, sep.Steps.Select(s => s.Region).ToArray());
        Assert.Equal(new[] { "layer_norm", null, "bias_activation", null, null, "scale_residual" }, sep.Steps.Select(s => s.Hand).ToArray());

        // CAFormer's MLP on tokens: LayerNorm over the last axis, bias + StarReLU, the residual with bias and both scales.
        var mlp = SubBlockPlanner.For(Parts(new LayerNormNoBias(32), new Mlp(32, 128, actLayer: () => new StarReLU(), bias: true),
            new Scale(32, 0.5, useNchw: false), new Scale(32, 1.0, useNchw: false), mixer: false))!;
        Assert.Equal(new[] { "layernorm_nobias", null, "bias_starrelu", null, "residual_b_ls_rs" }, mlp.Steps.Select(s => s.Region).ToArray());

        // A plain x + branch(norm(x)) has nothing to fuse beyond the norm's own path: the planner declines.
        Assert.Null(SubBlockPlanner.For(Parts(new LayerNormNoBias(32), nn.Identity(), null, null, mixer: true)));
    }
}

/// <summary>
/// Test classes that switch <see cref="SubBlockPlanner.HandKernels"/> or run regions through <see cref="FusedRegion"/>'s
/// emulator (which counts launches in <c>ForwardCost</c>'s process-wide counters) run one at a time.
/// </summary>
[CollectionDefinition(nameof(PlannerSwitchCollection))]
public sealed class PlannerSwitchCollection;
