using System;
using System.Collections.Generic;
using Mix.Runtime.Builtins;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// Generated fused regions on the GPU. The launch skeleton with region sources written like the generator's
/// (pointwise with broadcasting, strided and odd-sized inputs, the vector path; rows with reductions, softmax and a
/// dropped axis) against TorchSharp, and every zoo model with fusion on against the same model with fusion off
/// (batch 1, odd sizes): the planner's regions on against off, everything else fused in both. Tolerances (relative L2): float32 1e-5, bfloat16 2e-2 per region and 5e-2 for whole models
/// (the reference rounds every intermediate to bfloat16, a region keeps them in float32).
/// </summary>
[Trait("Category", "Gpu")]
public class FusedRegionGpuTests
{
    // x * silu(y) + s[0]
    private const string GatedSource = """
#define MIX_INPUTS 2
#define MIX_ROW 0
__device__ __forceinline__ float mix_eval(const float* __restrict__ in, const float* __restrict__ s) {
  const float v2 = in[1] / (1.0f + expf(-(in[1])));
  return in[0] * v2 + s[0];
}
""";

    // x * rsqrt(mean(x * x) + s[0]) * w over the axis
    private const string RmsSource = """
#define MIX_INPUTS 2
#define MIX_ROW 1
#define MIX_PHASES 1
#define MIX_SLOTS 1
#define MIX_REDUCED 0
__device__ __forceinline__ float mix_slot_init(int k) { return 0.0f; }
__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) { return a + b; }
__device__ __forceinline__ int mix_slot_phase(int k) { return 0; }
__device__ __forceinline__ void mix_phase(int p, const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n, float* acc) {
  if (p == 0) acc[0] += in[0] * in[0];
}
__device__ __forceinline__ float mix_eval(const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n) {
  return in[0] * rsqrtf(red[0] * inv_n + s[0]) * in[1];
}
""";

    // softmax(x) over the axis (max, then the sum of exponentials)
    private const string SoftmaxSource = """
#define MIX_INPUTS 1
#define MIX_ROW 1
#define MIX_PHASES 2
#define MIX_SLOTS 2
#define MIX_REDUCED 0
__device__ __forceinline__ float mix_slot_init(int k) { if (k == 0) return -INFINITY; return 0.0f; }
__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) { if (k == 0) return fmaxf(a, b); return a + b; }
__device__ __forceinline__ int mix_slot_phase(int k) { if (k == 0) return 0; return 1; }
__device__ __forceinline__ void mix_phase(int p, const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n, float* acc) {
  if (p == 0) acc[0] = fmaxf(acc[0], in[0]);
  if (p == 1) acc[1] += expf(in[0] - red[0]);
}
__device__ __forceinline__ float mix_eval(const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n) {
  return expf(in[0] - red[0]) / red[1];
}
""";

    // sum(x * w) over the axis, the axis dropped
    private const string SumSource = """
#define MIX_INPUTS 2
#define MIX_ROW 1
#define MIX_PHASES 1
#define MIX_SLOTS 1
#define MIX_REDUCED 1
__device__ __forceinline__ float mix_slot_init(int k) { return 0.0f; }
__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) { return a + b; }
__device__ __forceinline__ int mix_slot_phase(int k) { return 0; }
__device__ __forceinline__ void mix_phase(int p, const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n, float* acc) {
  if (p == 0) acc[0] += in[0] * in[1];
}
__device__ __forceinline__ float mix_eval_reduced(const float* __restrict__ s, const float* red, float inv_n) { return red[0]; }
""";

    private static Tensor Rand(ScalarType dt, params long[] shape) => torch.randn(shape, device: Gpu.Device).to_type(dt);

    private static double Tol(ScalarType dt) => dt == ScalarType.Float32 ? 1e-5 : 2e-2;

    [Theory]
    [InlineData("f32", new long[] { 3, 17, 29 }, new long[] { 3, 17, 29 })]     // same shape, odd: the flat path
    [InlineData("f32", new long[] { 2, 8, 16 }, new long[] { 2, 8, 16 })]       // the vector path
    [InlineData("bf16", new long[] { 1, 8, 64 }, new long[] { 1, 8, 64 })]
    [InlineData("f32", new long[] { 2, 5, 7, 9 }, new long[] { 5, 1, 1 })]     // broadcast per channel
    [InlineData("f16", new long[] { 1, 33 }, new long[] { 7, 1, 33 })]         // broadcast both ways
    public void Pointwise_region_matches_torch(string dtype, long[] xs, long[] ys)
    {
        Gpu.Require();
        var dt = Dt(dtype);
        var kernel = FusedRegionKernel.Pointwise("test.gated", 2, 1, GatedSource);
        var region = kernel.Bind(0.25);
        var x = Rand(dt, xs);
        var y = Rand(dt, ys);
        var fused = region.TryRun(x, y);
        Assert.NotNull(fused);
        var expected = (x.to_type(ScalarType.Float32) * nn.functional.silu(y.to_type(ScalarType.Float32)) + 0.25).to_type(dt);
        Assert.True(Gpu.RelErr(fused!, expected) <= Tol(dt), $"{Gpu.RelErr(fused!, expected)}");
        Assert.Equal(dt, fused!.dtype);
    }

