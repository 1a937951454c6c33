using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Mapping = Mix.Runtime.Fused.FusedRegionKernel.RowMapping;

namespace Mix.Generator.Tests;

/// <summary>
/// The row regions' three mappings (<see cref="FusedRegionKernel"/>: a warp per row, a block per row, the column
/// mapping for an axis that is not innermost, each with and without vector loads where it has them) on the regions the
/// planner emits for the norms and softmax a forward writes in tensor math: RMSNorm, a two-pass LayerNorm over C of
/// [B, C, H, W] with per-channel weight and bias, a softmax, a reduction that drops its axis, a row gate broadcast along
/// the axis. Each kernel runs under the g++ emulation (<see cref="RegionEmulator"/>) with every mapping forced in turn,
/// on odd sizes, against the same math in double precision: 1e-5 relative. The mapping the host picks by itself is
/// checked apart, without running anything.
/// </summary>
public class RowMappingEmulationTests
{
    sealed class G
    {
        public readonly List<FusionNode> Nodes = new();
        int Add(FusionNode n) { Nodes.Add(n); return Nodes.Count - 1; }
        public int In() => Add(new FusionNode("input", "", EquatableArray<int>.Empty));
        public int Scalar() => Add(new FusionNode("scalar", "", EquatableArray<int>.Empty));
        public int U(string op, int a) => Add(new FusionNode("unary", op, new[] { a }.ToEquatableArray()));
        public int B(string op, int a, int b) => Add(new FusionNode("binary", op, new[] { a, b }.ToEquatableArray()));
        public int Reduce(string op, int a, int axis, bool keep = true) => Add(new FusionNode("reduce", op, new[] { a }.ToEquatableArray(), axis, keep));
        public int Softmax(int a, int axis) => Add(new FusionNode("softmax", "softmax", new[] { a }.ToEquatableArray(), axis));
        public FusionGraph Graph => new(Nodes.ToEquatableArray());
    }

    /// <summary>A region's kernel as the generator would bind it.</summary>
    static FusedRegionKernel Kernel(string name, G g)
    {
        var region = Assert.Single(FusionPlanner.Plan(g.Graph));
        Assert.Equal("row", region.Kind);
        var source = CudaRegionEmitter.Emit(g.Graph, region, name);
        return FusedRegionKernel.Row(name, region.Inputs.Count, region.Scalars.Count, region.Axis, region.Reduced, region.Reductions.ToArray(), source);
    }

    // x * rsqrt(mean(x * x, axis) + eps) * w
    static FusedRegionKernel RmsNorm(int axis)
    {
        var g = new G();
        int x = g.In(), w = g.In(), eps = g.Scalar();
        int ms = g.Reduce("mean", g.B("mul", x, x), axis);
        g.B("mul", g.B("mul", x, g.U("rsqrt", g.B("add", ms, eps))), w);
        return Kernel("rmsnorm", g);
    }

    static Tensor RmsNormRef(Tensor x, Tensor w, double eps, long axis) =>
        x * (x * x).mean(new[] { axis }, keepdim: true).add(eps).rsqrt() * w;

    // (x - mean(x)) * rsqrt(mean((x - mean(x))^2) + eps) * w + b: two phases after the mean
    static FusedRegionKernel LayerNorm(int axis)
    {
        var g = new G();
        int x = g.In(), w = g.In(), b = g.In(), eps = g.Scalar();
        int d = g.B("sub", x, g.Reduce("mean", x, axis));
        int v = g.Reduce("mean", g.B("mul", d, d), axis);
        g.B("add", g.B("mul", g.B("mul", d, g.U("rsqrt", g.B("add", v, eps))), w), b);
        return Kernel("layernorm", g);
    }

    static Tensor LayerNormRef(Tensor x, Tensor w, Tensor b, double eps, long axis)
    {
        var d = x - x.mean(new[] { axis }, keepdim: true);
        return d * (d * d).mean(new[] { axis }, keepdim: true).add(eps).rsqrt() * w + b;
    }

    // softmax(x * s, axis) * gate: the gate is one number per row (broadcast along the axis)
    static FusedRegionKernel GatedSoftmax(int axis)
    {
        var g = new G();
        int x = g.In(), gate = g.In(), s = g.Scalar();
        g.B("mul", g.Softmax(g.B("mul", x, s), axis), gate);
        return Kernel("softmax", g);
    }

    // max(x * y, axis) without the axis
    static FusedRegionKernel ReducedMax(int axis)
    {
        var g = new G();
        int x = g.In(), y = g.In();
        g.Reduce("max", g.B("mul", x, y), axis, keep: false);
        return Kernel("rowmax", g);
    }

