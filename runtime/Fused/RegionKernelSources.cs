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
// axis, row_len elements along it, axis_stride[i] per input; split: the threads sharing one row in mix_region_cols, the
// lanes sharing one row in mix_region_warp/warp4.
struct mix_args {
  const void* in[MIX_MAX_IN];
  void* out;
  long long n;
  long long row_len;
  long long size[MIX_MAX_DIMS];
  long long stride[MIX_MAX_IN + 1][MIX_MAX_DIMS];
  long long axis_stride[MIX_MAX_IN + 1];
  int ndim;
  int split;
  float s[MIX_MAX_SCALARS];
};
static_assert(sizeof(mix_args) == 840, "mix_args must match Mix.Runtime.Fused.RegionArgs");

// (Mix.Generator.Tests' host emulation defines MIX_HOST_F16 and its own conversions: PTX has no meaning there.)
#ifndef MIX_HOST_F16
__device__ __forceinline__ float mix_f16_to_f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short mix_f_to_f16(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif
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

// Loads and stores of one dtype: one element, or four or eight consecutive ones (16 or 32 bytes of float32, 8 or 16 of a
// half type).
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
  static __device__ __forceinline__ void ld8(const void* p, long long i, float* v) { ld4(p, i, v); ld4(p, i + 4, v + 4); }
  static __device__ __forceinline__ void st8(void* p, long long i, const float* v) { st4(p, i, v); st4(p, i + 4, v + 4); }
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
  static __device__ __forceinline__ void ld8(const void* p, long long i, float* v) {
    const uint4 q = __ldg(reinterpret_cast<const uint4*>(reinterpret_cast<const unsigned short*>(p) + i));
    v[0] = cvt(q.x & 0xffffu); v[1] = cvt(q.x >> 16); v[2] = cvt(q.y & 0xffffu); v[3] = cvt(q.y >> 16);
    v[4] = cvt(q.z & 0xffffu); v[5] = cvt(q.z >> 16); v[6] = cvt(q.w & 0xffffu); v[7] = cvt(q.w >> 16);
  }
  static __device__ __forceinline__ void st8(void* p, long long i, const float* v) {
    uint4 q;
    q.x = back(v[0]) | (back(v[1]) << 16);
    q.y = back(v[2]) | (back(v[3]) << 16);
    q.z = back(v[4]) | (back(v[5]) << 16);
    q.w = back(v[6]) | (back(v[7]) << 16);
    *reinterpret_cast<uint4*>(reinterpret_cast<unsigned short*>(p) + i) = q;
  }
};
template <> struct mix_io<1> : mix_io16<1> {};
template <> struct mix_io<2> : mix_io16<2> {};
""";

        /// <summary>After the region: the kernels (pointwise: <c>mix_region_strided</c>, <c>mix_region_vec</c>; row:
        /// <c>mix_region_row</c>/<c>row4</c> (a block per row), <c>mix_region_warp</c>/<c>warp4</c> (a warp per row),
        /// <c>mix_region_cols</c> (an axis that is not innermost); <see cref="FusedRegionKernel"/> picks one).</summary>
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

// mix_region_vec: MIX_V consecutive output elements per thread (16 bytes of the output's dtype), each input read by its
// access class, fixed at compile time (-DMIX_A<i>, chosen on the host by FusedRegionKernel.Classify from the collapsed
// walk) so the common layouts need no per-element index arithmetic:
//   0 general: its strides over the ndim dims, per element (as mix_region_strided);
//   1 dense: laid out as the output, vector loads at the output's index;
//   2 one value (every stride 0): loaded once per thread;
//   3 a vector along one dim (a per-channel parameter) whose run of equal values spans whole vectors: one load per vector;
//   4 the same along the innermost dim with unit steps and whole vectors per period: vector loads;
//   5 the same in any other case: one load per element, the channel stepped without divisions.
// Classes 3-5 read element e at ((e / inner) % count) * step, with inner, count and step in the last three slots of the
// input's stride row (MIX_CH; the host uses these classes only where the walk has at most MIX_MAX_DIMS - 3 dims, so
// mix_region_strided still finds the strides). MIX_IX is int where every index fits (-DMIX_IX32=1).
// Elements past the last whole vector run one per thread. The host takes this entry only with 16-byte aligned pointers.
#ifndef MIX_V
#define MIX_V (MIX_TO == 0 ? 4 : 8)
#endif
#ifndef MIX_A0
#define MIX_A0 0
#endif
#ifndef MIX_A1
#define MIX_A1 0
#endif
#ifndef MIX_A2
#define MIX_A2 0
#endif
#ifndef MIX_A3
#define MIX_A3 0
#endif
#ifndef MIX_A4
#define MIX_A4 0
#endif
#ifndef MIX_A5
#define MIX_A5 0
#endif
#define MIX_CH (MIX_MAX_DIMS - 3)
#if MIX_IX32
typedef int mix_ix;
#else
typedef long long mix_ix;
#endif

template <int T>
__device__ __forceinline__ void mix_ldv(const void* p, mix_ix i, float* v) {
  if (MIX_V == 8) mix_io<T>::ld8(p, i, v);
  else if (MIX_V == 4) mix_io<T>::ld4(p, i, v);
  else v[0] = mix_io<T>::ld(p, i);
}

__device__ __forceinline__ void mix_stv(void* p, mix_ix i, const float* v) {
  if (MIX_V == 8) mix_io<MIX_TO>::st8(p, i, v);
  else if (MIX_V == 4) mix_io<MIX_TO>::st4(p, i, v);
  else mix_io<MIX_TO>::st(p, i, v[0]);
}

// The general walk of input i: the offset of output element e.
__device__ __forceinline__ long long mix_strided_off(const mix_args& a, int i, long long e) {
  long long off = 0, r = e;
  for (int d = a.ndim - 1; d >= 0; d--) {
    const long long c = r % a.size[d];
    r /= a.size[d];
    off += c * a.stride[i][d];
  }
  return off;
}

// Output element e of input i (class A).
template <int T, int A>
__device__ __forceinline__ float mix_ld1(const mix_args& a, int i, mix_ix e) {
  if (A == 1) return mix_io<T>::ld(a.in[i], e);
  if (A == 2) return mix_io<T>::ld(a.in[i], 0);
  if (A >= 3) return mix_io<T>::ld(a.in[i], (e / (mix_ix)a.stride[i][MIX_CH]) % (mix_ix)a.stride[i][MIX_CH + 1] * (mix_ix)a.stride[i][MIX_CH + 2]);
  return mix_io<T>::ld(a.in[i], mix_strided_off(a, i, e));
}

// Output elements e .. e + MIX_V - 1 of input i (class A; one is the value a class-2 input was given once).
template <int T, int A>
__device__ __forceinline__ void mix_ldvec(const mix_args& a, int i, mix_ix e, float one, float* v) {
  if (A == 1) {
    mix_ldv<T>(a.in[i], e, v);
  } else if (A == 2) {
#pragma unroll
    for (int k = 0; k < MIX_V; k++) v[k] = one;
  } else if (A == 3) {
    const float t = mix_ld1<T, 3>(a, i, e);
#pragma unroll
    for (int k = 0; k < MIX_V; k++) v[k] = t;
  } else if (A == 4) {
    mix_ldv<T>(a.in[i], e % (mix_ix)a.stride[i][MIX_CH + 1], v);
  } else if (A == 5) {
    const mix_ix inner = (mix_ix)a.stride[i][MIX_CH], count = (mix_ix)a.stride[i][MIX_CH + 1], step = (mix_ix)a.stride[i][MIX_CH + 2];
    const mix_ix q = e / inner;
    mix_ix r = e - q * inner, c = q % count;
#pragma unroll
    for (int k = 0; k < MIX_V; k++) {
      v[k] = mix_io<T>::ld(a.in[i], c * step);
      if (++r == inner) { r = 0; if (++c == count) c = 0; }
    }
  } else {
#pragma unroll
    for (int k = 0; k < MIX_V; k++) v[k] = mix_io<T>::ld(a.in[i], mix_strided_off(a, i, e + k));
  }
}

#define MIX_ONE(I) one[I] = MIX_A##I == 2 ? mix_io<MIX_T##I>::ld(a.in[I], 0) : 0.0f;
#define MIX_LDVEC(I) mix_ldvec<MIX_T##I, MIX_A##I>(a, I, e, one[I], v[I]);
#define MIX_LD1(I) in[I] = MIX_A##I == 2 ? one[I] : mix_ld1<MIX_T##I, MIX_A##I>(a, I, e);
#if MIX_INPUTS > 5
#define MIX_EACH(M) M(0) M(1) M(2) M(3) M(4) M(5)
#elif MIX_INPUTS > 4
#define MIX_EACH(M) M(0) M(1) M(2) M(3) M(4)
#elif MIX_INPUTS > 3
#define MIX_EACH(M) M(0) M(1) M(2) M(3)
#elif MIX_INPUTS > 2
#define MIX_EACH(M) M(0) M(1) M(2)
#elif MIX_INPUTS > 1
#define MIX_EACH(M) M(0) M(1)
#else
#define MIX_EACH(M) M(0)
#endif

// MIX_U > 1 (FusedRegionKernel.PointwiseUnroll): U vectors per thread and iteration, every load issued before any is
// computed, as the hand-written bias_act_vec does: a grid-stride thread otherwise waits for each vector's load in turn.
#ifndef MIX_U
#define MIX_U 1
#endif
#define MIX_LDVEC_U(I) mix_ldvec<MIX_T##I, MIX_A##I>(a, I, e[u], one[I], v[u][I]);

extern "C" __global__ void mix_region_vec(const mix_args a) {
  const mix_ix n = (mix_ix)a.n, nv = n / MIX_V;
  const mix_ix step = (mix_ix)gridDim.x * (mix_ix)blockDim.x;
  const mix_ix t0 = (mix_ix)blockIdx.x * (mix_ix)blockDim.x + (mix_ix)threadIdx.x;
  float one[MIX_MAX_IN];
  MIX_EACH(MIX_ONE)
  mix_ix q = t0;
#if MIX_U > 1
  for (; q + (MIX_U - 1) * step < nv; q += MIX_U * step) {
    mix_ix e[MIX_U];
    float v[MIX_U][MIX_MAX_IN][MIX_V];
#pragma unroll
    for (int u = 0; u < MIX_U; u++) {
      e[u] = (q + u * step) * MIX_V;
      MIX_EACH(MIX_LDVEC_U)
    }
#pragma unroll
    for (int u = 0; u < MIX_U; u++) {
      float o[MIX_V];
#pragma unroll
      for (int k = 0; k < MIX_V; k++) {
        float in[MIX_MAX_IN];
#pragma unroll
        for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[u][i][k];
        o[k] = mix_eval(in, a.s);
      }
      mix_stv(a.out, e[u], o);
    }
  }
#endif
  for (; q < nv; q += step) {
    const mix_ix e = q * MIX_V;
    float v[MIX_MAX_IN][MIX_V];
    MIX_EACH(MIX_LDVEC)
    float o[MIX_V];
#pragma unroll
    for (int k = 0; k < MIX_V; k++) {
      float in[MIX_MAX_IN];
#pragma unroll
      for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[i][k];
      o[k] = mix_eval(in, a.s);
    }
    mix_stv(a.out, e, o);
  }
  for (mix_ix e = nv * MIX_V + t0; e < n; e += step) {
    float in[MIX_MAX_IN];
    MIX_EACH(MIX_LD1)
    mix_io<MIX_TO>::st(a.out, e, mix_eval(in, a.s));
  }
}
#else
#define MIX_NSLOTS (MIX_SLOTS > 0 ? MIX_SLOTS : 1)
// Row regions. Three mappings, chosen on the host from the layout, the row length and the row count
// (FusedRegionKernel.Prepare): a warp per row (short rows along the innermost axis), a block per row (long rows), and
// mix_region_cols for an axis that is not innermost (a norm over C of [B, C, H, W]): consecutive threads take
// consecutive rows, which lie next to each other in memory, so every load of the walk along the axis is coalesced.
// The warp and block mappings read four elements at a time (the *4 entries) when every input walks the row densely or
// not at all. Loops whose bodies hold barriers or shuffles run the same number of times in every thread of a block.

// The offsets of a row's first element in every input (base[i]) and in the output (base[MIX_MAX_IN]).
__device__ __forceinline__ void mix_row_base(const mix_args& a, long long row, long long* base) {
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
}

__device__ __forceinline__ void mix_acc_init(float* acc) {
#pragma unroll
  for (int k = 0; k < MIX_NSLOTS; k++) acc[k] = mix_slot_init(k);
}

// Element j of the row into phase p's accumulators.
__device__ __forceinline__ void mix_row_acc(const mix_args& a, const long long* base, long long j, int p, const float* red, float inv_n, float* acc) {
  float in[MIX_MAX_IN];
  long long off[MIX_MAX_IN];
#pragma unroll
  for (int i = 0; i < MIX_INPUTS; i++) off[i] = base[i] + j * a.axis_stride[i];
  mix_load(a, off, in);
  mix_phase(p, in, a.s, red, inv_n, acc);
}

// Elements j..j+MIX_RV-1 of every input: a vector load where the input walks the row (axis stride 1), one load repeated
// where it is broadcast along it (axis stride 0). The host checks strides, row_len % MIX_RV == 0 and alignment. MIX_RV is
// 4 (16 bytes of float32, 8 of a half type), or 8 where every input and the output are half types
// (FusedRegionKernel.RowVector16: 16-byte loads, as the hand-written layer_norm_rows makes).
#ifndef MIX_RV
#define MIX_RV 4
#endif
template <int T>
__device__ __forceinline__ void mix_ldrv(const void* p, long long i, float* v) {
  if (MIX_RV == 8) mix_io<T>::ld8(p, i, v); else mix_io<T>::ld4(p, i, v);
}
#define MIX_LD4(I) \
  if (a.axis_stride[I]) mix_ldrv<MIX_T##I>(a.in[I], base[I] + j, v[I]); \
  else { const float t = mix_io<MIX_T##I>::ld(a.in[I], base[I]); for (int q = 0; q < MIX_RV; q++) v[I][q] = t; }
__device__ __forceinline__ void mix_load4(const mix_args& a, const long long* base, long long j, float (*v)[MIX_RV]) {
#if MIX_INPUTS > 0
  MIX_LD4(0)
#endif
#if MIX_INPUTS > 1
  MIX_LD4(1)
#endif
#if MIX_INPUTS > 2
  MIX_LD4(2)
#endif
#if MIX_INPUTS > 3
  MIX_LD4(3)
#endif
#if MIX_INPUTS > 4
  MIX_LD4(4)
#endif
#if MIX_INPUTS > 5
  MIX_LD4(5)
#endif
}

__device__ __forceinline__ void mix_row_acc4(const mix_args& a, const long long* base, long long j, int p, const float* red, float inv_n, float* acc) {
  float v[MIX_MAX_IN][MIX_RV];
  mix_load4(a, base, j, v);
#pragma unroll
  for (int q = 0; q < MIX_RV; q++) {
    float in[MIX_MAX_IN];
#pragma unroll
    for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[i][q];
    mix_phase(p, in, a.s, red, inv_n, acc);
  }
}

#if !MIX_REDUCED
// Output element j of the row.
__device__ __forceinline__ void mix_row_out(const mix_args& a, const long long* base, long long j, const float* red, float inv_n) {
  float in[MIX_MAX_IN];
  long long off[MIX_MAX_IN];
#pragma unroll
  for (int i = 0; i < MIX_INPUTS; i++) off[i] = base[i] + j * a.axis_stride[i];
  mix_load(a, off, in);
  mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN] + j * a.axis_stride[MIX_MAX_IN], mix_eval(in, a.s, red, inv_n));
}

// Output elements j..j+MIX_RV-1 (the output walks the row densely: it is contiguous and the axis is innermost).
__device__ __forceinline__ void mix_row_out4(const mix_args& a, const long long* base, long long j, const float* red, float inv_n) {
  float v[MIX_MAX_IN][MIX_RV];
  mix_load4(a, base, j, v);
  float o[MIX_RV];
#pragma unroll
  for (int q = 0; q < MIX_RV; q++) {
    float in[MIX_MAX_IN];
#pragma unroll
    for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[i][q];
    o[q] = mix_eval(in, a.s, red, inv_n);
  }
  if (MIX_RV == 8) mix_io<MIX_TO>::st8(a.out, base[MIX_MAX_IN] + j, o); else mix_io<MIX_TO>::st4(a.out, base[MIX_MAX_IN] + j, o);
}
#endif

// A block per row (grid-stride over rows): each phase walks the row once and reduces its slots across the block
// (warp shuffles, then thread 0 over the warps); the output pass walks it once more.
template <bool V>
__device__ __forceinline__ void mix_row_block(const mix_args& a) {
  __shared__ float red[MIX_NSLOTS];
  __shared__ float part[MIX_NSLOTS][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  const float inv_n = 1.0f / (float)a.row_len;
  const long long first = V ? (long long)threadIdx.x * MIX_RV : (long long)threadIdx.x;
  const long long step = V ? (long long)blockDim.x * MIX_RV : (long long)blockDim.x;
  for (long long row = blockIdx.x; row < a.n; row += gridDim.x) {
    long long base[MIX_MAX_IN + 1];
    mix_row_base(a, row, base);
    for (int p = 0; p < MIX_PHASES; p++) {
      float acc[MIX_NSLOTS];
      mix_acc_init(acc);
      for (long long j = first; j < a.row_len; j += step) {
        if (V) mix_row_acc4(a, base, j, p, red, inv_n, acc);
        else mix_row_acc(a, base, j, p, red, inv_n, acc);
      }
#pragma unroll
      for (int k = 0; k < MIX_NSLOTS; k++) {
        if (mix_slot_phase(k) != p) continue;
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
    for (long long j = first; j < a.row_len; j += step) {
      if (V) mix_row_out4(a, base, j, red, inv_n);
      else mix_row_out(a, base, j, red, inv_n);
    }
#endif
    __syncthreads();
  }
}

// A group of a.split lanes per row (a power of two up to a warp; fewer than 32 where the row has fewer vectors than a
// warp has lanes, so short rows keep every lane busy), blockDim.x / a.split rows per block: reductions by shuffles
// within the group alone (no shared memory, no barrier), every lane ends with the row's values. The loop over row
// groups is uniform across the block, and every lane makes the same shuffles; a group past the last row walks nothing.
template <bool V>
__device__ __forceinline__ void mix_row_warp(const mix_args& a) {
  const int G = a.split;
  const int lane = threadIdx.x % G, grp = threadIdx.x / G, groups = blockDim.x / G;
  const float inv_n = 1.0f / (float)a.row_len;
  const long long first = V ? (long long)lane * MIX_RV : (long long)lane;
  const long long step = V ? (long long)G * MIX_RV : (long long)G;
  for (long long r0 = (long long)blockIdx.x * groups; r0 < a.n; r0 += (long long)gridDim.x * groups) {
    const long long row = r0 + grp;
    const long long len = row < a.n ? a.row_len : 0;
    long long base[MIX_MAX_IN + 1];
    mix_row_base(a, row < a.n ? row : 0, base);
    float red[MIX_NSLOTS];
#pragma unroll
    for (int k = 0; k < MIX_NSLOTS; k++) red[k] = 0.0f;
    for (int p = 0; p < MIX_PHASES; p++) {
      float acc[MIX_NSLOTS];
      mix_acc_init(acc);
      for (long long j = first; j < len; j += step) {
        if (V) mix_row_acc4(a, base, j, p, red, inv_n, acc);
        else mix_row_acc(a, base, j, p, red, inv_n, acc);
      }
#pragma unroll
      for (int k = 0; k < MIX_NSLOTS; k++) {
        if (mix_slot_phase(k) != p) continue;
        float v = acc[k];
        for (int o = G >> 1; o > 0; o >>= 1) v = mix_slot_combine(k, v, __shfl_xor_sync(0xffffffffu, v, o));
        red[k] = v;
      }
    }
#if MIX_REDUCED
    if (lane == 0 && len > 0) mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN], mix_eval_reduced(a.s, red, inv_n));
#else
    for (long long j = first; j < len; j += step) {
      if (V) mix_row_out4(a, base, j, red, inv_n);
      else mix_row_out(a, base, j, red, inv_n);
    }
#endif
  }
}

extern "C" __global__ void mix_region_row(const mix_args a) { mix_row_block<false>(a); }
extern "C" __global__ void mix_region_row4(const mix_args a) { mix_row_block<true>(a); }
extern "C" __global__ void mix_region_warp(const mix_args a) { mix_row_warp<false>(a); }
// MIX_RNV > 0 (FusedRegionKernel.RowInRegisters): the warp mapping's vector entry loads each lane's MIX_RNV vectors of
// the row once and runs every phase and the output from registers, as the hand-written layer_norm_rows does, instead of
// reading the row again per phase. Each lane takes the same elements in the same order as mix_row_warp<true>, so the
// sums, and the results, are the same.
#ifndef MIX_RNV
#define MIX_RNV 0
#endif
#if MIX_RNV > 0
__device__ __forceinline__ void mix_row_warp_regs(const mix_args& a) {
  const int G = a.split;
  const int lane = threadIdx.x % G, grp = threadIdx.x / G, groups = blockDim.x / G;
  const float inv_n = 1.0f / (float)a.row_len;
  const long long first = (long long)lane * MIX_RV, step = (long long)G * MIX_RV;
  for (long long r0 = (long long)blockIdx.x * groups; r0 < a.n; r0 += (long long)gridDim.x * groups) {
    const long long row = r0 + grp;
    const long long len = row < a.n ? a.row_len : 0;
    long long base[MIX_MAX_IN + 1];
    mix_row_base(a, row < a.n ? row : 0, base);
    float v[MIX_RNV][MIX_MAX_IN][MIX_RV];
#pragma unroll
    for (int u = 0; u < MIX_RNV; u++)
      if (first + u * step < len) mix_load4(a, base, first + u * step, v[u]);
    float red[MIX_NSLOTS];
#pragma unroll
    for (int k = 0; k < MIX_NSLOTS; k++) red[k] = 0.0f;
#pragma unroll
    for (int p = 0; p < MIX_PHASES; p++) {
      float acc[MIX_NSLOTS];
      mix_acc_init(acc);
#pragma unroll
      for (int u = 0; u < MIX_RNV; u++) {
        if (first + u * step >= len) continue;
#pragma unroll
        for (int q = 0; q < MIX_RV; q++) {
          float in[MIX_MAX_IN];
#pragma unroll
          for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[u][i][q];
          mix_phase(p, in, a.s, red, inv_n, acc);
        }
      }
#pragma unroll
      for (int k = 0; k < MIX_NSLOTS; k++) {
        if (mix_slot_phase(k) != p) continue;
        float t = acc[k];
        for (int o = G >> 1; o > 0; o >>= 1) t = mix_slot_combine(k, t, __shfl_xor_sync(0xffffffffu, t, o));
        red[k] = t;
      }
    }
#if MIX_REDUCED
    if (lane == 0 && len > 0) mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN], mix_eval_reduced(a.s, red, inv_n));
#else
#pragma unroll
    for (int u = 0; u < MIX_RNV; u++) {
      const long long j = first + u * step;
      if (j >= len) continue;
      float o[MIX_RV];
#pragma unroll
      for (int q = 0; q < MIX_RV; q++) {
        float in[MIX_MAX_IN];
#pragma unroll
        for (int i = 0; i < MIX_INPUTS; i++) in[i] = v[u][i][q];
        o[q] = mix_eval(in, a.s, red, inv_n);
      }
      if (MIX_RV == 8) mix_io<MIX_TO>::st8(a.out, base[MIX_MAX_IN] + j, o); else mix_io<MIX_TO>::st4(a.out, base[MIX_MAX_IN] + j, o);
    }
#endif
  }
}
extern "C" __global__ void mix_region_warp4(const mix_args a) { mix_row_warp_regs(a); }
#else
extern "C" __global__ void mix_region_warp4(const mix_args a) { mix_row_warp<true>(a); }
#endif

// An axis that is not innermost: lane l of a warp takes row r0 + 32g + l, and the split (a.split: 1, 2, 4 or 8 warps of
// a block, blockDim.x == 256) walks the axis of the same 32 rows in an interleaved way, combining the parts in shared
// memory; with split 1 a thread owns a whole row and nothing is shared.
extern "C" __global__ void mix_region_cols(const mix_args a) {
  __shared__ float part[MIX_NSLOTS][256];
  const int split = a.split;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, sy = w % split, g = w / split;
  const long long rows_per_block = (long long)(blockDim.x >> 5) / split * 32;
  const float inv_n = 1.0f / (float)a.row_len;
  for (long long r0 = (long long)blockIdx.x * rows_per_block; r0 < a.n; r0 += (long long)gridDim.x * rows_per_block) {
    const long long row = r0 + g * 32 + lane;
    const long long len = row < a.n ? a.row_len : 0;
    long long base[MIX_MAX_IN + 1];
    mix_row_base(a, row < a.n ? row : 0, base);
    float red[MIX_NSLOTS];
#pragma unroll
    for (int k = 0; k < MIX_NSLOTS; k++) red[k] = 0.0f;
    for (int p = 0; p < MIX_PHASES; p++) {
      float acc[MIX_NSLOTS];
      mix_acc_init(acc);
      for (long long j = sy; j < len; j += split) mix_row_acc(a, base, j, p, red, inv_n, acc);
      if (split == 1) {
#pragma unroll
        for (int k = 0; k < MIX_NSLOTS; k++)
          if (mix_slot_phase(k) == p) red[k] = acc[k];
      } else {
#pragma unroll
        for (int k = 0; k < MIX_NSLOTS; k++) part[k][threadIdx.x] = acc[k];
        __syncthreads();
#pragma unroll
        for (int k = 0; k < MIX_NSLOTS; k++) {
          if (mix_slot_phase(k) != p) continue;
          float v = part[k][g * split * 32 + lane];
          for (int q = 1; q < split; q++) v = mix_slot_combine(k, v, part[k][(g * split + q) * 32 + lane]);
          red[k] = v;
        }
        __syncthreads();
      }
    }
#if MIX_REDUCED
    if (sy == 0 && len > 0) mix_io<MIX_TO>::st(a.out, base[MIX_MAX_IN], mix_eval_reduced(a.s, red, inv_n));
#else
    for (long long j = sy; j < len; j += split) mix_row_out(a, base, j, red, inv_n);
#endif
  }
}
#endif
""";
    }
}
