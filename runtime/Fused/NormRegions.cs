using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The channel LayerNorm of NCHW tensors (<see cref="LayerNorm2d"/>, <see cref="LayerNorm2dNoBias"/>: the MetaFormers'
    /// norm before every mixer and MLP) as one fused region of the fusion planner, where the hand-written
    /// <see cref="FusedOps.LayerNorm"/> declines (it takes channels-last memory only). The sources are exactly what the
    /// planner's emitter writes for the norm in tensor math, <c>d = x - mean(x, 1); d * rsqrt(mean(d * d, 1) + eps) * w (+ b)</c>
    /// (Mix.Generator.Tests' NormRegionSourceTests holds them equal); the launch takes the column mapping (consecutive
    /// pixels on consecutive lanes, each walking its channels), so the norm reads and writes NCHW in place, where the
    /// reference permutes to channels-last, copies and permutes back.
    /// </summary>
    public static class NormRegions
    {
        /// <summary>Region of <c>layernorm2d</c>: inputs x [B, C, H, W], weight [C, 1, 1], bias [C, 1, 1]; scalar eps.</summary>
        public static readonly FusedRegionKernel LayerNorm2dAffine = FusedRegionKernel.Row("layernorm2d", 3, 1, axis: -3, reduced: false,
            reductions: new[] { 0b1, 0b1 }, source: LayerNorm2dAffineSource);

        /// <summary>Region of <c>layernorm2d_nobias</c>: inputs x, weight [C, 1, 1]; scalar eps.</summary>
        public static readonly FusedRegionKernel LayerNorm2dWeight = FusedRegionKernel.Row("layernorm2d_nobias", 2, 1, axis: -3, reduced: false,
            reductions: new[] { 0b1, 0b1 }, source: LayerNorm2dWeightSource);

        /// <summary>
        /// Region of <c>layernorm_nobias</c> over the last axis (tokens <c>[B, N, C]</c>): the same arithmetic as
        /// <see cref="LayerNorm2dWeight"/> (the source does not depend on the axis), inputs x, weight [C]; scalar eps.
        /// </summary>
        public static readonly FusedRegionKernel LayerNormLastWeight = FusedRegionKernel.Row("layernorm_nobias", 2, 1, axis: -1, reduced: false,
            reductions: new[] { 0b1, 0b1 }, source: LayerNorm2dWeightSource);

        /// <summary>
        /// The norm of an NCHW-contiguous <paramref name="x"/> through its region, or null (other layouts, no weight, CPU,
        /// gradients, regions off: <see cref="FusedRegion.TryRun"/>'s rules). <paramref name="region"/> caches the module's
        /// binding of eps.
        /// </summary>
        internal static Tensor? LayerNorm2d(ref FusedRegion? region, Tensor x, Tensor? weight, Tensor? bias, double eps)
        {
            if (weight is null || x.dim() != 4) return null;
            // cheap checks first: on the CPU (training, the examples) the reference runs at no extra cost
            if (FusedRegion.Emulator is null && !(FusedRegion.Enabled && Builtins.MixDispatch.FusedEnabled && x.is_cuda)) return null;
            if (SubBlockPlanner.Avoids(SubBlockPlanner.NchwLayerNorm) || !x.is_contiguous()) return null;
            region ??= (bias is null ? LayerNorm2dWeight : LayerNorm2dAffine).Bind(eps);
            long c = weight.shape[0];
            using var scope = torch.NewDisposeScope();
            var w = weight.view(c, 1, 1);
            var y = bias is null ? region.TryRun(x, w) : region.TryRun(x, w, bias.view(c, 1, 1));
            return y?.MoveToOuterDisposeScope();
        }

        // What CudaRegionEmitter writes for the norm with bias (held equal by NormRegionTests).
        internal const string LayerNorm2dAffineSource = @"// layernorm2d: (x - mean(x, -3)) * rsqrt(var(x, -3) + eps) * weight + bias
#define MIX_INPUTS 3
#define MIX_ROW 1
#define MIX_PHASES 2
#define MIX_SLOTS 2
#define MIX_REDUCED 0
// Accumulator slots: the start value and how two partial results combine.
__device__ __forceinline__ float mix_slot_init(int k) {
  if (k == 0) return 0.0f;
  if (k == 1) return 0.0f;
  return 0.0f;
}
__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) {
  return a + b;
}
__device__ __forceinline__ int mix_slot_phase(int k) {
  if (k == 0) return 0;
  if (k == 1) return 1;
  return 0;
}
__device__ __forceinline__ void mix_phase(int p, const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n, float* acc) {
  if (p == 0) {
    acc[0] += in[0];
  }
  if (p == 1) {
    const float v4 = red[0] * inv_n;
    const float v5 = in[0] - v4;
    const float v6 = v5 * v5;
    acc[1] += v6;
  }
}
__device__ __forceinline__ float mix_eval(const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n) {
  const float v4 = red[0] * inv_n;
  const float v5 = in[0] - v4;
  const float v6 = v5 * v5;
  const float v7 = red[1] * inv_n;
  const float v8 = v7 + s[0];
  const float v9 = rsqrtf(v8);
  const float v10 = v5 * v9;
  const float v11 = v10 * in[1];
  const float v12 = v11 + in[2];
  return v12;
}
";

        // ... and without.
        internal const string LayerNorm2dWeightSource = @"// layernorm2d_nobias: (x - mean(x, -3)) * rsqrt(var(x, -3) + eps) * weight
#define MIX_INPUTS 2
#define MIX_ROW 1
#define MIX_PHASES 2
#define MIX_SLOTS 2
#define MIX_REDUCED 0
// Accumulator slots: the start value and how two partial results combine.
__device__ __forceinline__ float mix_slot_init(int k) {
  if (k == 0) return 0.0f;
  if (k == 1) return 0.0f;
  return 0.0f;
}
__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) {
  return a + b;
}
__device__ __forceinline__ int mix_slot_phase(int k) {
  if (k == 0) return 0;
  if (k == 1) return 1;
  return 0;
}
__device__ __forceinline__ void mix_phase(int p, const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n, float* acc) {
  if (p == 0) {
    acc[0] += in[0];
  }
  if (p == 1) {
    const float v3 = red[0] * inv_n;
    const float v4 = in[0] - v3;
    const float v5 = v4 * v4;
    acc[1] += v5;
  }
}
__device__ __forceinline__ float mix_eval(const float* __restrict__ in, const float* __restrict__ s, const float* red, float inv_n) {
  const float v3 = red[0] * inv_n;
  const float v4 = in[0] - v3;
  const float v5 = v4 * v4;
  const float v6 = red[1] * inv_n;
  const float v7 = v6 + s[0];
  const float v8 = rsqrtf(v7);
  const float v9 = v4 * v8;
  const float v10 = v9 * in[1];
  return v10;
}
";
    }
}