    // the warp mapping's split: lanes per row (null: the host's choice from the row length)
    static readonly (Mapping Mapping, int? Split)[] Mappings =
    {
        (Mapping.Warp, null), (Mapping.Warp, 32), (Mapping.Warp, 4), (Mapping.Warp, 1), (Mapping.Block, 1),
        (Mapping.Cols, 1), (Mapping.Cols, 2), (Mapping.Cols, 4), (Mapping.Cols, 8),
    };

    /// <summary>Runs <paramref name="kernel"/> under every mapping (vector entries where the shapes allow) and compares with <paramref name="expected"/>.</summary>
    static void EveryMapping(RegionEmulator emulator, FusedRegionKernel kernel, Tensor[] xs, float[] scalars, Tensor expected, string what)
    {
        foreach (var (mapping, split) in Mappings)
            foreach (bool aligned in new[] { false, true })
            {
                if (aligned && mapping == Mapping.Cols) continue; // no vector entry
                FusedRegionKernel.ForceRowMapping = mapping;
                FusedRegionKernel.ForceSplit = split;
                emulator.Aligned = aligned;
                Tensor? y;
                try { y = emulator.Run(kernel, xs, scalars); }
                finally
                {
                    FusedRegionKernel.ForceRowMapping = null;
                    FusedRegionKernel.ForceSplit = null;
                }
                Assert.NotNull(y);
                Assert.Equal(expected.shape, y!.shape);
                var err = ((y.to_type(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
                Assert.True(err <= 1e-5, $"{what}, {mapping} split {split}{(aligned ? " aligned" : "")}: relative error {err}");
            }
    }

    static string? Gxx()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        return gxx;
    }

    [Fact]
    public void Rms_norm_over_the_last_axis_matches_in_every_mapping()
    {
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(3);
        var kernel = RmsNorm(-1);
        foreach (long len in new long[] { 37, 36, 5 })
        {
            var x = torch.randn(11, len);
            var w = torch.rand(len) + 0.5;
            EveryMapping(emulator, kernel, new[] { x, w }, new[] { 1e-5f },
                RmsNormRef(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64), 1e-5f, -1), $"rmsnorm [11, {len}]");
        }
        Assert.Contains("mix_region_warp4", emulator.EntriesRun);
        Assert.Contains("mix_region_row4", emulator.EntriesRun);
        Assert.Contains("mix_region_warp", emulator.EntriesRun);
        Assert.Contains("mix_region_cols", emulator.EntriesRun);
    }

    [Fact]
    public void Layer_norm_over_the_channels_of_nchw_matches_in_every_mapping()
    {
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(4);
        var kernel = LayerNorm(1);
        foreach (var (c, h, w) in new (long, long, long)[] { (7, 5, 3), (12, 3, 3) })
        {
            var x = torch.randn(3, c, h, w) * 2 + 0.5;
            var weight = torch.randn(c, 1, 1);
            var bias = torch.randn(c, 1, 1);
            EveryMapping(emulator, kernel, new[] { x, weight, bias }, new[] { 1e-6f },
                LayerNormRef(x.to_type(ScalarType.Float64), weight.to_type(ScalarType.Float64), bias.to_type(ScalarType.Float64), 1e-6f, 1),
                $"layernorm [3, {c}, {h}, {w}]");
        }
    }

    [Fact]
    public void Layer_norm_of_channels_last_rows_and_a_transposed_input_match()
    {
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(5);
        var kernel = LayerNorm(-1);
        // the channels innermost: vector reads; then the same values through a transposed view (axis stride > 1)
        var x = torch.randn(2, 3, 5, 12);
        var weight = torch.randn(12);
        var bias = torch.randn(12);
        var expected = LayerNormRef(x.to_type(ScalarType.Float64), weight.to_type(ScalarType.Float64), bias.to_type(ScalarType.Float64), 1e-5f, -1);
        EveryMapping(emulator, kernel, new[] { x, weight, bias }, new[] { 1e-5f }, expected, "layernorm [2, 3, 5, 12]");
        var xt = x.transpose(1, 3).contiguous().transpose(1, 3);
        EveryMapping(emulator, kernel, new[] { xt, weight, bias }, new[] { 1e-5f }, expected, "layernorm of a transposed view");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sixteen_byte_row_loads_of_half_types_match(bool rowInRegisters)
    {
        // rowInRegisters: FusedRegionKernel.RowInRegisters as well, the warp mapping's lanes keeping their vectors (up to
        // eight) in registers for every phase; a lane with more (one lane per row of 64 float32s) reads per phase.
        // FusedRegionKernel.RowVector16: eight halves a load in the warp and block mappings where every input and the
        // output are half types and rows are whole 8-element vectors; four otherwise (C12 below, float32). The channel
        // LayerNorm of channels-last memory (NormRegions, as ConvFormer runs it) and a token LayerNorm with a bias, against
        // the math in double precision on the same rounded inputs: bfloat16 2^-8, float16 2^-11 (one rounding of the output).
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(6);
        var channel = Mix.Runtime.Fused.NormRegions.LayerNorm2dWeight;
        var token = LayerNorm(-1);
        FusedRegionKernel.ForceRowVector16 = true;
        FusedRegionKernel.ForceRowInRegisters = rowInRegisters;
        s_registerPlans = 0;
        try
        {
            foreach (var dt in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
                foreach (long c in new long[] { 64, 24, 8, 12 })
                {
                    var x = (torch.randn(3, c, 5, 7) * 2 + 0.5).to_type(dt).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
                    var w = (torch.randn(c, 1, 1) * 0.2 + 1).to_type(dt);
                    var plan = channel.Prepare(new[] { (x.shape, x.stride(), dt), (w.shape, w.stride(), dt) }, new[] { 1e-6f })!;
                    int rv = dt != ScalarType.Float32 && c % 8 == 0 ? 8 : 4;
                    Assert.Equal(rv, plan.RowVector);
                    Assert.Equal(rv == 8, plan.Defines().Contains("-DMIX_RV=8"));
                    var xd = x.to_type(ScalarType.Float64);
                    var mean = xd.mean(new long[] { 1 }, true);
                    var expected = (xd - mean) * torch.rsqrt((xd - mean).square().mean(new long[] { 1 }, true) + 1e-6) * w.to_type(ScalarType.Float64);
                    RowVectorMappings(emulator, channel, new[] { x, w }, new[] { 1e-6f }, expected, $"channel layernorm {dt} C{c}", dt);
                    var t = (torch.randn(2, 3, 5, c) * 2 + 0.5).to_type(dt);
                    var tw = (torch.randn(c) * 0.2 + 1).to_type(dt);
                    var tb = (torch.randn(c) * 0.2).to_type(dt);
                    RowVectorMappings(emulator, token, new[] { t, tw, tb }, new[] { 1e-5f },
                        LayerNormRef(t.to_type(ScalarType.Float64), tw.to_type(ScalarType.Float64), tb.to_type(ScalarType.Float64), 1e-5f, -1), $"token layernorm {dt} C{c}", dt);
                }
            // a reduction that drops its axis: one value a row, from lane 0
            var rx = torch.randn(9, 64).to_type(ScalarType.BFloat16);
            var ry = torch.randn(9, 64).to_type(ScalarType.BFloat16);
            RowVectorMappings(emulator, ReducedMax(-1), new[] { rx, ry }, Array.Empty<float>(),
                (rx.to_type(ScalarType.Float64) * ry.to_type(ScalarType.Float64)).amax(new long[] { -1 }), "max over the last axis", ScalarType.BFloat16);
        }
        finally
        {
            FusedRegionKernel.ForceRowVector16 = null;
            FusedRegionKernel.ForceRowInRegisters = null;
        }
        Assert.Contains("mix_region_warp4", emulator.EntriesRun);
        Assert.Contains("mix_region_row4", emulator.EntriesRun);
        if (rowInRegisters) Assert.True(s_registerPlans > 0, "no launch kept its row in registers");
        else Assert.Equal(0, s_registerPlans);
    }

    [ThreadStatic] static int s_registerPlans;

    static void RowVectorMappings(RegionEmulator emulator, FusedRegionKernel kernel, Tensor[] xs, float[] scalars, Tensor expected, string what, ScalarType dt)
    {
        double tol = dt switch { ScalarType.BFloat16 => Math.Pow(2, -8), ScalarType.Float16 => Math.Pow(2, -11), _ => 1e-5 };
        emulator.Aligned = true;
        foreach (var (mapping, split) in new (Mapping, int?)[] { (Mapping.Warp, null), (Mapping.Warp, 32), (Mapping.Warp, 2), (Mapping.Warp, 1), (Mapping.Block, 1) })
        {
            FusedRegionKernel.ForceRowMapping = mapping;
            FusedRegionKernel.ForceSplit = split;
            Tensor? y;
            int registers;
            try
            {
                var plan = kernel.Prepare(xs.Select(x => (x.shape, x.stride(), x.dtype)).ToArray(), scalars)!;
                registers = plan.RowRegisters;
                Assert.Equal(registers > 0, plan.Defines().Contains($"-DMIX_RNV={registers}"));
                if (registers > 0) s_registerPlans++;
                y = emulator.Run(kernel, xs, scalars);
            }
            finally
            {
                FusedRegionKernel.ForceRowMapping = null;
                FusedRegionKernel.ForceSplit = null;
            }
            Assert.NotNull(y);
            Assert.Equal(expected.shape, y!.shape);
            var err = ((y.to_type(ScalarType.Float64) - expected).norm() / expected.norm()).item<double>();
            Assert.True(err <= tol, $"{what}, {mapping} split {split}, {registers} vectors in registers: relative error {err}");
        }
    }

    [Fact]
    public void Softmax_with_a_row_gate_matches_in_every_mapping()
    {
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(6);
        var kernel = GatedSoftmax(-1);
        foreach (long len in new long[] { 1100, 1031, 9 })
        {
            var x = torch.randn(3, len) * 3;
            var gate = torch.rand(3, 1);
            var expected = (x.to_type(ScalarType.Float64) * 0.7f).softmax(-1) * gate.to_type(ScalarType.Float64);
            EveryMapping(emulator, kernel, new[] { x, gate }, new[] { 0.7f }, expected, $"softmax [3, {len}]");
        }
        // softmax over a middle axis
        var k2 = GatedSoftmax(1);
        var y = torch.randn(2, 13, 6);
        var g2 = torch.rand(2, 1, 6);
        EveryMapping(emulator, k2, new[] { y, g2 }, new[] { 1.3f }, (y.to_type(ScalarType.Float64) * 1.3f).softmax(1) * g2.to_type(ScalarType.Float64), "softmax over axis 1");
    }

    [Fact]
    public void A_reduction_that_drops_its_axis_matches_in_every_mapping()
    {
        using var emulator = new RegionEmulator(Gxx()!);
        torch.manual_seed(7);
        var last = ReducedMax(-1);
        var x = torch.randn(9, 40);
        var y = torch.randn(9, 40);
        EveryMapping(emulator, last, new[] { x, y }, Array.Empty<float>(), (x * y).to_type(ScalarType.Float64).amax(new long[] { -1 }), "max over the last axis");
        var first = ReducedMax(1);
        var a = torch.randn(2, 7, 3, 5);
        var b = torch.randn(1, 7, 1, 1); // a positive axis needs the reduced operands at full rank
        EveryMapping(emulator, first, new[] { a, b }, Array.Empty<float>(), (a * b).to_type(ScalarType.Float64).amax(new long[] { 1 }), "max over the channels");
    }

    static string Chosen(FusedRegionKernel kernel, params long[][] shapes)
    {
        var xs = shapes.Select(s => (s, Contiguous(s), ScalarType.BFloat16)).ToArray();
        var plan = kernel.Prepare(xs, new[] { 1e-5f });
        Assert.NotNull(plan);
        var entry = plan!.Entry(aligned: true);
        return entry is "mix_region_cols" or "mix_region_warp" or "mix_region_warp4" ? $"{entry}/{plan.Args.Split}" : entry;
    }

    static long[] Contiguous(long[] shape)
    {
        var st = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--) { st[d] = acc; acc *= shape[d]; }
        return st;
    }

    [Fact]
    public void The_host_picks_the_mapping_from_the_layout_the_row_length_and_the_row_count()
    {
        var last = RmsNorm(-1);
        Assert.Equal("mix_region_warp4/32", Chosen(last, new long[] { 32, 3136, 128 }, new long[] { 128 }));
        Assert.Equal("mix_region_warp/32", Chosen(last, new long[] { 32, 3136, 130 }, new long[] { 130 }));
        // short rows: a group of lanes per row, one pass of vectors (channels-last LayerNorm2d at C64), or of elements
        Assert.Equal("mix_region_warp4/16", Chosen(last, new long[] { 128, 3136, 64 }, new long[] { 64 }));
        Assert.Equal("mix_region_warp4/2", Chosen(last, new long[] { 128, 3136, 8 }, new long[] { 8 }));
        Assert.Equal("mix_region_warp/8", Chosen(last, new long[] { 128, 3136, 6 }, new long[] { 6 }));
        Assert.Equal("mix_region_row4", Chosen(last, new long[] { 4, 4096 }, new long[] { 4096 }));
        Assert.Equal("mix_region_row", Chosen(last, new long[] { 4, 4097 }, new long[] { 4097 }));
        var channels = RmsNorm(1);
        // the gated mixer's channel RMSNorm: [B, 128, 56, 56]; more rows, fewer threads per row
        Assert.Equal("mix_region_cols/4", Chosen(channels, new long[] { 32, 128, 56, 56 }, new long[] { 128, 1, 1 }));
        Assert.Equal("mix_region_cols/8", Chosen(channels, new long[] { 1, 128, 56, 56 }, new long[] { 128, 1, 1 }));
        Assert.Equal("mix_region_cols/1", Chosen(channels, new long[] { 128, 64, 56, 56 }, new long[] { 64, 1, 1 }));
        // [B, C, 1, 1]: the channels are the innermost dim of size above one
        Assert.Equal("mix_region_warp4/32", Chosen(channels, new long[] { 8, 512, 1, 1 }, new long[] { 512, 1, 1 }));
    }
}
