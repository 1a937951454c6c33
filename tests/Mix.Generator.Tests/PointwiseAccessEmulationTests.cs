using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Fused;
using Xunit;
using static TorchSharp.torch;
using Access = Mix.Runtime.Fused.FusedRegionKernel.Access;

namespace Mix.Generator.Tests;

/// <summary>
/// The pointwise vector kernel (<c>mix_region_vec</c>) and its access classes (<see cref="FusedRegionKernel.Access"/>:
/// dense, one value, a per-channel vector one load a vector / vector loads / stepped, general strides), chosen on the
/// host and compiled in as constants. The epilogue region <c>x * rs + (o + b) * ls</c> (five inputs) runs under the g++
/// emulation (<see cref="RegionEmulator"/>) with its inputs in every access class, in NCHW and channels-last memory, on
/// sizes with and without a tail past the last whole vector, with float32, float16 and bfloat16 I/O (and mixed), with
/// the vector entry and the general one (unaligned pointers), and with a grid small enough that the grid-stride loop
/// goes round; each against the same math in double precision from the same input values. Tolerances: float32 1e-6
/// relative (norm), float16 2^-11, bfloat16 2^-8 (one rounding of the output).
/// </summary>
public class PointwiseAccessEmulationTests
{
    static FusedRegionKernel Kernel => EpilogueRegions.Residual(bias: true, layerScale: true, resScale: true)!.Kernel;