    [Fact]
    public void Pointwise_region_reads_strided_views_and_mixed_dtypes()
    {
        Gpu.Require();
        var region = FusedRegionKernel.Pointwise("test.gated", 2, 1, GatedSource).Bind(0.0);
        var x = Rand(ScalarType.Float32, 4, 9, 11).transpose(1, 2);           // not contiguous
        var y = Rand(ScalarType.BFloat16, 4, 11, 9);
        var fused = region.TryRun(x, y);
        Assert.NotNull(fused);
        Assert.Equal(ScalarType.Float32, fused!.dtype);                       // PyTorch's promotion
        var expected = x * nn.functional.silu(y.to_type(ScalarType.Float32));
        Assert.True(Gpu.RelErr(fused, expected) <= 1e-5);
    }

    [Theory]
    [InlineData("f32", new long[] { 3, 7, 5, 9 }, 1)]       // channels of NCHW (odd sizes)
    [InlineData("f32", new long[] { 1, 13, 300 }, -1)]      // long rows: several warps
    [InlineData("bf16", new long[] { 2, 5, 64 }, -1)]
    public void Row_region_matches_torch(string dtype, long[] shape, int axis)
    {
        Gpu.Require();
        var dt = Dt(dtype);
        var x = Rand(dt, shape);
        var wshape = new long[shape.Length];
        Array.Fill(wshape, 1L);
        int ax = axis < 0 ? axis + shape.Length : axis;
        wshape[ax] = shape[ax];
        var w = Rand(dt, wshape);
        var rms = FusedRegionKernel.Row("test.rms", 2, 1, axis, false, new[] { 0b01 }, RmsSource).Bind(1e-6).TryRun(x, w);
        Assert.NotNull(rms);
        var xf = x.to_type(ScalarType.Float32);
        var expected = (xf * (xf * xf).mean(new long[] { axis }, keepdim: true).add(1e-6).rsqrt() * w.to_type(ScalarType.Float32)).to_type(dt);
        Assert.True(Gpu.RelErr(rms!, expected) <= Tol(dt), $"rms {Gpu.RelErr(rms!, expected)}");

        var soft = FusedRegionKernel.Row("test.softmax", 1, 0, axis, false, new[] { 0b1, 0b1 }, SoftmaxSource).Bind().TryRun(x);
        Assert.NotNull(soft);
        Assert.True(Gpu.RelErr(soft!, torch.softmax(xf, axis).to_type(dt)) <= Tol(dt));

        var sum = FusedRegionKernel.Row("test.sum", 2, 0, axis, true, new[] { 0b11 }, SumSource).Bind().TryRun(x, x);
        Assert.NotNull(sum);
        Assert.True(Gpu.RelErr(sum!, (xf * xf).sum(new long[] { axis }).to_type(dt)) <= Tol(dt));
    }

    [Fact]
    public void A_reduction_over_a_broadcast_axis_is_left_to_the_reference()
    {
        Gpu.Require();
        var sum = FusedRegionKernel.Row("test.sum", 2, 0, -1, true, new[] { 0b01 }, SumSource).Bind();
        // input 0 (the only one below the reduction here) has size 1 along the axis
        Assert.Null(sum.TryRun(Rand(ScalarType.Float32, 3, 1), Rand(ScalarType.Float32, 3, 8)));
    }

    [Fact]
    public void Regions_step_aside_for_gradients_the_switch_and_a_failed_compile()
    {
        Gpu.Require();
        var region = FusedRegionKernel.Pointwise("test.gated", 2, 1, GatedSource).Bind(0.0);
        var x = Rand(ScalarType.Float32, 4, 8);
        var y = Rand(ScalarType.Float32, 4, 8);
        Assert.Null(region.TryRun(x.requires_grad_(true), y));
        x.requires_grad_(false);
        MixDispatch.FusedEnabled = false;
        try { Assert.Null(region.TryRun(x, y)); }
        finally { MixDispatch.FusedEnabled = true; }
        using (SelectiveScan.SuppressKernel()) Assert.Null(region.TryRun(x, y));   // inside a @fused(false) mixer

        var broken = FusedRegionKernel.Pointwise("test.broken", 2, 0, "#define MIX_INPUTS 2\n#define MIX_ROW 0\nthis is not C++").Bind();
        int warnings = KernelLog.Count;
        Assert.Null(broken.TryRun(x, y));
        Assert.Null(broken.TryRun(x, y));
        Assert.Equal(warnings + 1, KernelLog.Count);                                 // one warning, however many calls
        var reference = broken.Run(x, y, (a, b) => a * b);
        Assert.True(reference.allclose(x * y));
    }

