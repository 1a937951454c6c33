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
/// dropped axis, in the mapping the host picks and in each row mapping forced) against TorchSharp, and every model the zoo registry lists (<see cref="ZooGpuCases"/>: small
/// configurations, odd sizes, batch 1, float32 and bfloat16) compared twice: the planner's regions on against off
/// (everything else fused in both), and everything fused against <c>MixDispatch.FusedEnabled = false</c> (the
/// reference path). Tolerances (relative L2 over the output): float32 1e-5, with TF32 turned off for cuDNN and cuBLAS
/// during the zoo comparison (libtorch lets cuDNN convolutions use TF32 by default, whose 10-bit mantissa alone is
/// ~1e-3); bfloat16 2e-2 per region and 5e-2 for whole models (the reference rounds every intermediate to bfloat16,
/// a fused region or scan keeps them in float32, so the two differ by bfloat16 rounding accumulated over the depth).
/// </summary>
[Trait("Category", "Gpu")]
// Toggles the global fusion switches: never beside another test that relies on them (a decode test once took the
// reference path while the zoo-wide comparison had MixDispatch.FusedEnabled off).
[Collection(nameof(FusedSwitchCollection))]
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
    [InlineData("bf16", new long[] { 2, 24, 7, 9 }, 1)]     // channels of NCHW, half type
    [InlineData("f16", new long[] { 3, 2052 }, -1)]         // a block per row, vector reads of a half type
    [InlineData("f32", new long[] { 2, 3, 1100 }, -1)]      // a block per row, vector reads
    [InlineData("f32", new long[] { 2, 9, 2 }, 1)]          // a middle axis, few rows
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
        var xf = x.to_type(ScalarType.Float32);
        // the mapping the host picks, then every mapping forced (each computes every row region)
        var mappings = new (FusedRegionKernel.RowMapping? Mapping, int? Split)[]
        {
            (null, null), (FusedRegionKernel.RowMapping.Warp, null), (FusedRegionKernel.RowMapping.Block, null),
            (FusedRegionKernel.RowMapping.Cols, 1), (FusedRegionKernel.RowMapping.Cols, 4),
        };
        foreach (var (mapping, split) in mappings)
        {
            FusedRegionKernel.ForceRowMapping = mapping;
            FusedRegionKernel.ForceSplit = split;
            try
            {
                string what = $"{mapping?.ToString() ?? "chosen"}/{split}";
                var rms = FusedRegionKernel.Row("test.rms", 2, 1, axis, false, new[] { 0b01 }, RmsSource).Bind(1e-6).TryRun(x, w);
                Assert.NotNull(rms);
                var expected = (xf * (xf * xf).mean(new long[] { axis }, keepdim: true).add(1e-6).rsqrt() * w.to_type(ScalarType.Float32)).to_type(dt);
                Assert.True(Gpu.RelErr(rms!, expected) <= Tol(dt), $"rms {what}: {Gpu.RelErr(rms!, expected)}");

                var soft = FusedRegionKernel.Row("test.softmax", 1, 0, axis, false, new[] { 0b1, 0b1 }, SoftmaxSource).Bind().TryRun(x);
                Assert.NotNull(soft);
                Assert.True(Gpu.RelErr(soft!, torch.softmax(xf, axis).to_type(dt)) <= Tol(dt), $"softmax {what}");

                var sum = FusedRegionKernel.Row("test.sum", 2, 0, axis, true, new[] { 0b11 }, SumSource).Bind().TryRun(x, x);
                Assert.NotNull(sum);
                Assert.True(Gpu.RelErr(sum!, (xf * xf).sum(new long[] { axis }).to_type(dt)) <= Tol(dt), $"sum {what}");
            }
            finally
            {
                FusedRegionKernel.ForceRowMapping = null;
                FusedRegionKernel.ForceSplit = null;
            }
        }
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

    /// <summary>Every registered zoo model (<see cref="ZooGpuCases"/>), in float32 and bfloat16.</summary>
    public static IEnumerable<object[]> ZooCases()
    {
        foreach (var dt in new[] { "f32", "bf16" })
            foreach (var name in ZooGpuCases.Names)
                yield return new object[] { name, dt };
    }

    [Theory]
    [MemberData(nameof(ZooCases))]
    public void Zoo_model_with_regions_matches_it_without(string name, string dtype)
    {
        Gpu.Require();
        var dt = Dt(dtype);
        torch.manual_seed(7);
        var (model, input) = ZooGpuCases.Build(name);
        using var _model = model;
        model.to(Gpu.Device).to(dt);
        model.eval();
        var x = input.to(Gpu.Device);
        if (x.is_floating_point()) x = x.to_type(dt);
        using var _ = torch.no_grad();
        Tensor withRegions, without, plannerOnly, reference;
        long runs, plannerRuns;
        // cuDNN convolutions default to TF32 in libtorch (cuBLAS matmuls do not): off for the whole comparison, so that
        // float32 means float32 on both sides and 1e-5 measures the fused code, not TF32's 10-bit mantissa.
        bool cudnnTf32 = torch.backends.cudnn.allow_tf32, cublasTf32 = torch.backends.cuda.matmul.allow_tf32;
        try
        {
            torch.backends.cudnn.allow_tf32 = false;
            torch.backends.cuda.matmul.allow_tf32 = false;
            // Only the planner's regions differ between the first two runs (the hand-written and scan kernels run in both).
            long before = FusedRegion.FusedRuns;
            withRegions = model.call(x);
            runs = FusedRegion.FusedRuns - before;
            // The planner alone: its regions and library calls, no hand-written kernel (SubBlockPlanner.HandKernels off).
            SubBlockPlanner.HandKernels = false;
            before = FusedRegion.FusedRuns;
            plannerOnly = model.call(x);
            plannerRuns = FusedRegion.FusedRuns - before;
            SubBlockPlanner.HandKernels = true;
            FusedRegion.Enabled = false;
            without = model.call(x);
            MixDispatch.FusedEnabled = false;
            reference = model.call(x);
        }
        finally
        {
            FusedRegion.Enabled = true;
            SubBlockPlanner.HandKernels = true;
            MixDispatch.FusedEnabled = true;
            torch.backends.cudnn.allow_tf32 = cudnnTf32;
            torch.backends.cuda.matmul.allow_tf32 = cublasTf32;
        }
        double regions = Gpu.RelErr(withRegions, without);
        double all = Gpu.RelErr(withRegions, reference);
        double planner = Gpu.RelErr(plannerOnly, reference);
        double tol = dt == ScalarType.Float32 ? 1e-5 : 5e-2;
        Console.WriteLine($"{name} {dtype} ({ZooGpuCases.Recipe(name)}; TF32 defaults cudnn {cudnnTf32}, cublas {cublasTf32}): " +
                          $"{runs} region launches; regions vs none {regions:g3}; all fused vs fusion off {all:g3}; " +
                          $"planner only ({plannerRuns} region launches) vs fusion off {planner:g3}");
        Assert.True(regions <= tol, $"{name} {dtype}: regions on vs off, relative error {regions} > {tol}");
        Assert.True(all <= tol, $"{name} {dtype}: everything fused vs MixDispatch.FusedEnabled = false, relative error {all} > {tol}");
        if (name is "mamba_130m" or "mamba2_lm" or "gla_lm" or "softs" or "patchtsmixer" or "hybrid_lm") Assert.True(runs > 0, $"{name}: no region ran");
        Assert.True(planner <= tol, $"{name} {dtype}: planner regions only (no hand kernel) vs MixDispatch.FusedEnabled = false, relative error {planner} > {tol}");
        // The MetaFormers' sub-blocks are planned: without hand kernels their norms and epilogues run as regions.
        if (name is "poolformer_s12" or "convformer_s18" or "caformer_s18") Assert.True(plannerRuns > runs, $"{name}: planner only ran {plannerRuns} regions, fused {runs}");
    }

    private static ScalarType Dt(string s) => s switch
    {
        "f32" => ScalarType.Float32,
        "f16" => ScalarType.Float16,
        _ => ScalarType.BFloat16,
    };
}
