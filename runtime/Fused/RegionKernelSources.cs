namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The launch skeleton of generated fused regions (<see cref="FusedRegionKernel"/>): argument block, loads and stores
    /// per dtype, index arithmetic, block reductions. The generator's CUDA (<c>mix_eval</c>, and for rows
    /// <c>mix_phase</c>/<c>mix_slot_*</c>) goes between <see cref="Head"/> and <see cref="Kernels"/>. Each input's dtype
    /// is <c>-DMIX_T&lt;i&gt;=0|1|2</c> (float32, float16, bfloat16), the output's <c>-DMIX_TO</c>; arithmetic is float32.
    /// </summary>
    public static class RegionKernelSources
    {
        /// <summary>The full translation unit of a region whose arithmetic is <paramref name="region"/>.</summary>
        /// <param name="region">The generator's CUDA of the region.</param>
        public static string Compose(string region) => Head + "\n// ---- region ----\n" + region + "\n// ---- launch ----\n" + Kernels;

        /// <summary>Before the region: dtypes, the argument block (<see cref="RegionArgs"/>), loads and stores.</summary>
        public const string Head = """
#ifndef MIX_TO
#define MIX_TO 0
#endif
#ifndef MIX_T0
#define MIX_T0 MIX_TO
#endif
#ifndef MIX_T1
#define MIX_T1 MIX_TO
#endif
#ifndef MIX_T2
#define MIX_T2 MIX_TO
#endif
#ifndef MIX_T3
#define MIX_T3 MIX_TO
#endif
#ifndef MIX_T4
#define MIX_T4 MIX_TO
#endif
#ifndef MIX_T5
#define MIX_T5 MIX_TO
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#define MIX_MAX_IN 8
#define MIX_MAX_DIMS 8
#define MIX_MAX_SCALARS 8

// Passed by value; the layout is Mix.Runtime.Fused.RegionArgs'. Pointwise: n elements over ndim dims (size, and
// stride[i] per input i; the output, index MIX_MAX_IN, is contiguous). Row: n rows over the dims other than the
// axis, row_len elements along it, axis_stride[i] per input.
struct mix_args {
  const void* in[MIX_MAX_IN];
  void* out;
  long long n;
  long long row_len;
  long long size[MIX_MAX_DIMS];
  long long stride[MIX_MAX_IN + 1][MIX_MAX_DIMS];
  long long axis_stride[MIX_MAX_IN + 1];
  int ndim;
  float s[MIX_MAX_SCALARS];
};
static_assert(sizeof(mix_args) == 840, "mix_args must match Mix.Runtime.Fused.RegionArgs");

__device__ __forceinline__ float mix_f16_to_f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short mix_f_to_f16(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float mix_bf16_to_f(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
__device__ __forceinline__ unsigned short mix_f_to_bf16(float f) {
#if __CUDA_ARCH__ >= 800
  unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
#endif
}

// Loads and stores of one dtype: one element, or four consecutive ones (16 bytes of float32, 8 of a half type).
template <int T> struct mix_io;
template <> struct mix_io<0> {
  static __device__ __forceinline__ float ld(const void* p, long long i) { return __ldg(reinterpret_cast<const float*>(p) + i); }
  static __device__ __forceinline__ void st(void* p, long long i, float v) { reinterpret_cast<float*>(p)[i] = v; }
  static __device__ __forceinline__ void ld4(const void* p, long long i, float* v) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(reinterpret_cast<const float*>(p) + i));
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
  }
  static __device__ __forceinline__ void st4(void* p, long long i, const float* v) {
    *reinterpret_cast<float4*>(reinterpret_cast<float*>(p) + i) = make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <int T> struct mix_io16 {
  static __device__ __forceinline__ float cvt(unsigned int h) { return T == 1 ? mix_f16_to_f((unsigned short)h) : mix_bf16_to_f((unsigned short)h); }
  static __device__ __forceinline__ unsigned int back(float f) { return T == 1 ? mix_f_to_f16(f) : mix_f_to_bf16(f); }
  static __device__ __forceinline__ float ld(const void* p, long long i) { return cvt(__ldg(reinterpret_cast<const unsigned short*>(p) + i)); }
  static __device__ __forceinline__ void st(void* p, long long i, float v) { reinterpret_cast<unsigned short*>(p)[i] = (unsigned short)back(v); }
  static __device__ __forceinline__ void ld4(const void* p, long long i, float* v) {
    const uint2 q = __ldg(reinterpret_cast<const uint2*>(reinterpret_cast<const unsigned short*>(p) + i));
    v[0] = cvt(q.x & 0xffffu); v[1] = cvt(q.x >> 16); v[2] = cvt(q.y & 0xffffu); v[3] = cvt(q.y >> 16);
  }
  static __device__ __forceinline__ void st4(void* p, long long i, const float* v) {
    uint2 q;
    q.x = back(v[0]) | (back(v[1]) << 16);
    q.y = back(v[2]) | (back(v[3]) << 16);
    *reinterpret_cast<uint2*>(reinterpret_cast<unsigned short*>(p) + i) = q;
  }
};
template <> struct mix_io<1> : mix_io16<1> {};
template <> struct mix_io<2> : mix_io16<2> {};
""";

        /// <summary>After the region: the kernels (<c>mix_region_strided</c>, <c>mix_region_flat</c> or <c>mix_region_row</c>).</summary>
        public const string Kernels = """
// Every input at its offset (inputs beyond MIX_INPUTS are never read).
__device__ __forceinline__ void mix_load(const mix_args& a, const long long* off, float* in) {
#if MIX_INPUTS > 0
  in[0] = mix_io<MIX_T0>::ld(a.in[0], off[0]);
#endif
#if MIX_INPUTS > 1
  in[1] = mix_io<MIX_T1>::ld(a.in[1], off[1]);
#endif
#if MIX_INPUTS > 2
  in[2] = mix_io<MIX_T2>::ld(a.in[2], off[2]);
#endif
#if MIX_INPUTS > 3
  in[3] = mix_io<MIX_T3>::ld(a.in[3], off[3]);
#endif
#if MIX_INPUTS > 4
  in[4] = mix_io<MIX_T4>::ld(a.in[4], off[4]);
#endif
#if MIX_INPUTS > 5
  in[5] = mix_io<MIX_T5>::ld(a.in[5], off[5]);
#endif
}

#if !MIX_ROW
// One output element per thread, grid-stride; inputs broadcast by their strides (0 along a broadcast dim).
extern "C" __global__ void mix_region_strided(const mix_args a) {
  float in[MIX_MAX_IN];
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < a.n; e += step) {
    long long off[MIX_MAX_IN];
#pragma unroll
    for (int i = 0; i < MIX_MAX_IN; i++) off[i] = 0;
    long long r = e;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const long long c = r % a.size[d];
      r /= a.size[d];
#pragma unroll
      for (int i = 0; i < MIX_INPUTS; i++) off[i] += c * a.stride[i][d];
    }
    mix_load(a, off, in);
    mix_io<MIX_TO>::st(a.out, e, mix_eval(in, a.s));
  }
}

// Every input dense in the output's shape: four consecutive elements per thread, vector loads and stores (the host
// checks n % 4 == 0 and the pointers' alignment).
extern "C" __global__ void mix_region_flat(const mix_args a) {
  const long long n4 = a.n / 4;
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x; q < n4; q += step) {
    const long long e = q * 4;
    float v[MIX_MAX_IN][4];
#if MIX_INPUTS > 0
    mix_io<MIX_T0>::ld4(a.in[0], e, v[0]);
#endif
#if MIX_INPUTS > 1
    mix_io<MIX_T1>::ld4(a.in[1], e, v[1]);
#endif
#if MIX_INPUTS > 2
    mix_io<MIX_T2>::ld4(a.in[2], e, v[2]);
#endif
#if MIX_INPUTS > 3
    mix_io<MIX_T3>::ld4(a.in[3], e, v[3]);
#endif
#if MIX_INPUTS > 4
    mix_io<MIX_T4>::ld4(a.in[4], e, v[4]);
#endif
#if MIX_INPUTS > 5
    mix_io<MIX_T5>::ld4(a.in[5], e, v[5]);
#endif
    float o[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float in[MIX_MAX_IN];
#pragma unroll
      for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[i][k];
      o[k] = mix_eval(in, a.s);
    }
    mix_io<MIX_TO>::st4(a.out, e, o);
  }
}
#else
#define MIX_NSLOTS (MIX_SLOTS > 0 ? MIX_SLOTS : 1)
// One row per block (grid-stride over rows): each phase walks the row once and reduces its slots across the block
// (warp shuffles, then thread 0 over the warps); the output pass walks it once more.
extern "C" __global__ void mix_region_row(const mix_args a) {
  __shared__ float red[MIX_NSLOTS];
  __shared__ float part[MIX_NSLOTS][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  const float inv_n = 1.0f / (float)a.row_len;
  float in[MIX_MAX_IN];
  for (long long row = blockIdx.x; row < a.n; row += gridDim.x) {
    long long base[MIX_MAX_IN + 1];
#pragma unroll
    for (int i = 0; i <= MIX_MAX_IN; i++) base[i] = 0;
    long long r = row;
    for (int d = a.ndim - 1; d >= 0; d--) {
      const long long c = r % a.size[d];
      r /= a.size[d];
#pragma unroll
      for (int i = 0; i < MIX_INPUTS; i++) base[i] += c * a.stride[i][d];
      base[MIX_MAX_IN] += c * a.stride[MIX_MAX_IN][d];
    }
    for (int p = 0; p < MIX_PHASES; p++) {
      float acc[MIX_NSLOTS];
#pragma unroll
      for (int k = 0; k < MIX_NSLOTS; k++) acc[k] = mix_slot_init(k);
      for (long long j = threadIdx.x; j < a.row_len; j += blockDim.x) {
        long long off[MIX_MAX_IN];
#pragma unroll
        for (int i = 0; i < MIX_INPUTS; i++) off[i] = base[i] + j * a.axis_stride[i];
        mix_load(a, off, in);
        mix_phase(p, in, a.s, red, inv_n, acc);
      }
#pragma unroll
      for (int k = 0; k < MIX_NSLOTS; k++) {
        float v = acc[k];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v = mix_slot_combine(k, v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) part[k][warp] = v;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
#pragma unroll
        for (int k = 0; k < MIX_NSLOTS; k++) {
          if (mix_slot_phase(k) != p) continue;
          float v = part[k][0];
          for (int w = 1; w < warps; w++) v = mix_slot_combine(k, v, part[k][w]);
          red[k] = v;
        }
      }
      __syncthreads();
    }
#if MIX_REDUCED
    if (threadIdx.x == 0) mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN], mix_eval_reduced(a.s, red, inv_n));
#else
    for (long long j = threadIdx.x; j < a.row_len; j += blockDim.x) {
      long long off[MIX_MAX_IN];
#pragma unroll
      for (int i = 0; i < MIX_INPUTS; i++) off[i] = base[i] + j * a.axis_stride[i];
      mix_load(a, off, in);
      mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN] + j * a.axis_stride[MIX_MAX_IN], mix_eval(in, a.s, red, inv_n));
    }
#endif
    __syncthreads();
  }
}
#endif
""";
    }
}