    public static IEnumerable<object[]> ZooCases()
    {
        foreach (var dt in new[] { "f32", "bf16" })
        {
            foreach (var name in new[] { "poolformer_s12", "convformer_s18", "caformer_s18", "identityformer_s12", "mamba_130m", "mamba2_lm", "gla_lm", "hybrid_lm", "softs", "tsmixer", "patchtsmixer" })
                yield return new object[] { name, dt };
        }
    }

    [Theory]
    [MemberData(nameof(ZooCases))]
    public void Zoo_model_with_regions_matches_it_without(string name, string dtype)
    {
        Gpu.Require();
        var dt = Dt(dtype);
        torch.manual_seed(7);
        var (model, input) = ZooModel(name);
        model.to(Gpu.Device).to(dt);
        model.eval();
        var x = input.to(Gpu.Device);
        if (x.is_floating_point()) x = x.to_type(dt);
        using var _ = torch.no_grad();
        Tensor withRegions, without, reference;
        long runs;
        try
        {
            // Only the planner's regions differ between the first two runs (the hand-written and scan kernels run in both).
            long before = FusedRegion.FusedRuns;
            withRegions = model.call(x);
            runs = FusedRegion.FusedRuns - before;
            FusedRegion.Enabled = false;
            without = model.call(x);
            MixDispatch.FusedEnabled = false;
            reference = model.call(x);
        }
        finally
        {
            FusedRegion.Enabled = true;
            MixDispatch.FusedEnabled = true;
        }
        double err = Gpu.RelErr(withRegions, without);
        Console.WriteLine($"{name} {dtype}: {runs} region launches; regions vs none {err:g3}; all fused vs fusion off {Gpu.RelErr(withRegions, reference):g3}");
        Assert.True(err <= (dt == ScalarType.Float32 ? 1e-5 : 5e-2), $"{name} {dtype}: relative error {err}");
        if (name is "mamba_130m" or "mamba2_lm" or "gla_lm" or "softs" or "patchtsmixer" or "hybrid_lm") Assert.True(runs > 0, $"{name}: no region ran");
    }

    private static (nn.Module<Tensor, Tensor> Model, Tensor Input) ZooModel(string name) => name switch
    {
        "poolformer_s12" => (new Mix.Zoo.PoolformerS12(), torch.randn(1, 3, 75, 91)),
        "convformer_s18" => (new Mix.Zoo.ConvformerS18(), torch.randn(1, 3, 75, 91)),
        "caformer_s18" => (new Mix.Zoo.CaformerS18(), torch.randn(1, 3, 75, 91)),
        "identityformer_s12" => (new Mix.Zoo.IdentityformerS12(), torch.randn(1, 3, 67, 67)),
        "mamba_130m" => (new Mix.Zoo.Mamba130m(new Mix.Zoo.Mamba130m.Options { VocabSize = 97, DModel = 64, NLayer = 2 }), torch.randint(0, 97, new long[] { 1, 37 })),
        "mamba2_lm" => (new Mix.Zoo.Mamba2Lm(new Mix.Zoo.Mamba2Lm.Options { VocabSize = 97, DModel = 64, NLayer = 2, DState = 16 }), torch.randint(0, 97, new long[] { 1, 37 })),
        "gla_lm" => (new Mix.Zoo.GlaLm(new Mix.Zoo.GlaLm.Options { VocabSize = 97, DModel = 64, NLayer = 2 }), torch.randint(0, 97, new long[] { 1, 37 })),
        "hybrid_lm" => (new Mix.Zoo.HybridLm(new Mix.Zoo.HybridLm.Options { VocabSize = 97, DModel = 64, NLayer = 4 }), torch.randint(0, 97, new long[] { 1, 37 })),
        "softs" => (new Mix.Zoo.Softs(new Mix.Zoo.Softs.Options { SeqLen = 33, PredLen = 11, EncIn = 5, DModel = 64, DCore = 32, DFf = 96 }), torch.randn(1, 33, 5)),
        "tsmixer" => (new Mix.Zoo.Tsmixer(new Mix.Zoo.Tsmixer.Options { SeqLen = 33, PredLen = 11, Channels = 5 }), torch.randn(1, 33, 5)),
        "patchtsmixer" => (new Mix.Zoo.Patchtsmixer(), torch.randn(1, 32, 3)),
        _ => throw new ArgumentException(name),
    };

    private static ScalarType Dt(string s) => s switch
    {
        "f32" => ScalarType.Float32,
        "f16" => ScalarType.Float16,
        _ => ScalarType.BFloat16,
    };
}
