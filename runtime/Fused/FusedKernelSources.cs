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

""";

        /// <summary>bias + activation (<c>-DMIX_ACT=0..3</c>: none, GELU (erf), StarReLU, SquaredReLU) and layer-scale + residual.</summary>
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

// y = act(x + bias[c]); c = (e / inner) % C. The vector path needs inner == 1 or inner % V == 0.
template <int V>
__device__ __forceinline__ void bias_act_body(const io_t* __restrict__ x, const float* __restrict__ bias,
    io_t* __restrict__ y, long long nvec, long long inner, int C, const float* __restrict__ sp, const float* __restrict__ bp)
{
  const float s = sp ? sp[0] : 1.0f, b0 = bp ? bp[0] : 0.0f;
  const pack_t<V>* xp = reinterpret_cast<const pack_t<V>*>(x);
  pack_t<V>* yp = reinterpret_cast<pack_t<V>*>(y);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += (long long)gridDim.x * blockDim.x) {
    pack_t<V> a = xp[i];
    pack_t<V> o;
    long long e0 = i * V;
    if (bias == 0) {
#pragma unroll
      for (int k = 0; k < V; k++) o.v[k] = from_f(act_f(to_f(a.v[k]), s, b0));
    } else if (inner == 1) {
      int c = (int)(e0 % C);
#pragma unroll
      for (int k = 0; k < V; k++) {
        o.v[k] = from_f(act_f(to_f(a.v[k]) + __ldg(bias + c), s, b0));
        c = (c + 1 == C) ? 0 : c + 1;
      }
    } else {
      const float bc = __ldg(bias + (int)((e0 / inner) % C));
#pragma unroll
      for (int k = 0; k < V; k++) o.v[k] = from_f(act_f(to_f(a.v[k]) + bc, s, b0));
    }
    yp[i] = o;
  }
}

extern "C" __global__ void bias_act_vec(const io_t* __restrict__ x, const float* __restrict__ bias, io_t* __restrict__ y,
    long long nvec, long long inner, int C, const float* __restrict__ sp, const float* __restrict__ bp)
{ bias_act_body<MIX_VEC>(x, bias, y, nvec, inner, C, sp, bp); }

extern "C" __global__ void bias_act_scalar(const io_t* __restrict__ x, const float* __restrict__ bias, io_t* __restrict__ y,
    long long n, long long inner, int C, const float* __restrict__ sp, const float* __restrict__ bp)
{ bias_act_body<1>(x, bias, y, n, inner, C, sp, bp); }

// y = res + ls[c] * x
template <int V>
__device__ __forceinline__ void ls_res_body(const io_t* __restrict__ res, const io_t* __restrict__ x,
    const float* __restrict__ ls, io_t* __restrict__ y, long long nvec, long long inner, int C)
{
  const pack_t<V>* rp = reinterpret_cast<const pack_t<V>*>(res);
  const pack_t<V>* xp = reinterpret_cast<const pack_t<V>*>(x);
  pack_t<V>* yp = reinterpret_cast<pack_t<V>*>(y);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < nvec; i += (long long)gridDim.x * blockDim.x) {
    pack_t<V> a = xp[i];
    pack_t<V> r = rp[i];
    pack_t<V> o;
    long long e0 = i * V;
    if (inner == 1) {
      int c = (int)(e0 % C);
#pragma unroll
      for (int k = 0; k < V; k++) {
        o.v[k] = from_f(fmaf(__ldg(ls + c), to_f(a.v[k]), to_f(r.v[k])));
        c = (c + 1 == C) ? 0 : c + 1;
      }
    } else {
      const float lc = __ldg(ls + (int)((e0 / inner) % C));
#pragma unroll
      for (int k = 0; k < V; k++) o.v[k] = from_f(fmaf(lc, to_f(a.v[k]), to_f(r.v[k])));
    }
    yp[i] = o;
  }
}

extern "C" __global__ void ls_res_vec(const io_t* __restrict__ res, const io_t* __restrict__ x, const float* __restrict__ ls,
    io_t* __restrict__ y, long long nvec, long long inner, int C)
{ ls_res_body<MIX_VEC>(res, x, ls, y, nvec, inner, C); }

extern "C" __global__ void ls_res_scalar(const io_t* __restrict__ res, const io_t* __restrict__ x, const float* __restrict__ ls,
    io_t* __restrict__ y, long long n, long long inner, int C)
{ ls_res_body<1>(res, x, ls, y, n, inner, C); }
""";

        /// <summary>
        /// MetaFormer pooling sub-block <c>x + ls ⊙ (avgpool3x3(n) − n)</c>, <c>n = GroupNorm(1)(x)</c>. Since the
        /// average pool (count_include_pad=false) averages with weights summing to one, the per-channel affine of the
        /// norm commutes with it: <c>pool(n) − n = w_c · rstd_b · (pool(x) − x)</c> (mean and bias cancel), so the
        /// fused pass needs only the per-sample rstd.
        /// </summary>
        public const string Pooling = """
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

// grid (P, B): partial sums of (x - x[b,0]) and its square over slice p of sample b (M elements per sample).
extern "C" __global__ void gn_partial(const io_t* __restrict__ x, double* __restrict__ partial, long long M, int P)
{
  const int b = blockIdx.y;
  const io_t* xb = x + (long long)b * M;
  const float shift = to_f(xb[0]);
  const long long chunk = (M + P - 1) / P;
  const long long start = blockIdx.x * chunk;
  const long long end = (start + chunk < M) ? start + chunk : M;
  float s = 0.0f, ss = 0.0f;
  for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
    float v = to_f(xb[i]) - shift;
    s += v; ss = fmaf(v, v, ss);
  }
  double ds = s, dss = ss;
  block_sum2(ds, dss);
  if (threadIdx.x == 0) {
    partial[((long long)b * P + blockIdx.x) * 2] = ds;
    partial[((long long)b * P + blockIdx.x) * 2 + 1] = dss;
  }
}

// grid (B): rstd[b] = 1 / sqrt(var_b + eps) from the partials.
extern "C" __global__ void gn_finalize(const double* __restrict__ partial, float* __restrict__ rstd, long long M, int P, float eps)
{
  const int b = blockIdx.x;
  double s = 0.0, ss = 0.0;
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    s += partial[((long long)b * P + p) * 2];
    ss += partial[((long long)b * P + p) * 2 + 1];
  }
  block_sum2(s, ss);
  if (threadIdx.x == 0) {
    double mean = s / (double)M;
    double var = ss / (double)M - mean * mean;
    if (var < 0.0) var = 0.0;
    rstd[b] = (float)(1.0 / sqrt(var + (double)eps));
  }
}

// grid (B*C, tilesX), block (32, 8): y = x + ls[c]*w[c]*rstd[b] * (avgpool3x3(x) - x).
// Thread (tx, ty) walks column j over rows [ty*R, ty*R+R) keeping the three horizontal 3-tap sums in registers,
// so each output costs about three loads instead of nine.
extern "C" __global__ void pool_apply(const io_t* __restrict__ x, const float* __restrict__ rstd,
    const float* __restrict__ gnw, const float* __restrict__ ls, io_t* __restrict__ y, int C, int H, int W, int R)
{
  const long long plane = blockIdx.x;
  const int c = (int)(plane % C);
  const long long b = plane / C;
  const int j = blockIdx.y * 32 + threadIdx.x;
  const int r0 = threadIdx.y * R;
  if (j >= W || r0 >= H) return;
  const int r1 = min(r0 + R, H);
  const io_t* xp = x + plane * H * W;
  io_t* yp = y + plane * H * W;
  const float k = ls[c] * gnw[c] * rstd[b];
  const int j0 = max(j - 1, 0), j1 = min(j + 1, W - 1);
  const float cw = (float)(j1 - j0 + 1);
  float hm = 0.0f, h0, hp, x0, xn;
  if (r0 > 0) { const io_t* row = xp + (r0 - 1) * W; hm = to_f(__ldg(row + j0)) + (j1 > j0 ? to_f(__ldg(row + j1)) : 0.0f) + (j0 < j && j < j1 ? to_f(__ldg(row + j)) : 0.0f); }
  {
    const io_t* row = xp + r0 * W;
    x0 = to_f(__ldg(row + j));
    h0 = x0 + (j0 < j ? to_f(__ldg(row + j0)) : 0.0f) + (j1 > j ? to_f(__ldg(row + j1)) : 0.0f);
  }
  for (int i = r0; i < r1; i++) {
    hp = 0.0f; xn = 0.0f;
    if (i + 1 < H) {
      const io_t* row = xp + (i + 1) * W;
      xn = to_f(__ldg(row + j));
      hp = xn + (j0 < j ? to_f(__ldg(row + j0)) : 0.0f) + (j1 > j ? to_f(__ldg(row + j1)) : 0.0f);
    }
    const int rows = 1 + (i > 0) + (i + 1 < H);
    const float avg = (hm * (i > 0) + h0 + hp) / (cw * (float)rows);
    yp[i * W + j] = from_f(fmaf(k, avg - x0, x0));
    hm = h0; h0 = hp; x0 = xn;
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
