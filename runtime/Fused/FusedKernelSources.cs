namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA C++ sources of the fused kernels (compiled by NVRTC; no headers needed). The I/O dtype is chosen with
    /// <c>-DMIX_T=0|1|2</c> (float32, float16, bfloat16); arithmetic is float32 throughout.
    /// </summary>
    internal static class FusedKernelSources
    {
        /// <summary>dtype plumbing shared by every kernel.</summary>
        public const string Prelude = """
#ifndef MIX_T
#define MIX_T 0
#endif
#if MIX_T == 0
typedef float io_t;
__device__ __forceinline__ float to_f(io_t v) { return v; }
__device__ __forceinline__ io_t from_f(float v) { return v; }
#elif MIX_T == 1
typedef unsigned short io_t;
__device__ __forceinline__ float to_f(io_t v) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v)); return f; }
__device__ __forceinline__ io_t from_f(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#else
typedef unsigned short io_t;
__device__ __forceinline__ float to_f(io_t v) { return __uint_as_float(((unsigned int)v) << 16); }
__device__ __forceinline__ io_t from_f(float f) {
#if __CUDA_ARCH__ >= 800
  unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
#endif
}
#endif
#define MIX_VEC (16 / (int)sizeof(io_t))
template <int V> struct alignas(sizeof(io_t) * V) pack_t { io_t v[V]; };
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// Per-channel parameters of V consecutive elements (flat index e0 in memory order; channel = (e / inner) % C).
// mode 1: inner % V == 0, one channel for the whole vector; mode 2: inner == 1 and C % V == 0, channels c0 .. c0+V-1
// (read as float4); mode 0: anything else, channel per element, stepped without divisions.
template <int V>
__device__ __forceinline__ void chans_of(long long e0, long long inner, int C, int mode, int (&c)[V]) {
  if (mode == 1) {
    const int c0 = (int)((e0 / inner) % C);
#pragma unroll
    for (int k = 0; k < V; k++) c[k] = c0;
  } else if (mode == 2) {
    const int c0 = (int)(e0 % C);
#pragma unroll
    for (int k = 0; k < V; k++) c[k] = c0 + k;
  } else {
    long long q = e0 / inner, r = e0 - q * inner;
    int cc = (int)(q % C);
#pragma unroll
    for (int k = 0; k < V; k++) {
      c[k] = cc;
      if (++r == inner) { r = 0; if (++cc == C) cc = 0; }
    }
  }
}

// Element i of a small parameter vector stored as float32 (pt 0), float16 (1) or bfloat16 (2): parameters are read in
// the module's own dtype, so no conversion kernel runs per call.
__device__ __forceinline__ float ldp(const void* __restrict__ p, int pt, long long i) {
  if (pt == 0) return __ldg(reinterpret_cast<const float*>(p) + i);
  const unsigned short h = __ldg(reinterpret_cast<const unsigned short*>(p) + i);
  if (pt == 1) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
  return __uint_as_float(((unsigned int)h) << 16);
}

template <int V>
__device__ __forceinline__ void param_of(const void* __restrict__ p, int pt, float dflt, const int (&c)[V], int mode, float (&v)[V]) {
  if (p == 0) {
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = dflt;
  } else if (mode == 1) {
    const float a = ldp(p, pt, c[0]);
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = a;
  } else if (mode == 2 && pt == 0 && V % 4 == 0) {
    const float4* q = reinterpret_cast<const float4*>(reinterpret_cast<const float*>(p) + c[0]);
#pragma unroll
    for (int k = 0; k < V / 4; k++) {
      const float4 f = __ldg(q + k);
      v[4 * k] = f.x; v[4 * k + 1] = f.y; v[4 * k + 2] = f.z; v[4 * k + 3] = f.w;
    }
  } else {
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = ldp(p, pt, c[k]);
  }
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum of two doubles; result valid in thread 0. blockDim.x must be a multiple of 32.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double sa[32], sb[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  a = warp_sum_d(a); b = warp_sum_d(b);
  if (lane == 0) { sa[warp] = a; sb[warp] = b; }
  __syncthreads();
  if (warp == 0) {
    a = lane < nw ? sa[lane] : 0.0; b = lane < nw ? sb[lane] : 0.0;
    a = warp_sum_d(a); b = warp_sum_d(b);
  }
}

""";

        /// <summary>
        /// bias + activation (<c>-DMIX_ACT=0..3</c>: none, GELU (erf), StarReLU, SquaredReLU) and the residual epilogue
        /// <c>rs ⊙ residual + ls ⊙ (x + bias)</c>. Any dense layout: the kernels walk memory order and find each
        /// element's channel from the channel dimension's stride (<c>inner</c>).
        /// </summary>
        public const string Epilogue = """
#ifndef MIX_ACT
#define MIX_ACT 0
#endif
__device__ __forceinline__ float act_f(float x, float s, float b) {
#if MIX_ACT == 1
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
#elif MIX_ACT == 2
  float r = fmaxf(x, 0.0f); return s * r * r + b;
#elif MIX_ACT == 3
  float r = fmaxf(x, 0.0f); return r * r;
#else
  return x;
#endif
}

// y = act(x + bias[c]) of vector i.
template <int V>
__device__ __forceinline__ pack_t<V> bias_act_one(const pack_t<V>& a, long long i, const void* __restrict__ bias, long long inner,
    int C, int mode, int pt, float s, float b0)
{
  int c[V];
  float bv[V];
  if (bias) chans_of<V>(i * V, inner, C, mode, c);
  param_of<V>(bias, pt, 0.0f, c, mode, bv);
  pack_t<V> o;
#pragma unroll
  for (int k = 0; k < V; k++) o.v[k] = from_f(act_f(to_f(a.v[k]) + bv[k], s, b0));
  return o;
}

// y = act(x + bias[c]). U vectors per thread and iteration, all loaded before any is computed: with GELU's erf the
// compute between a load and the next one kept too few bytes in flight on a faster memory (the H200's 4.2 TB/s).
template <int V, int U>
__device__ __forceinline__ void bias_act_body(const io_t* __restrict__ x, const void* __restrict__ bias,
    io_t* __restrict__ y, long long nvec, long long inner, int C, int mode, const void* __restrict__ sp, const void* __restrict__ bp, int pt)
{
  const float s = sp ? ldp(sp, pt, 0) : 1.0f, b0 = bp ? ldp(bp, pt, 0) : 0.0f;
  const pack_t<V>* xp = reinterpret_cast<const pack_t<V>*>(x);
  pack_t<V>* yp = reinterpret_cast<pack_t<V>*>(y);
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  for (; i + (U - 1) * stride < nvec; i += U * stride) {
    pack_t<V> a[U];
#pragma unroll
    for (int u = 0; u < U; u++) a[u] = xp[i + u * stride];
#pragma unroll
    for (int u = 0; u < U; u++) yp[i + u * stride] = bias_act_one<V>(a[u], i + u * stride, bias, inner, C, mode, pt, s, b0);
  }
  for (; i < nvec; i += stride) yp[i] = bias_act_one<V>(xp[i], i, bias, inner, C, mode, pt, s, b0);
}

// Launched with ceil(nvec / (2·256)) blocks of 256 (FusedOps.BiasActivation): two vectors per thread.
extern "C" __global__ void bias_act_vec(const io_t* __restrict__ x, const void* __restrict__ bias, io_t* __restrict__ y,
    long long nvec, long long inner, int C, int mode, const void* __restrict__ sp, const void* __restrict__ bp, int pt)
{ bias_act_body<MIX_VEC, 2>(x, bias, y, nvec, inner, C, mode, sp, bp, pt); }

extern "C" __global__ void bias_act_scalar(const io_t* __restrict__ x, const void* __restrict__ bias, io_t* __restrict__ y,
    long long n, long long inner, int C, int mode, const void* __restrict__ sp, const void* __restrict__ bp, int pt)
{ bias_act_body<1, 1>(x, bias, y, n, inner, C, mode, sp, bp, pt); }

// y = rs[c] * res + ls[c] * (x + bias[c]); rs, ls and bias may each be absent (1, 1, 0).
template <int V>
__device__ __forceinline__ void scale_res_body(const io_t* __restrict__ res, const io_t* __restrict__ x,
    const void* __restrict__ ls, const void* __restrict__ rs, const void* __restrict__ bias, io_t* __restrict__ y,
    long long nvec, long long inner, int C, int mode, int pt)
{
  const pack_t<V>* rp = reinterpret_cast<const pack_t<V>*>(res);
  const pack_t<V>* xp = reinterpret_cast<const pack_t<V>*>(x);
  pack_t<V>* yp = reinterpret_cast<pack_t<V>*>(y);
  const bool any = ls || rs || bias;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += (long long)gridDim.x * blockDim.x) {
    const pack_t<V> a = xp[i];
    const pack_t<V> r = rp[i];
    int c[V];
    float lv[V], rv[V], bv[V];
    if (any) chans_of<V>(i * V, inner, C, mode, c);
    param_of<V>(ls, pt, 1.0f, c, mode, lv);
    param_of<V>(rs, pt, 1.0f, c, mode, rv);
    param_of<V>(bias, pt, 0.0f, c, mode, bv);
    pack_t<V> o;
#pragma unroll
    for (int k = 0; k < V; k++) o.v[k] = from_f(fmaf(lv[k], to_f(a.v[k]) + bv[k], rv[k] * to_f(r.v[k])));
    yp[i] = o;
  }
}

extern "C" __global__ void scale_res_vec(const io_t* __restrict__ res, const io_t* __restrict__ x, const void* __restrict__ ls,
    const void* __restrict__ rs, const void* __restrict__ bias, io_t* __restrict__ y, long long nvec, long long inner, int C, int mode, int pt)
{ scale_res_body<MIX_VEC>(res, x, ls, rs, bias, y, nvec, inner, C, mode, pt); }

extern "C" __global__ void scale_res_scalar(const io_t* __restrict__ res, const io_t* __restrict__ x, const void* __restrict__ ls,
    const void* __restrict__ rs, const void* __restrict__ bias, io_t* __restrict__ y, long long n, long long inner, int C, int mode, int pt)
{ scale_res_body<1>(res, x, ls, rs, bias, y, n, inner, C, mode, pt); }
""";

        /// <summary>
        /// LayerNorm over the innermost (contiguous) dimension: channels-last <c>LayerNorm2d</c> and token-wise
        /// <c>LayerNorm</c>. A group of G lanes (a power of two up to a warp) owns a row and keeps its NV 16-byte vectors
        /// per lane in registers, so the statistics are two exact passes over registers and memory sees one read and one
        /// write; PyTorch's kernel gives a whole block to each row, which is slow for rows of 64–512 channels.
        /// </summary>
        public const string LayerNorm = """
template <int NV>
__device__ __forceinline__ void ln_row(const io_t* __restrict__ x, const void* __restrict__ w, const void* __restrict__ b,
    io_t* __restrict__ y, long long row, bool valid, int C, int G, int lane, float eps, int pt)
{
  // Lanes of rows past the end still take part in the shuffles (full-warp masks), without loads or stores.
  const int nvec = valid ? C / MIX_VEC : 0;
  const pack_t<MIX_VEC>* xp = reinterpret_cast<const pack_t<MIX_VEC>*>(x + row * C);
  pack_t<MIX_VEC>* yp = reinterpret_cast<pack_t<MIX_VEC>*>(y + row * C);
  float v[NV][MIX_VEC];
  float s = 0.0f;
#pragma unroll
  for (int u = 0; u < NV; u++) {
    const int q = lane + u * G;
    if (q < nvec) {
      const pack_t<MIX_VEC> a = xp[q];
#pragma unroll
      for (int k = 0; k < MIX_VEC; k++) { v[u][k] = to_f(a.v[k]); s += v[u][k]; }
    }
  }
  for (int o = G >> 1; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const float mean = s / (float)C;
  float ss = 0.0f;
#pragma unroll
  for (int u = 0; u < NV; u++) {
    if (lane + u * G < nvec) {
#pragma unroll
      for (int k = 0; k < MIX_VEC; k++) { const float d = v[u][k] - mean; ss = fmaf(d, d, ss); }
    }
  }
  for (int o = G >> 1; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float rstd = rsqrtf(ss / (float)C + eps);
#pragma unroll
  for (int u = 0; u < NV; u++) {
    const int q = lane + u * G;
    if (q < nvec) {
      int c[MIX_VEC];
      float wv[MIX_VEC], bv[MIX_VEC];
#pragma unroll
      for (int k = 0; k < MIX_VEC; k++) c[k] = q * MIX_VEC + k;
      param_of<MIX_VEC>(w, pt, 1.0f, c, 2, wv);
      param_of<MIX_VEC>(b, pt, 0.0f, c, 2, bv);
      pack_t<MIX_VEC> o;
#pragma unroll
      for (int k = 0; k < MIX_VEC; k++) o.v[k] = from_f(fmaf((v[u][k] - mean) * rstd, wv[k], bv[k]));
      yp[q] = o;
    }
  }
}

// block 256: 256 / G rows per block; NV = vectors per lane (1, 2, 4 or 8); C % MIX_VEC == 0.
extern "C" __global__ void layer_norm_rows(const io_t* __restrict__ x, const void* __restrict__ w, const void* __restrict__ b,
    io_t* __restrict__ y, long long rows, int C, int G, int NV, float eps, int pt)
{
  const long long row = (long long)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
  const bool valid = row < rows;
  const int lane = threadIdx.x % G;
  switch (NV) {
    case 1: ln_row<1>(x, w, b, y, row, valid, C, G, lane, eps, pt); break;
    case 2: ln_row<2>(x, w, b, y, row, valid, C, G, lane, eps, pt); break;
    case 4: ln_row<4>(x, w, b, y, row, valid, C, G, lane, eps, pt); break;
    default: ln_row<8>(x, w, b, y, row, valid, C, G, lane, eps, pt); break;
  }
}
""";

        /// <summary>
        /// GroupNorm with one group, and the MetaFormer pooling sub-block <c>x + ls ⊙ (avgpool3x3(n) − n)</c>,
        /// <c>n = GroupNorm(1)(x)</c>. The average pool (count_include_pad=false) averages with weights summing to one,
        /// so the norm's per-channel affine commutes with it: <c>pool(n) − n = w_c · rstd_b · (pool(x) − x)</c> (mean
        /// and bias cancel), and the fused pass needs only the per-sample rstd.
        /// </summary>
        public const string Pooling = """
// grid (P, nb), block 256: partial sums of (x - x[b,0]) and its square over slice p of sample b = b0 + blockIdx.y
// (M elements each); the last block of a sample to finish reduces the P partials to stats[2b] = mean and
// stats[2b+1] = rstd and resets the sample's counter, so one launch gives the statistics.
extern "C" __global__ void gn_stats(const io_t* __restrict__ x, double* __restrict__ partial, unsigned int* __restrict__ counter,
    float* __restrict__ stats, long long M, int P, int b0, float eps, int vec)
{
  const int g = blockIdx.y, b = b0 + g;
  const io_t* xb = x + (long long)b * M;
  const float shift = to_f(xb[0]);
  float s = 0.0f, ss = 0.0f;
  if (vec) {
    const long long nv = M / MIX_VEC, chunk = (nv + P - 1) / P;
    const long long start = blockIdx.x * chunk, end = min(start + chunk, nv);
    const pack_t<MIX_VEC>* xp = reinterpret_cast<const pack_t<MIX_VEC>*>(xb);
    for (long long i0 = start + threadIdx.x; i0 < end; i0 += 4 * blockDim.x) {
      pack_t<MIX_VEC> a[4];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        const long long i = i0 + (long long)u * blockDim.x;
        if (i < end) a[u] = xp[i];
      }
#pragma unroll
      for (int u = 0; u < 4; u++) {
        if (i0 + (long long)u * blockDim.x >= end) break;
#pragma unroll
        for (int k = 0; k < MIX_VEC; k++) { const float v = to_f(a[u].v[k]) - shift; s += v; ss = fmaf(v, v, ss); }
      }
    }
  } else {
    const long long chunk = (M + P - 1) / P;
    const long long start = blockIdx.x * chunk, end = min(start + chunk, M);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) { const float v = to_f(xb[i]) - shift; s += v; ss = fmaf(v, v, ss); }
  }
  double ds = s, dss = ss;
  block_sum2(ds, dss);
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partial[((long long)g * P + blockIdx.x) * 2] = ds;
    partial[((long long)g * P + blockIdx.x) * 2 + 1] = dss;
    __threadfence();
    last = atomicAdd(counter + g, 1u) == (unsigned int)(P - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  double a = 0.0, q = 0.0;
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    a += __ldcg(partial + ((long long)g * P + p) * 2);
    q += __ldcg(partial + ((long long)g * P + p) * 2 + 1);
  }
  block_sum2(a, q);
  if (threadIdx.x == 0) {
    const double mean = a / (double)M;
    double var = q / (double)M - mean * mean;
    if (var < 0.0) var = 0.0;
    stats[2 * b] = (float)(mean + (double)shift);
    stats[2 * b + 1] = (float)(1.0 / sqrt(var + (double)eps));
    counter[g] = 0u;
  }
}

// GroupNorm(1) apply: y = (x - mean_b) * rstd_b * w[c] + bias[c], b = e / M (M % V == 0 for the vector kernel).
template <int V>
__device__ __forceinline__ void gn_apply_body(const io_t* __restrict__ x, const float* __restrict__ stats,
    const void* __restrict__ w, const void* __restrict__ bias, io_t* __restrict__ y, long long nvec, long long inner,
    int C, long long M, int mode, int pt)
{
  const pack_t<V>* xp = reinterpret_cast<const pack_t<V>*>(x);
  pack_t<V>* yp = reinterpret_cast<pack_t<V>*>(y);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += (long long)gridDim.x * blockDim.x) {
    const long long e0 = i * V;
    const pack_t<V> a = xp[i];
    int c[V];
    float wv[V], bv[V];
    chans_of<V>(e0, inner, C, mode, c);
    param_of<V>(w, pt, 1.0f, c, mode, wv);
    param_of<V>(bias, pt, 0.0f, c, mode, bv);
    const long long b = e0 / M;
    const float mean = __ldg(stats + 2 * b), rstd = __ldg(stats + 2 * b + 1);
    pack_t<V> o;
#pragma unroll
    for (int k = 0; k < V; k++) o.v[k] = from_f(fmaf((to_f(a.v[k]) - mean) * rstd, wv[k], bv[k]));
    yp[i] = o;
  }
}

extern "C" __global__ void gn_apply_vec(const io_t* __restrict__ x, const float* __restrict__ stats, const void* __restrict__ w,
    const void* __restrict__ bias, io_t* __restrict__ y, long long nvec, long long inner, int C, long long M, int mode, int pt)
{ gn_apply_body<MIX_VEC>(x, stats, w, bias, y, nvec, inner, C, M, mode, pt); }

extern "C" __global__ void gn_apply_scalar(const io_t* __restrict__ x, const float* __restrict__ stats, const void* __restrict__ w,
    const void* __restrict__ bias, io_t* __restrict__ y, long long n, long long inner, int C, long long M, int mode, int pt)
{ gn_apply_body<1>(x, stats, w, bias, y, n, inner, C, M, mode, pt); }

// Horizontal 3-tap sums and centre values of columns j0 .. j0+CPT-1 of a row in shared memory: the CPT centre values
// are one aligned vector load; the neighbours outside the row count as zero.
template <int CPT>
__device__ __forceinline__ void hsums(const float* row, int j0, bool left, bool right, float (&h)[CPT], float (&c)[CPT]) {
  float v[CPT + 2];
  if (CPT == 4) {
    const float4 q = *reinterpret_cast<const float4*>(row + j0);
    v[1] = q.x; v[2] = q.y; v[3] = q.z; v[4] = q.w;
  } else if (CPT == 2) {
    const float2 q = *reinterpret_cast<const float2*>(row + j0);
    v[1] = q.x; v[2] = q.y;
  } else {
    v[1] = row[j0];
  }
  v[0] = left ? row[j0 - 1] : 0.0f;
  v[CPT + 1] = right ? row[j0 + CPT] : 0.0f;
#pragma unroll
  for (int k = 0; k < CPT; k++) { h[k] = v[k] + v[k + 1] + v[k + 2]; c[k] = v[k + 1]; }
}

// Thread part of pool_tile: CPT adjacent columns from j0, rows [gs, ge) of the band, walking down with the three rows'
// horizontal sums in registers; one vector store of CPT outputs per row.
template <int CPT>
__device__ __forceinline__ void pool_columns(const float* __restrict__ tile, long long base, io_t* __restrict__ y,
    const float* __restrict__ stats, const void* __restrict__ gnw, const void* __restrict__ ls, int pt,
    long long gs, long long ge, int j0, int C, int H, int W)
{
  const bool left = j0 > 0, right = j0 + CPT < W;
  float cinv[CPT];
#pragma unroll
  for (int k = 0; k < CPT; k++) cinv[k] = 1.0f / (1.0f + (float)(j0 + k > 0) + (float)(j0 + k + 1 < W));
  long long r = gs;
  long long plane = r / H;
  int i = (int)(r - plane * H);
  int c = (int)(plane % C);
  float kc = ldp(ls, pt, c) * ldp(gnw, pt, c) * stats[2 * (plane / C) + 1];
  const float* row = tile + (r * W - base);
  float hm[CPT], h0[CPT], hp[CPT], x0[CPT], xn[CPT];
  if (i > 0) hsums<CPT>(row - W, j0, left, right, hm, xn);
  else {
#pragma unroll
    for (int k = 0; k < CPT; k++) hm[k] = 0.0f;
  }
  hsums<CPT>(row, j0, left, right, h0, x0);
  for (; r < ge; r++, row += W) {
    const bool down = i + 1 < H;
    if (down) hsums<CPT>(row + W, j0, left, right, hp, xn);
    else {
#pragma unroll
      for (int k = 0; k < CPT; k++) { hp[k] = 0.0f; xn[k] = 0.0f; }
    }
    const float rinv = 1.0f / (float)(1 + (i > 0) + down);
    pack_t<CPT> o;
#pragma unroll
    for (int k = 0; k < CPT; k++) o.v[k] = from_f(fmaf(kc, fmaf(hm[k] + h0[k] + hp[k], rinv * cinv[k], -x0[k]), x0[k]));
    *reinterpret_cast<pack_t<CPT>*>(y + r * W + j0) = o;
    if (r + 1 >= ge) break;
    if (down) {
#pragma unroll
      for (int k = 0; k < CPT; k++) { hm[k] = h0[k]; h0[k] = hp[k]; x0[k] = xn[k]; }
      i++;
    } else {
      // the next row starts the next plane: new channel (and perhaps sample), no row above
      plane++; i = 0;
      c = c + 1 == C ? 0 : c + 1;
      kc = ldp(ls, pt, c) * ldp(gnw, pt, c) * stats[2 * (plane / C) + 1];
#pragma unroll
      for (int k = 0; k < CPT; k++) hm[k] = 0.0f;
      hsums<CPT>(row + W, j0, left, right, h0, x0);
    }
  }
}

extern "C" __global__ void pool_tile(const io_t* __restrict__ x, const float* __restrict__ stats, const void* __restrict__ gnw,
    const void* __restrict__ ls, io_t* __restrict__ y, long long row0, long long rows, long long totalRows,
    int C, int H, int W, int RB, int R, int pt)
{
  extern __shared__ float tile[];
  const long long rb = row0 + (long long)blockIdx.x * RB;
  const long long re = min(rb + (long long)RB, row0 + rows);
  const long long total = totalRows * W;
  const long long lo = (rb > 0 ? rb - 1 : 0) * (long long)W;
  const long long hi = min(re + 1, totalRows) * (long long)W;
  const long long base = lo & ~(long long)(MIX_VEC - 1);
  const int nvec = (int)((hi - base + MIX_VEC - 1) / MIX_VEC);
  const pack_t<MIX_VEC>* xp = reinterpret_cast<const pack_t<MIX_VEC>*>(x + base);
  // four 16-byte loads in flight per thread before the first is used
  for (int v0 = threadIdx.x; v0 < nvec; v0 += 4 * blockDim.x) {
    pack_t<MIX_VEC> a[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const int v = v0 + u * blockDim.x;
      if (v < nvec && base + (long long)(v + 1) * MIX_VEC <= total) a[u] = xp[v];
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const int v = v0 + u * blockDim.x;
      if (v >= nvec) break;
      const long long g = base + (long long)v * MIX_VEC;
      float* dst = tile + v * MIX_VEC;
      if (g + MIX_VEC <= total) {
#pragma unroll
        for (int q = 0; q < MIX_VEC / 4; q++)
          reinterpret_cast<float4*>(dst)[q] = make_float4(to_f(a[u].v[4 * q]), to_f(a[u].v[4 * q + 1]), to_f(a[u].v[4 * q + 2]), to_f(a[u].v[4 * q + 3]));
      } else {
        for (int k = 0; k < MIX_VEC && g + k < total; k++) dst[k] = to_f(x[g + k]);
      }
    }
  }
  __syncthreads();

  // CPT adjacent columns per thread (4 when W allows, else 2 or 1): fewer instructions per output and vector stores
  const int cpt = W % 4 == 0 ? 4 : W % 2 == 0 ? 2 : 1;
  const int cols = min(W / cpt, (int)blockDim.x);
  const int G = blockDim.x / cols;
  const int grp = threadIdx.x / cols;
  if (grp >= G) return;
  const long long gs = rb + (long long)grp * R;
  const long long ge = min(gs + R, re);
  if (gs >= ge) return;
  for (int j0 = (threadIdx.x % cols) * cpt; j0 < W; j0 += cols * cpt) {
    if (cpt == 4) pool_columns<4>(tile, base, y, stats, gnw, ls, pt, gs, ge, j0, C, H, W);
    else if (cpt == 2) pool_columns<2>(tile, base, y, stats, gnw, ls, pt, gs, ge, j0, C, H, W);
    else pool_columns<1>(tile, base, y, stats, gnw, ls, pt, gs, ge, j0, C, H, W);
  }
}
""";

        /// <summary>GFNet spectral multiply: <c>out[i] = spec[i] · w[i mod period]</c> on interleaved complex float32.</summary>
        public const string Spectral = """
extern "C" __global__ void spectral_mul2(const float4* __restrict__ spec, const float4* __restrict__ w,
    float4* __restrict__ out, long long npairs, long long periodPairs)
{
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < npairs; i += (long long)gridDim.x * blockDim.x) {
    float4 a = spec[i];
    float4 b = __ldg(w + i % periodPairs);
    float4 o;
    o.x = a.x * b.x - a.y * b.y; o.y = a.x * b.y + a.y * b.x;
    o.z = a.z * b.z - a.w * b.w; o.w = a.z * b.w + a.w * b.z;
    out[i] = o;
  }
}

extern "C" __global__ void spectral_mul1(const float2* __restrict__ spec, const float2* __restrict__ w,
    float2* __restrict__ out, long long n, long long period)
{
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float2 a = spec[i];
    float2 b = __ldg(w + i % period);
    out[i] = make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
  }
}
""";

        /// <summary>
        /// Mamba selective scan forward and the single decode step. Each group of G lanes (G = next power of two ≥ n)
        /// owns one (batch, channel) pair and holds one float32 state per lane in a register; a block of 16 channels
        /// walks L in chunks of 64 steps: inputs of a chunk are staged (coalesced) in shared memory with
        /// dt = softplus(delta + bias), dt·u, D·u and silu(z) computed once per (channel, step); the per-step output is
        /// the sum over the group's lanes (shuffles), gated and written back coalesced.
        /// </summary>
        public const string Scan = """
#define SCAN_CH 16
#define SCAN_T 64
#define SCAN_TP (SCAN_T + 1)
#define LOG2E 1.4426950408889634f

template <int G>
__device__ __forceinline__ void scan_body(
    const io_t* __restrict__ u, const io_t* __restrict__ delta, const float* __restrict__ A,
    const io_t* __restrict__ Bm, const io_t* __restrict__ Cm, const float* __restrict__ Dv,
    const io_t* __restrict__ z, const float* __restrict__ dbias, const float* __restrict__ h0,
    io_t* __restrict__ y, float* __restrict__ hlast, int dim, int nstate, int L, int softplus)
{
  extern __shared__ float smem[];
  float* s_dt = smem;
  float* s_du = s_dt + SCAN_CH * SCAN_TP;
  float* s_y  = s_du + SCAN_CH * SCAN_TP;
  float* s_g  = s_y  + SCAN_CH * SCAN_TP;
  float* s_B  = s_g  + SCAN_CH * SCAN_TP;
  float* s_C  = s_B  + nstate * SCAN_TP;
  const int tid = threadIdx.x, nthr = blockDim.x;
  const int lane = tid % G, cl = tid / G;
  const int b = blockIdx.y, c0 = blockIdx.x * SCAN_CH, c = c0 + cl;
  const bool active = c < dim && lane < nstate;
  const long long rowBase = (long long)b * dim * L;
  const long long bcBase = (long long)b * nstate * L;
  float a2 = 0.0f, h = 0.0f;
  if (active) {
    a2 = A[(long long)c * nstate + lane] * LOG2E;
    if (h0) h = h0[((long long)b * dim + c) * nstate + lane];
  }
  const int sl = lane < nstate ? lane : nstate - 1;
  for (int t0 = 0; t0 < L; t0 += SCAN_T) {
    const int Tc = min(SCAN_T, L - t0);
    for (int idx = tid; idx < SCAN_CH * SCAN_T; idx += nthr) {
      const int cc = idx / SCAN_T, tt = idx % SCAN_T, ch = c0 + cc;
      float dt = 0.0f, du = 0.0f, sk = 0.0f, g = 1.0f;
      if (ch < dim && tt < Tc) {
        const long long off = rowBase + (long long)ch * L + t0 + tt;
        const float uu = to_f(u[off]);
        dt = to_f(delta[off]);
        if (dbias) dt += dbias[ch];
        if (softplus) dt = softplus_f(dt);
        du = dt * uu;
        if (Dv) sk = Dv[ch] * uu;
        if (z) g = silu_f(to_f(z[off]));
      }
      s_dt[cc * SCAN_TP + tt] = dt; s_du[cc * SCAN_TP + tt] = du;
      s_y[cc * SCAN_TP + tt] = sk;  s_g[cc * SCAN_TP + tt] = g;
    }
    for (int idx = tid; idx < nstate * SCAN_T; idx += nthr) {
      const int s = idx / SCAN_T, tt = idx % SCAN_T;
      float bv = 0.0f, cv = 0.0f;
      if (tt < Tc) {
        const long long off = bcBase + (long long)s * L + t0 + tt;
        bv = to_f(Bm[off]); cv = to_f(Cm[off]);
      }
      s_B[s * SCAN_TP + tt] = bv; s_C[s * SCAN_TP + tt] = cv;
    }
    __syncthreads();
    {
      const float* pdt = s_dt + cl * SCAN_TP;
      const float* pdu = s_du + cl * SCAN_TP;
      const float* pB = s_B + sl * SCAN_TP;
      const float* pC = s_C + sl * SCAN_TP;
      float* py = s_y + cl * SCAN_TP;
      const float* pg = s_g + cl * SCAN_TP;
#pragma unroll 4
      for (int tt = 0; tt < Tc; tt++) {
        h = fmaf(exp2f(pdt[tt] * a2), h, pdu[tt] * pB[tt]);
        float p = active ? h * pC[tt] : 0.0f;
#pragma unroll
        for (int o = G >> 1; o > 0; o >>= 1) p += __shfl_xor_sync(0xffffffffu, p, o);
        if (lane == 0 && c < dim) py[tt] = (p + py[tt]) * pg[tt];
      }
    }
    __syncthreads();
    for (int idx = tid; idx < SCAN_CH * SCAN_T; idx += nthr) {
      const int cc = idx / SCAN_T, tt = idx % SCAN_T, ch = c0 + cc;
      if (ch < dim && tt < Tc) y[rowBase + (long long)ch * L + t0 + tt] = from_f(s_y[cc * SCAN_TP + tt]);
    }
    __syncthreads();
  }
  if (active && hlast) hlast[((long long)b * dim + c) * nstate + lane] = h;
}

// grid (ceil(dim/16), batch), block 16*G, dynamic shared (64 + 2n) * 65 floats.
extern "C" __global__ void selective_scan_fwd(
    const io_t* __restrict__ u, const io_t* __restrict__ delta, const float* __restrict__ A,
    const io_t* __restrict__ Bm, const io_t* __restrict__ Cm, const float* __restrict__ Dv,
    const io_t* __restrict__ z, const float* __restrict__ dbias, const float* __restrict__ h0,
    io_t* __restrict__ y, float* __restrict__ hlast, int dim, int nstate, int L, int G, int softplus)
{
  switch (G) {
    case 1:  scan_body<1>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
    case 2:  scan_body<2>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
    case 4:  scan_body<4>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
    case 8:  scan_body<8>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
    case 16: scan_body<16>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
    default: scan_body<32>(u, delta, A, Bm, Cm, Dv, z, dbias, h0, y, hlast, dim, nstate, L, softplus); break;
  }
}

template <int G>
__device__ __forceinline__ void step_body(
    const float* __restrict__ state, const io_t* __restrict__ u, const io_t* __restrict__ delta,
    const float* __restrict__ A, const io_t* __restrict__ Bm, const io_t* __restrict__ Cm,
    const float* __restrict__ Dv, const io_t* __restrict__ z, const float* __restrict__ dbias,
    float* __restrict__ state_out, io_t* __restrict__ y, int batch, int dim, int nstate, int softplus)
{
  const int lane = threadIdx.x % G;
  const long long row = (long long)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
  const bool valid = row < (long long)batch * dim;
  const bool active = valid && lane < nstate;
  const int c = valid ? (int)(row % dim) : 0;
  const long long b = valid ? row / dim : 0;
  float uu = 0.0f, dt = 0.0f, p = 0.0f;
  if (valid) {
    uu = to_f(u[row]);
    dt = to_f(delta[row]);
    if (dbias) dt += dbias[c];
    if (softplus) dt = softplus_f(dt);
  }
  if (active) {
    const float hp = state[row * nstate + lane];
    const float hn = fmaf(exp2f(dt * A[(long long)c * nstate + lane] * LOG2E), hp, dt * uu * to_f(Bm[b * nstate + lane]));
    state_out[row * nstate + lane] = hn;
    p = hn * to_f(Cm[b * nstate + lane]);
  }
#pragma unroll
  for (int o = G >> 1; o > 0; o >>= 1) p += __shfl_xor_sync(0xffffffffu, p, o);
  if (lane == 0 && valid) {
    float yy = p + (Dv ? Dv[c] * uu : 0.0f);
    if (z) yy *= silu_f(to_f(z[row]));
    y[row] = from_f(yy);
  }
}

// grid ceil(batch*dim / (256/G)), block 256.
extern "C" __global__ void selective_scan_step(
    const float* __restrict__ state, const io_t* __restrict__ u, const io_t* __restrict__ delta,
    const float* __restrict__ A, const io_t* __restrict__ Bm, const io_t* __restrict__ Cm,
    const float* __restrict__ Dv, const io_t* __restrict__ z, const float* __restrict__ dbias,
    float* __restrict__ state_out, io_t* __restrict__ y, int batch, int dim, int nstate, int G, int softplus)
{
  switch (G) {
    case 1:  step_body<1>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
    case 2:  step_body<2>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
    case 4:  step_body<4>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
    case 8:  step_body<8>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
    case 16: step_body<16>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
    default: step_body<32>(state, u, delta, A, Bm, Cm, Dv, z, dbias, state_out, y, batch, dim, nstate, softplus); break;
  }
}
""";
    }
}