    static string Gxx()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        return gxx!;
    }

    static Tensor ChannelsLast(Tensor t) => t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>One case: x, rs, o, b, ls (the kernel's order: x, rs, o, b, ls) and what it is.</summary>
    sealed record Case(string What, Tensor[] Inputs);

    /// <summary>Inputs for an output of <paramref name="shape"/> ([B, C, H, W]): every operand shape the classes cover.</summary>
    static IEnumerable<Case> Cases(long[] shape, bool channelsLast, ScalarType act, ScalarType param)
    {
        long b = shape[0], c = shape[1], h = shape[2], w = shape[3];
        Tensor Full() { var t = randn(shape).to_type(act); return channelsLast ? ChannelsLast(t) : t; }
        Tensor P(params long[] s) => (randn(s) * 0.5 + 1.0).to_type(param);
        string lay = channelsLast ? "channels-last" : "NCHW";
        string dims = string.Join("x", shape);
        // per-channel scales and bias, as the residual epilogue has them
        yield return new($"{lay} {dims} per-channel", new[] { Full(), P(c, 1, 1), Full(), P(c, 1, 1), P(c, 1, 1) });
        // one value, per sample, per width (innermost in NCHW), per row of the image, and [1, C, H, 1] (two dims: general)
        yield return new($"{lay} {dims} scalars and broadcasts along each dim", new[] { Full(), P(1), Full(), P(b, 1, 1, 1), P(w) });
        yield return new($"{lay} {dims} per-height and two-dim broadcast", new[] { Full(), P(h, 1), Full(), P(1, c, h, 1), P(1, 1, 1, 1) });
        // a transposed view of the full tensor: its own strides (general)
        var xt = randn(b, c, w, h).to_type(act).transpose(2, 3);
        yield return new($"{lay} {dims} transposed view", new[] { Full(), P(c, 1, 1), xt, P(1, 1, h, w), P(c, 1, 1) });
    }

    static Tensor Expected(Tensor[] v)
    {
        var d = v.Select(t => t.to_type(ScalarType.Float64)).ToArray();
        return d[0] * d[1] + (d[2] + d[3]) * d[4];
    }

    static double Tolerance(ScalarType t) => t switch
    {
        ScalarType.Float32 => 1e-6,
        ScalarType.Float16 => Math.Pow(2, -11),
        _ => Math.Pow(2, -8),
    };

    static void Check(RegionEmulator emulator, Case k, HashSet<Access> seen, HashSet<int> widths)
    {
        var kernel = Kernel;
        var plan = kernel.Prepare(k.Inputs.Select(x => (x.shape, x.stride(), x.dtype)).ToArray(), Array.Empty<float>());
        Assert.NotNull(plan);
        seen.UnionWith(plan!.Classes);
        widths.Add(plan.Vector);
        var expected = Expected(k.Inputs);
        foreach (bool aligned in new[] { true, false })
            foreach (int? blocks in new int?[] { null, 1 })
            {
                if (!aligned && blocks is not null) continue;
                emulator.Aligned = aligned;
                emulator.MaxBlocks = blocks;
                var y = emulator.Run(kernel, k.Inputs, Array.Empty<float>());
                Assert.NotNull(y);
                Assert.Equal(expected.shape, y!.shape);
                var err = ((y.to_type(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
                var what = $"{k.What} [{string.Join(",", plan.Classes)}] {y.dtype}{(aligned ? "" : " unaligned")}{(blocks is null ? "" : " one block")}";
                Assert.True(err <= Tolerance(y.dtype), $"{what}: relative error {err}");
            }
    }

    [Fact]
    public void Every_access_class_matches_in_both_layouts_with_and_without_a_tail()
    {
        using var emulator = new RegionEmulator(Gxx());
        manual_seed(21);
        using var _ = no_grad();
        var seen = new HashSet<Access>();
        var widths = new HashSet<int>();
        // [2, 16, 4, 4]: whole vectors everywhere (H*W and C multiples of 8); [3, 5, 7, 9] and [2, 12, 3, 5]: odd sizes,
        // channel runs and periods that are not whole vectors, elements past the last vector
        foreach (var shape in new[] { new long[] { 2, 16, 4, 4 }, new long[] { 3, 5, 7, 9 }, new long[] { 2, 12, 3, 5 } })
            foreach (bool cl in new[] { false, true })
                foreach (var k in Cases(shape, cl, ScalarType.Float32, ScalarType.Float32))
                    Check(emulator, k, seen, widths);
        foreach (var a in Enum.GetValues<Access>()) Assert.Contains(a, seen);
        Assert.Contains("mix_region_vec", emulator.EntriesRun);
        Assert.Contains("mix_region_strided", emulator.EntriesRun);
    }

    [Fact]
    public void Half_precision_and_mixed_dtypes_match()
    {
        using var emulator = new RegionEmulator(Gxx());
        manual_seed(22);
        using var _ = no_grad();
        var seen = new HashSet<Access>();
        var widths = new HashSet<int>();
        foreach (var (act, param) in new[] { (ScalarType.BFloat16, ScalarType.BFloat16), (ScalarType.Float16, ScalarType.Float16), (ScalarType.BFloat16, ScalarType.Float32) })
            foreach (var shape in new[] { new long[] { 2, 16, 4, 4 }, new long[] { 3, 5, 7, 9 } })
                foreach (bool cl in new[] { false, true })
                    foreach (var k in Cases(shape, cl, act, param))
                        Check(emulator, k, seen, widths);
        foreach (var a in Enum.GetValues<Access>()) Assert.Contains(a, seen);
        Assert.Equal(new[] { 4, 8 }, widths.OrderBy(v => v)); // eight halves a vector; mixed promotes to float32: four
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Several_vectors_a_thread_match(int unroll)
    {
        // FusedRegionKernel.PointwiseUnroll: U vectors an iteration, loaded before any is computed, over a grid that covers
        // the tensor; with one block the unrolled loop goes round and the rest (fewer than U vectors a thread) and the
        // elements past the last vector take the single-vector loop. Sizes: whole vectors and channel runs ([2, 16, 24, 24]),
        // and odd ones with a tail ([3, 5, 61, 67]).
        using var emulator = new RegionEmulator(Gxx());
        manual_seed(23);
        using var _ = no_grad();
        var seen = new HashSet<Access>();
        var widths = new HashSet<int>();
        Mix.Runtime.Fused.FusedRegionKernel.ForcePointwiseUnroll = unroll;
        try
        {
            foreach (var (act, param) in new[] { (ScalarType.Float32, ScalarType.Float32), (ScalarType.BFloat16, ScalarType.BFloat16) })
                foreach (var shape in new[] { new long[] { 2, 16, 24, 24 }, new long[] { 3, 5, 61, 67 } })
                    foreach (bool cl in new[] { false, true })
                        foreach (var k in Cases(shape, cl, act, param).Take(3))
                        {
                            var plan = Kernel.Prepare(k.Inputs.Select(x => (x.shape, x.stride(), x.dtype)).ToArray(), Array.Empty<float>())!;
                            Assert.Equal(unroll, plan.Unroll);
                            Assert.Contains($"-DMIX_U={unroll}", plan.Defines());
                            Check(emulator, k, seen, widths);
                        }
        }
        finally
        {
            Mix.Runtime.Fused.FusedRegionKernel.ForcePointwiseUnroll = null;
        }
        foreach (var a in new[] { Access.Dense, Access.Scalar, Access.ChannelOuter, Access.ChannelRun, Access.Channel }) Assert.Contains(a, seen);
        Assert.Contains("mix_region_vec", emulator.EntriesRun);
    }

    [Fact]
    public void The_default_launch_is_unchanged()
    {
        // one vector an iteration, no -DMIX_U (the kernel cache key of run 17a's builds), a grid of at most MaxBlocks
        long[] full = { 128, 64, 56, 56 }, fullS = { 64 * 3136, 3136, 56, 1 }, ch = { 64, 1, 1 }, chS = { 1, 1, 1 };
        var plan = Kernel.Prepare(new[] { (full, fullS), (ch, chS), (full, fullS), (ch, chS), (ch, chS) }
            .Select(x => (x.Item1, x.Item2, ScalarType.BFloat16)).ToArray(), Array.Empty<float>())!;
        Assert.Equal(1, plan.Unroll);
        Assert.DoesNotContain(plan.Defines(), d => d.StartsWith("-DMIX_U", StringComparison.Ordinal));
        plan.MaxBlocks = 4224;
        Assert.Equal(4224u, plan.Dims("mix_region_vec").Grid);
        plan.Unroll = 2;
        plan.MaxBlocks = int.MaxValue;
        Assert.Equal((uint)((128L * 64 * 3136 / 8 + 511) / 512), plan.Dims("mix_region_vec").Grid);
    }

    static Access[] Classes(FusedRegionKernel kernel, params (long[] Shape, long[] Strides)[] xs)
    {
        var plan = kernel.Prepare(xs.Select(x => (x.Shape, x.Strides, ScalarType.BFloat16)).ToArray(), Array.Empty<float>());
        Assert.NotNull(plan);
        Assert.Equal("mix_region_vec", plan!.Entry(aligned: true));
        return plan.Classes;
    }

    [Fact]
    public void The_benchmark_shapes_take_the_division_free_classes()
    {
        // ConvFormer stage 1, NCHW [128, 128, 56, 56]: StarReLU's h dense, s and t one value each
        long[] nchw = { 128, 128, 56, 56 }, nchwS = { 128 * 3136, 3136, 56, 1 };
        long[] cl = { 128, 128, 56, 56 }, clS = { 3136 * 128, 1, 56 * 128, 128 };
        var star = EpilogueRegions.BiasActivation(FusedActivation.StarReLU, bias: false)!.Kernel;
        Assert.Equal(new[] { Access.Scalar, Access.Dense, Access.Scalar },
            Classes(star, (new long[] { 1 }, new long[] { 1 }), (nchw, nchwS), (new long[] { 1 }, new long[] { 1 })));
        // with the bias: a per-channel vector, one load a vector in NCHW (56 * 56 is a multiple of 8) ...
        var biasStar = EpilogueRegions.BiasActivation(FusedActivation.StarReLU, bias: true)!.Kernel;
        Assert.Equal(new[] { Access.Scalar, Access.Dense, Access.ChannelOuter, Access.Scalar },
            Classes(biasStar, (new long[] { 1 }, new long[] { 1 }), (nchw, nchwS), (new long[] { 128, 1, 1 }, new long[] { 1, 1, 1 }), (new long[] { 1 }, new long[] { 1 })));
        // ... and vector loads of it in channels-last
        Assert.Equal(new[] { Access.Scalar, Access.Dense, Access.ChannelRun, Access.Scalar },
            Classes(biasStar, (new long[] { 1 }, new long[] { 1 }), (cl, clS), (new long[] { 128, 1, 1 }, new long[] { 1, 1, 1 }), (new long[] { 1 }, new long[] { 1 })));
        // the residual x * rs + o, C64
        long[] r = { 128, 64, 56, 56 }, rS = { 64 * 3136, 3136, 56, 1 }, rCl = { 3136 * 64, 1, 56 * 64, 64 };
        var res = EpilogueRegions.Residual(bias: false, layerScale: false, resScale: true)!.Kernel;
        Assert.Equal(new[] { Access.Dense, Access.ChannelOuter, Access.Dense },
            Classes(res, (r, rS), (new long[] { 64, 1, 1 }, new long[] { 1, 1, 1 }), (r, rS)));
        Assert.Equal(new[] { Access.Dense, Access.ChannelRun, Access.Dense },
            Classes(res, (r, rCl), (new long[] { 64, 1, 1 }, new long[] { 1, 1, 1 }), (r, rCl)));
        // C6 at 7x7 in NCHW: a period of 49 is no whole vector: stepped
        Assert.Equal(new[] { Access.Dense, Access.Channel, Access.Dense },
            Classes(res, (new long[] { 2, 6, 7, 7 }, new long[] { 294, 49, 7, 1 }), (new long[] { 6, 1, 1 }, new long[] { 1, 1, 1 }), (new long[] { 2, 6, 7, 7 }, new long[] { 294, 49, 7, 1 })));
    }
}
