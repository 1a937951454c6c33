namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA C++ of the chunked scan kernels (after <see cref="FusedKernelSources.Prelude"/>): the recurrence of
    /// <see cref="ScanKernelSources.GatedScan"/> (<c>S_t = diag(decay_t) S_{t-1} + k_tᵀ (w_t v_t)</c>, <c>o_t = q_t S_t</c>;
    /// GLA with a per-key decay, SSD with a scalar one) computed a chunk of <c>CQ</c> steps at a time in three launches:
    /// <list type="number">
    /// <item><c>chunk_state</c>: each chunk's own contribution to the state at its end,
    ///   <c>Σ_s (k_s ⊙ exp(Γ_end − Γ_s) w_s)ᵀ v_s</c>, and the chunk's total decay <c>exp Γ_end</c> (Γ: the inclusive
    ///   cumulative log decay within the chunk);</item>
    /// <item><c>chunk_state_pass</c>: sequential over chunks, one thread per state element: the state entering each
    ///   chunk (written over that chunk's contribution) and the final state;</item>
    /// <item><c>chunk_output</c>: <c>o_t = Σ_{s≤t} a_ts w_s v_s + (q_t ⊙ exp Γ_t) S_in</c>, with
    ///   <c>a_ts = Σ_k q_t[k] k_s[k] exp(Γ_t[k] − Γ_s[k])</c>, then SSD's D skip and silu(z) gate.</item>
    /// </list>
    /// Every exponent is a decay between two steps of one chunk taken in causal order (≤ 0 for log gates ≤ 0), so no
    /// factor can overflow, as in the reference's explicit form; GLA's per-key exponentials are formed per (t, s, key)
    /// pair rather than by fla's secondary chunking. Products are float32 FMA tiles in shared memory (a 64 × 64 output
    /// tile per block, 4 × 4 per thread at rows and columns strided by 16, which lets a thread skip the score blocks
    /// above the diagonal; shared rows are stored interleaved so that a thread's four operands are one float4 load).
    /// The state layout is <c>[K, V]</c> (keys = B's state size for SSD, values = head dim).
    /// <para>Half precision has its own kernels (compiled for <c>MIX_T</c> 1 and 2 only; the same state pass between
    /// them), on tensor cores (<c>mma.sync.m16n8k16</c>, float32 accumulation), operands staged as I/O-type halves with
    /// the reduction index contiguous: <c>chunk_state_ssd_tc</c> / <c>chunk_state_gla_tc</c> enter the chunk's weighted
    /// keys as their rounded value plus its rounding error (two products), so the float32 state stays float32-accurate;
    /// <c>chunk_output_ssd_tc</c> has all three products on tensor cores and rounds the decayed, masked scores and the
    /// entering state to the I/O type (as mamba_ssm's Triton kernels do); SSD's pair takes chunks of
    /// <see cref="SsdTensorCoreChunk"/> steps (row blocks of 64 in <c>chunk_output_ssd_tc</c>); <c>chunk_output_gla_tc</c> keeps GLA's scores
    /// (a per-key exponential per pair) in float32 FMA and puts <c>(q ⊙ exp Γ)·S_in</c> and the scores times v on
    /// tensor cores.</para>
    /// <para>bfloat16 GLA's second form (K, V multiples of 8): <c>chunk_state_gla_tc2</c> (16-byte loads, contributions
    /// stored tile-major for the pass), <c>chunk_state_pass_t</c> (the entering states written once, in the I/O type, the float32
    /// contributions only read) and <c>chunk_output_gla_tc2</c> (128 value columns per block; the scores below the
    /// diagonal 16-step blocks on tensor cores by secondary chunking, per-pair exponentials only on those blocks).</para>
    /// </summary>
    internal static class ChunkScanKernelSources
    {
        /// <summary>Steps per chunk.</summary>
        public const int Chunk = 64;

        /// <summary>Steps per chunk of half-precision SSD's tensor-core kernels (<c>CL</c>).</summary>
        public const int SsdTensorCoreChunk = 256;

        /// <summary>Key rows per block of <c>chunk_state</c>.</summary>
        public const int StateKeys = 64;

        /// <summary>Value columns per block of <c>chunk_state</c> and <c>chunk_output</c>.</summary>
        public const int Values = 64;

        /// <summary>Value columns per block of <c>chunk_state_gla_tc2</c> and <c>chunk_output_gla_tc2</c>.</summary>
        public const int OutputValues = 128;

        /// <summary>Elements per tile of the second form's tile-major contributions (<c>PT</c>): one pass block's span.</summary>
        public const int PassTile = 512;

        public const string Source = """
#define CQ 64     // steps per chunk
#define CKA 64    // key rows per chunk_state block
#define CKT 32    // keys per shared tile in chunk_output
#define CVT 64    // value columns per block
#define CQP 68    // padded length of a step-indexed shared row (16-byte aligned, 4-way bank spread)

// A thread owns the rows r + 16 i (i < 4) of a 64-long tile dimension: shared rows are stored interleaved, r + 16 i at
// 4 r + i, so that a thread's four values are one float4 and a warp's reads are broadcasts or consecutive.
#define CPOS(t) ((((t) & 15) << 2) | ((t) >> 4))

__device__ __forceinline__ void ld4(const float* p, float (&v)[4]) {
  const float4 f = *reinterpret_cast<const float4*>(p);
  v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
}

// Inclusive cumulative sum over the CQ steps r of columns c < ncol, element (r, c) at m[P(r) rs + P(c) cs] with P the
// interleave where PR / PC (256 threads: four segments of 16 steps per column, then each segment adds the totals of
// the ones before it).
template <bool PR, bool PC>
__device__ __forceinline__ void chunk_cumsum(float* m, int rs, int cs, int ncol) {
  const int col = threadIdx.x % 64, seg = threadIdx.x / 64;
  float* mc = m + (PC ? CPOS(col) : col) * cs;
  float run = 0.0f;
  if (col < ncol)
    for (int r = seg * 16; r < seg * 16 + 16; r++) { float* e = mc + (PR ? CPOS(r) : r) * rs; run += *e; *e = run; }
  __syncthreads();
  float add = 0.0f;
  if (col < ncol)
    for (int s = 0; s < seg; s++) add += mc[(PR ? CPOS(s * 16 + 15) : s * 16 + 15) * rs];
  __syncthreads();
  if (col < ncol && seg > 0)
    for (int r = seg * 16; r < seg * 16 + 16; r++) mc[(PR ? CPOS(r) : r) * rs] += add;
  __syncthreads();
}

// SSD: sa[t] = cumulative dt*A over the chunk, sw[t] = dt (zero past the end: a padded step neither decays nor adds).
__device__ __forceinline__ void chunk_ssd_decay(const float* __restrict__ dt, const float* __restrict__ A, float* sa, float* sw,
                                                int b, int h, int H, int T, int t0, int Tc) {
  const int tid = threadIdx.x;
  if (tid < CQ) {
    const float d = tid < Tc ? dt[((long long)b * T + t0 + tid) * H + h] : 0.0f;
    sw[tid] = d;
    sa[tid] = d * A[h];
  }
  __syncthreads();
  chunk_cumsum<false, false>(sa, 1, 1, 1);
}

// grid (chunks, ceil(V/CVT) * ceil(K/CKA), B*H), block 256. states [B*H, chunks, K, V] (this chunk's contribution),
// decays [B*H, chunks, K] (GLA) or [B*H, chunks] (SSD, g == 0): exp of the chunk's total log decay.
extern "C" __global__ void __launch_bounds__(256) chunk_state(
    const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ dt, const float* __restrict__ A, float* __restrict__ states, float* __restrict__ decays,
    int T, int H, int hpg, int K, int V)
{
  __shared__ __align__(16) float sk[CQ * CKA];   // [step][key, interleaved]: g, its cumulative sum, the decayed keys
  __shared__ __align__(16) float sv[CQ * CVT];   // [step][value column, interleaved]
  __shared__ float sgl[CKA];
  __shared__ float sa[CQ], sw[CQ];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int c = blockIdx.x, NC = gridDim.x;
  const int vtiles = (V + CVT - 1) / CVT;
  const int v0 = (blockIdx.y % vtiles) * CVT, k0 = (blockIdx.y / vtiles) * CKA;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int Gq = H / hpg, hq = h / hpg;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  const bool scalarDecay = g == 0;

  for (int idx = tid; idx < CQ * CVT; idx += 256) {
    const int tt = idx / CVT, cc = idx % CVT;
    sv[tt * CVT + CPOS(cc)] = (tt < Tc && v0 + cc < V) ? to_f(v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc]) : 0.0f;
  }
  if (scalarDecay) {
    chunk_ssd_decay(dt, A, sa, sw, b, h, H, T, t0, Tc);
  } else {
    for (int idx = tid; idx < CQ * CKA; idx += 256) {
      const int tt = idx / CKA, kk = idx % CKA;
      sk[tt * CKA + CPOS(kk)] = (tt < Tc && k0 + kk < K) ? to_f(g[(((long long)b * T + t0 + tt) * H + h) * K + k0 + kk]) : 0.0f;
    }
    __syncthreads();
    chunk_cumsum<false, true>(sk, CKA, 1, CKA);
    if (tid < CKA) sgl[tid] = sk[(CQ - 1) * CKA + CPOS(tid)];
    __syncthreads();
  }
  for (int idx = tid; idx < CQ * CKA; idx += 256) {
    const int tt = idx / CKA, kk = idx % CKA, at = tt * CKA + CPOS(kk);
    const float kv = (tt < Tc && k0 + kk < K) ? to_f(k[(((long long)b * T + t0 + tt) * Gq + hq) * K + k0 + kk]) : 0.0f;
    sk[at] = scalarDecay ? kv * __expf(sa[CQ - 1] - sa[tt]) * sw[tt] : kv * __expf(sgl[kk] - sk[at]);
  }
  if (blockIdx.y % vtiles == 0) {
    if (scalarDecay) {
      if (tid == 0 && k0 == 0) decays[(long long)bh * NC + c] = __expf(sa[CQ - 1]);
    } else if (tid < CKA && k0 + tid < K) {
      decays[((long long)bh * NC + c) * K + k0 + tid] = __expf(sgl[tid]);
    }
  }
  __syncthreads();

  float acc[4][4] = {};   // state rows k0 + ty + 16 i, columns v0 + tx + 16 j
  for (int s = 0; s < CQ; s++) {
    float a[4], w[4];
    ld4(sk + s * CKA + 4 * ty, a);
    ld4(sv + s * CVT + 4 * tx, w);
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
  }
  float* out = states + ((long long)bh * NC + c) * K * (long long)V;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int kk = k0 + ty + 16 * i;
    if (kk >= K) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int cc = v0 + tx + 16 * j;
      if (cc < V) out[(long long)kk * V + cc] = acc[i][j];
    }
  }
}

// grid (ceil(K*V/256), B*H), block 256: S_in[c] = S; S = decay_c S + contribution_c, in place over states; the final
// state to sT (from s0 or zeros). Loads run eight chunks ahead of the dependent update (the pass is a chain of
// dependent steps per element: its time is the loads' latency over the chunks / the batch in flight).
extern "C" __global__ void __launch_bounds__(256) chunk_state_pass(
    float* __restrict__ states, const float* __restrict__ decays, const float* __restrict__ s0, float* __restrict__ sT,
    int NC, int K, int V, int scalarDecay)
{
  const long long KV = (long long)K * V;
  const long long e = (long long)blockIdx.x * 256 + threadIdx.x;
  const int bh = blockIdx.y;
  if (e >= KV) return;
  const int kk = (int)(e / V);
  float S = s0 ? s0[bh * KV + e] : 0.0f;
  float* p = states + (long long)bh * NC * KV + e;
  const float* d = scalarDecay ? decays + (long long)bh * NC : decays + (long long)bh * NC * K + kk;
  const int dstride = scalarDecay ? 1 : K;
  int c = 0;
  for (; c + 8 <= NC; c += 8) {
    float l[8], dc[8];
#pragma unroll
    for (int j = 0; j < 8; j++) { l[j] = p[(long long)(c + j) * KV]; dc[j] = d[(long long)(c + j) * dstride]; }
#pragma unroll
    for (int j = 0; j < 8; j++) { p[(long long)(c + j) * KV] = S; S = fmaf(dc[j], S, l[j]); }
  }
  for (; c < NC; c++) {
    const float l = p[(long long)c * KV], dc = d[(long long)c * dstride];
    p[(long long)c * KV] = S;
    S = fmaf(dc, S, l);
  }
  if (sT) sT[bh * KV + e] = S;
}

// grid (chunks, ceil(V/CVT), B*H), block 256. states: the state entering each chunk (after chunk_state_pass).
extern "C" __global__ void __launch_bounds__(256) chunk_output(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ dt, const float* __restrict__ A, const float* __restrict__ Dp, const io_t* __restrict__ z,
    const float* __restrict__ states, io_t* __restrict__ o, int T, int H, int hpg, int K, int V, float scale)
{
  // phase 1, per key tile: q, k and Γ as [key][step, interleaved], the entering state's rows [key][column, interleaved];
  // phase 2: the causal scores [s][t, interleaved] and the values [s][column, interleaved]
  __shared__ __align__(16) float smem[3 * CKT * CQP + CKT * CVT];
  __shared__ float sa[CQ], sw[CQ];
  float* sq = smem;
  float* sk = sq + CKT * CQP;
  float* sg = sk + CKT * CQP;
  float* sS = sg + CKT * CQP;
  float* sA = smem;
  float* sv = smem + CQ * CQP;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int c = blockIdx.x, NC = gridDim.x;
  const int v0 = blockIdx.y * CVT;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int Gq = H / hpg, hq = h / hpg;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  const bool scalarDecay = g == 0;
  const float* Sin = states + ((long long)bh * NC + c) * K * (long long)V;

  if (scalarDecay) chunk_ssd_decay(dt, A, sa, sw, b, h, H, T, t0, Tc);

  float sc[4][4] = {};   // scores a[t][s], t = ty + 16 i, s = tx + 16 j
  float acc[4][4] = {};  // output o[t][cc], t = ty + 16 i, cc = tx + 16 j
  for (int kt = 0; kt < K; kt += CKT) {
    for (int idx = tid; idx < CQ * CKT; idx += 256) {
      const int tt = idx / CKT, kk = idx % CKT, at = kk * CQP + CPOS(tt);
      const bool in = tt < Tc && kt + kk < K;
      const long long qk = (((long long)b * T + t0 + tt) * Gq + hq) * K + kt + kk;
      sq[at] = in ? to_f(q[qk]) * scale : 0.0f;
      sk[at] = in ? to_f(k[qk]) : 0.0f;
      if (!scalarDecay) sg[at] = in ? to_f(g[(((long long)b * T + t0 + tt) * H + h) * K + kt + kk]) : 0.0f;
    }
    for (int idx = tid; idx < CKT * CVT; idx += 256) {
      const int kk = idx / CVT, cc = idx % CVT;
      sS[kk * CVT + CPOS(cc)] = (kt + kk < K && v0 + cc < V) ? Sin[(long long)(kt + kk) * V + v0 + cc] : 0.0f;
    }
    __syncthreads();
    if (scalarDecay) {
      for (int kk = 0; kk < CKT; kk++) {
        float a[4], w[4];
        ld4(sq + kk * CQP + 4 * ty, a);
        ld4(sk + kk * CQP + 4 * tx, w);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j <= i; j++) sc[i][j] = fmaf(a[i], w[j], sc[i][j]);   // j > i: every s > t
      }
    } else {
      chunk_cumsum<true, false>(sg, 1, CQP, CKT);
      for (int kk = 0; kk < CKT; kk++) {
        float a[4], ga[4], w[4], gw[4];
        ld4(sq + kk * CQP + 4 * ty, a);
        ld4(sg + kk * CQP + 4 * ty, ga);
        ld4(sk + kk * CQP + 4 * tx, w);
        ld4(sg + kk * CQP + 4 * tx, gw);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j <= i; j++) {
            // j < i: every s < t; j == i: causal where tx <= ty; j > i (skipped): every s > t
            const float e = j < i ? __expf(ga[i] - gw[j]) : __expf(tx <= ty ? ga[i] - gw[j] : -1e30f);
            sc[i][j] = fmaf(a[i] * w[j], e, sc[i][j]);
          }
      }
      __syncthreads();
      for (int idx = tid; idx < CKT * CQ; idx += 256) {
        const int at = (idx / CQ) * CQP + idx % CQ;
        sq[at] *= __expf(sg[at]);
      }
    }
    __syncthreads();
    for (int kk = 0; kk < CKT; kk++) {
      float a[4], w[4];
      ld4(sq + kk * CQP + 4 * ty, a);
      ld4(sS + kk * CVT + 4 * tx, w);
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }

  // the causal scores with SSD's scalar decay and dt, then o += scores · v
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const int s = tx + 16 * j;
    float a[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int t = ty + 16 * i;
      a[i] = j <= i ? sc[i][j] : 0.0f;
      if (scalarDecay) a[i] = s <= t ? a[i] * __expf(sa[t] - sa[s]) * sw[s] : 0.0f;
    }
    *reinterpret_cast<float4*>(sA + s * CQP + 4 * ty) = make_float4(a[0], a[1], a[2], a[3]);
  }
  if (scalarDecay) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float e = __expf(sa[ty + 16 * i]);
#pragma unroll
      for (int j = 0; j < 4; j++) acc[i][j] *= e;
    }
  }
  for (int idx = tid; idx < CQ * CVT; idx += 256) {
    const int tt = idx / CVT, cc = idx % CVT;
    sv[tt * CVT + CPOS(cc)] = (tt < Tc && v0 + cc < V) ? to_f(v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc]) : 0.0f;
  }
  __syncthreads();
  // row t = ty + 16 i needs s <= t only: the 16-step block sb of s contributes to the rows i >= sb
#pragma unroll
  for (int sb = 0; sb < 4; sb++) {
    for (int s = 16 * sb; s < 16 * sb + 16; s++) {
      float a[4], w[4];
      ld4(sA + s * CQP + 4 * ty, a);
      ld4(sv + s * CVT + 4 * tx, w);
#pragma unroll
      for (int i = sb; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int tt = ty + 16 * i;
    if (tt >= Tc) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int col = v0 + tx + 16 * j;
      if (col >= V) continue;
      const long long off = (((long long)b * T + t0 + tt) * H + h) * V + col;
      float val = acc[i][j];
      if (Dp) val = fmaf(Dp[(long long)h * V + col], sv[tt * CVT + 4 * tx + j], val);
      if (z) val *= silu_f(to_f(z[off]));
      o[off] = from_f(val);
    }
  }
}
#if MIX_T != 0
// ---- SSD on tensor cores (float16 / bfloat16 I/O): mma.sync m16n8k16, float32 accumulation ----
// Operands are staged in shared memory as I/O-type halves with the reduction index contiguous, so that a lane's
// fragment registers are 32-bit loads of two neighbours; rows are TP halves apart (36 words: the eight row groups of a
// fragment load fall in distinct banks).
#define TP 72

// c += A (16 x 16, row-major) . B (16 x 8, column-major), fp32 accumulators; fragments as in the PTX ISA (g = lane / 4,
// t = lane % 4): A rows g, g + 8 and columns 2t, 2t + 1, + 8; B rows 2t, 2t + 1, + 8 of column g; C rows g, g + 8,
// columns 2t, 2t + 1. Without __CUDA_ARCH__ (the g++ emulation) the harness's emu_mma stands in.
__device__ __forceinline__ void cs_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#ifdef __CUDA_ARCH__
#if MIX_T == 2
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
#else
  emu_mma(c, a, b0, b1);
#endif
}

// The A fragment of rows r0 .. r0 + 15 and columns k0 .. k0 + 15 of a [row][k] tile whose rows are P halves apart.
__device__ __forceinline__ void cs_frag_a_p(const io_t* s, int P, int r0, int k0, unsigned (&a)[4]) {
  const int lane = threadIdx.x & 31;
  const io_t* p = s + (r0 + (lane >> 2)) * P + k0 + 2 * (lane & 3);
  a[0] = *reinterpret_cast<const unsigned*>(p);
  a[1] = *reinterpret_cast<const unsigned*>(p + 8 * P);
  a[2] = *reinterpret_cast<const unsigned*>(p + 8);
  a[3] = *reinterpret_cast<const unsigned*>(p + 8 * P + 8);
}

// The B fragment of rows (k) k0 .. k0 + 15 and columns n0 .. n0 + 7 of a [column][k] tile whose rows are P halves apart.
__device__ __forceinline__ void cs_frag_b_p(const io_t* s, int P, int n0, int k0, unsigned& b0, unsigned& b1) {
  const int lane = threadIdx.x & 31;
  const io_t* p = s + (n0 + (lane >> 2)) * P + k0 + 2 * (lane & 3);
  b0 = *reinterpret_cast<const unsigned*>(p);
  b1 = *reinterpret_cast<const unsigned*>(p + 8);
}

__device__ __forceinline__ void cs_frag_a(const io_t* s, int r0, int k0, unsigned (&a)[4]) { cs_frag_a_p(s, TP, r0, k0, a); }
__device__ __forceinline__ void cs_frag_b(const io_t* s, int n0, int k0, unsigned& b0, unsigned& b1) { cs_frag_b_p(s, TP, n0, k0, b0, b1); }

// A chunk's state contribution out[k][v] (rows k0 .., columns v0 .. of [K, V]) += sum_s (hi + lo)[k][s] x[v][s] over 64
// steps from the staged [key][step] halves of the weighted keys (rounded value, rounding error) and [value column][step]
// inputs; then stored. Warp w owns the rows 16 (w / 2) .. + 15 and columns 32 (w % 2) .. + 31 of the 64 x 64 tile.
__device__ __forceinline__ void cs_state_mma(const io_t* skT, const io_t* skL, const io_t* svT, float (&acc)[4][4]) {
  const int warp = threadIdx.x >> 5;
  const int m0 = 16 * (warp >> 1), n0 = 32 * (warp & 1);
#pragma unroll
  for (int s0 = 0; s0 < CQ; s0 += 16) {
    unsigned a[4], al[4];
    cs_frag_a(skT, m0, s0, a);
    cs_frag_a(skL, m0, s0, al);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      unsigned b0, b1;
      cs_frag_b(svT, n0 + 8 * j, s0, b0, b1);
      cs_mma(acc[j], a, b0, b1);
      cs_mma(acc[j], al, b0, b1);
    }
  }
}

__device__ __forceinline__ void cs_state_store(const float (&acc)[4][4], float* __restrict__ out, int k0, int v0, int K, int V) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int m0 = 16 * (warp >> 1), n0 = 32 * (warp & 1), g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 4; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int kk = k0 + m0 + g + 8 * (i >> 1), cc = v0 + n0 + 8 * j + 2 * t + (i & 1);
      if (kk < K && cc < V) out[(long long)kk * V + cc] = acc[j][i];
    }
}

__device__ __forceinline__ void cs_state_product(const io_t* skT, const io_t* skL, const io_t* svT, float* __restrict__ out,
                                                 int k0, int v0, int K, int V) {
  float acc[4][4] = {};
  cs_state_mma(skT, skL, svT, acc);
  cs_state_store(acc, out, k0, v0, K, V);
}

// SSD's tensor-core kernels take chunks of CL = 4 x 64 steps (as mamba_ssm's Triton kernels take 256): a quarter of
// the chunk states of 64-step chunks, whose float32 traffic (written, passed, read: 16 bytes per state element per
// chunk) would otherwise outweigh the inputs at Mamba-2's state sizes.
#define CL 256

// sa[t] = cumulative dt*A over the CL steps, sw[t] = dt (zero past the end). Each thread sums the steps up to its own
// (warp-broadcast reads, in-bounds pointers only). On the H100 the former chunk_cumsum form (runs of 64 as 4 columns;
// every thread forms a pointer up to 4 KiB past sa, guarded only at the dereference: the suspect) gave chunk_state_ssd_tc
// a decay of exp(672 dt*A) for a 64-step chunk (run 15i, ssd-debug) while chunk_output_ssd_tc computed the same sums right;
// the emulation never reproduced it, so this replacement is unverified on a GPU.
__device__ __forceinline__ void chunk_ssd_decay_long(const float* __restrict__ dt, const float* __restrict__ A, float* sa,
                                                     float* sw, int b, int h, int H, int T, int t0, int Tc) {
  const int tid = threadIdx.x;   // blockDim.x == CL
  const float d = tid < Tc ? dt[((long long)b * T + t0 + tid) * H + h] : 0.0f;
  sw[tid] = d;
  sa[tid] = d * A[h];
  __syncthreads();
  float run = 0.0f;
  for (int s = 0; s <= tid; s++) run += sa[s];
  __syncthreads();
  sa[tid] = run;
  __syncthreads();
}

// grid (chunks of CL, ceil(V/64) * ceil(K/64), B*H), block 256 (8 warps): chunk_state for SSD with the product on
// tensor cores, S[k][v] = sum_s (B_s[k] exp(G_end - G_s) dt_s) x_s[v], 64 steps at a time into the same accumulators.
// The weighted keys enter as two I/O-type halves, the rounded value and its rounding error (two products), so that the
// float32 state keeps float32-like accuracy (x is exact in its I/O type).
extern "C" __global__ void __launch_bounds__(256) chunk_state_ssd_tc(
    const io_t* __restrict__ k, const io_t* __restrict__ v, const float* __restrict__ dt, const float* __restrict__ A,
    float* __restrict__ states, float* __restrict__ decays, int T, int H, int hpg, int K, int V)
{
  __shared__ __align__(16) io_t skT[64 * TP];   // [key][step]: the weighted keys, rounded
  __shared__ __align__(16) io_t skL[64 * TP];   // [key][step]: their rounding errors
  __shared__ __align__(16) io_t svT[64 * TP];   // [value column][step]
  __shared__ float sa[CL], sw[CL];
  const int tid = threadIdx.x;
  const int c = blockIdx.x, NC = gridDim.x;
  const int vtiles = (V + 63) / 64;
  const int v0 = (blockIdx.y % vtiles) * 64, k0 = (blockIdx.y / vtiles) * 64;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int Gq = H / hpg, hq = h / hpg;
  const int t0 = c * CL, Tc = min(CL, T - t0);
  chunk_ssd_decay_long(dt, A, sa, sw, b, h, H, T, t0, Tc);
  if (blockIdx.y == 0 && tid == 0) decays[(long long)bh * NC + c] = __expf(sa[CL - 1]);
  float acc[4][4] = {};
  for (int sub = 0; sub * 64 < Tc; sub++) {
    for (int idx = tid; idx < 64 * 64; idx += 256) {
      const int r = idx / 64, cc = idx % 64, tt = 64 * sub + r;
      const bool in = tt < Tc;
      svT[cc * TP + r] = (in && v0 + cc < V) ? v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc] : (io_t)0;
      const float kv = (in && k0 + cc < K) ? to_f(k[(((long long)b * T + t0 + tt) * Gq + hq) * K + k0 + cc]) : 0.0f;
      const float w = kv * __expf(sa[CL - 1] - sa[tt]) * sw[tt];
      const io_t hi = from_f(w);
      skT[cc * TP + r] = hi;
      skL[cc * TP + r] = from_f(w - to_f(hi));
    }
    __syncthreads();
    cs_state_mma(skT, skL, svT, acc);
    __syncthreads();
  }
  cs_state_store(acc, states + ((long long)bh * NC + c) * K * (long long)V, k0, v0, K, V);
}

// grid (chunks of CL x CL/64 row blocks, ceil(V/64), B*H), block 256: chunk_output for SSD with its three products on
// tensor cores, for the 64 rows t of row block m of a chunk. For each block sb <= m of 64 steps s, per key tile of 64:
// the scores C_t.B_s^T (in the diagonal block only the 16 x 8 tiles with some s <= t) and, once, C_t.S_in (the entering
// float32 state rounded to the I/O type, as mamba_ssm's Triton kernel does); then the scores masked and decayed in
// registers, exp(G_t - G_s) dt_s for s <= t, rounded into shared memory as the A operand of P.x_sb, and the state term
// scaled by exp(G_t). Warp w owns the rows 16 (w / 2) .. + 15 of the block and columns 32 (w % 2) .. + 31 (of s for
// the scores, of the value tile for the output).
extern "C" __global__ void __launch_bounds__(256) chunk_output_ssd_tc(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v,
    const float* __restrict__ dt, const float* __restrict__ A, const float* __restrict__ Dp, const io_t* __restrict__ z,
    const float* __restrict__ states, io_t* __restrict__ o, int T, int H, int hpg, int K, int V)
{
  __shared__ __align__(16) io_t sq[64 * TP];    // [t][key] per key tile; then the masked scores [t][s]
  __shared__ __align__(16) io_t sk[64 * TP];    // [s][key]
  __shared__ __align__(16) io_t sS[64 * TP];    // [value column][key]: the entering state
  __shared__ __align__(16) io_t sxT[64 * TP];   // [value column][s]
  __shared__ float sa[CL], sw[CL];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int c = blockIdx.x / (CL / 64), m = blockIdx.x % (CL / 64), NC = gridDim.x / (CL / 64);
  const int v0 = blockIdx.y * 64;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int Gq = H / hpg, hq = h / hpg;
  const int t0 = c * CL, Tc = min(CL, T - t0);
  if (64 * m >= Tc) return;   // a row block past the end (block-uniform, before any barrier)
  const float* Sin = states + ((long long)bh * NC + c) * K * (long long)V;
  chunk_ssd_decay_long(dt, A, sa, sw, b, h, H, T, t0, Tc);
  const int m0 = 16 * (warp >> 1), n0 = 32 * (warp & 1), g = lane >> 2, t = lane & 3;
  const int r0 = 64 * m;   // the block's first row within the chunk
  float acc[4][4] = {};
  for (int sb = 0; sb <= m; sb++) {
    const int s0 = 64 * sb;
    const bool diag = sb == m;
    float sc[4][4] = {};
    for (int kt = 0; kt < K; kt += 64) {
      for (int idx = tid; idx < 64 * 64; idx += 256) {
        const int r = idx / 64, cc = idx % 64;   // (step, key) for C and B; (key, value column) for the state
        const bool kin = kt + cc < K;
        sq[r * TP + cc] = (r0 + r < Tc && kin) ? q[(((long long)b * T + t0 + r0 + r) * Gq + hq) * K + kt + cc] : (io_t)0;
        sk[r * TP + cc] = (s0 + r < Tc && kin) ? k[(((long long)b * T + t0 + s0 + r) * Gq + hq) * K + kt + cc] : (io_t)0;
        if (sb == 0)
          sS[cc * TP + r] = (kt + r < K && v0 + cc < V) ? from_f(Sin[(long long)(kt + r) * V + v0 + cc]) : (io_t)0;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < 64; kk += 16) {
        unsigned a[4];
        cs_frag_a(sq, m0, kk, a);
#pragma unroll
        for (int j = 0; j < 4; j++) {
          unsigned b0, b1;
          if (!diag || n0 + 8 * j <= m0 + 15) {   // warp-uniform: the tile holds some s <= t
            cs_frag_b(sk, n0 + 8 * j, kk, b0, b1);
            cs_mma(sc[j], a, b0, b1);
          }
          if (sb == 0) {
            cs_frag_b(sS, n0 + 8 * j, kk, b0, b1);
            cs_mma(acc[j], a, b0, b1);
          }
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int tl = m0 + g + 8 * (i >> 1), tt = r0 + tl;
      const float e = sb == 0 ? __expf(sa[tt]) : 1.0f;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        acc[j][i] *= e;
        const int sl = n0 + 8 * j + 2 * t + (i & 1), s = s0 + sl;
        sq[tl * TP + sl] = from_f(s <= tt ? sc[j][i] * __expf(sa[tt] - sa[s]) * sw[s] : 0.0f);
      }
    }
    for (int idx = tid; idx < 64 * 64; idx += 256) {
      const int r = idx / 64, cc = idx % 64;
      sxT[cc * TP + r] = (s0 + r < Tc && v0 + cc < V) ? v[(((long long)b * T + t0 + s0 + r) * H + h) * V + v0 + cc] : (io_t)0;
    }
    __syncthreads();
    for (int sk0 = 0; sk0 < 64 && (!diag || sk0 <= m0); sk0 += 16) {   // the diagonal block's rows need s <= t only
      unsigned a[4];
      cs_frag_a(sq, m0, sk0, a);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        unsigned b0, b1;
        cs_frag_b(sxT, n0 + 8 * j, sk0, b0, b1);
        cs_mma(acc[j], a, b0, b1);
      }
    }
    if (!diag) __syncthreads();   // before the next block's staging overwrites sq and sxT
  }
  // sxT now holds the row block's own inputs (sb == m): the D skip reads them
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int tl = m0 + g + 8 * (i >> 1), tt = r0 + tl;
    if (tt >= Tc) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int cc = n0 + 8 * j + 2 * t + (i & 1), col = v0 + cc;
      if (col >= V) continue;
      const long long off = (((long long)b * T + t0 + tt) * H + h) * V + col;
      float val = acc[j][i];
      if (Dp) val = fmaf(Dp[(long long)h * V + col], to_f(sxT[cc * TP + tl]), val);
      if (z) val *= silu_f(to_f(z[off]));
      o[off] = from_f(val);
    }
  }
}

// grid (chunks, ceil(V/64) * ceil(K/64), B*H), block 256: chunk_state for GLA on tensor cores (as chunk_state_ssd_tc, with
// the per-key decay: the weighted keys k_s[k] exp(G_end[k] - G_s[k]), G the inclusive cumulative log gate per key).
extern "C" __global__ void __launch_bounds__(256) chunk_state_gla_tc(
    const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    float* __restrict__ states, float* __restrict__ decays, int T, int H, int K, int V)
{
  __shared__ float sg[CQ * 64];                 // [step][key]: the gates, then their cumulative sums
  __shared__ __align__(16) io_t skT[64 * TP];
  __shared__ __align__(16) io_t skL[64 * TP];
  __shared__ __align__(16) io_t svT[64 * TP];
  const int tid = threadIdx.x;
  const int c = blockIdx.x, NC = gridDim.x;
  const int vtiles = (V + 63) / 64;
  const int v0 = (blockIdx.y % vtiles) * 64, k0 = (blockIdx.y / vtiles) * 64;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  for (int idx = tid; idx < CQ * 64; idx += 256) {
    const int tt = idx / 64, cc = idx % 64;
    const long long row = ((long long)b * T + t0 + tt) * H + h;
    sg[idx] = (tt < Tc && k0 + cc < K) ? to_f(g[row * K + k0 + cc]) : 0.0f;
    svT[cc * TP + tt] = (tt < Tc && v0 + cc < V) ? v[row * V + v0 + cc] : (io_t)0;
  }
  __syncthreads();
  chunk_cumsum<false, false>(sg, 64, 1, 64);
  if (blockIdx.y % vtiles == 0 && tid < 64 && k0 + tid < K)
    decays[((long long)bh * NC + c) * K + k0 + tid] = __expf(sg[(CQ - 1) * 64 + tid]);
  for (int idx = tid; idx < CQ * 64; idx += 256) {
    const int tt = idx / 64, cc = idx % 64;
    const float kv = (tt < Tc && k0 + cc < K) ? to_f(k[(((long long)b * T + t0 + tt) * H + h) * K + k0 + cc]) : 0.0f;
    const float w = kv * __expf(sg[(CQ - 1) * 64 + cc] - sg[idx]);
    const io_t hi = from_f(w);
    skT[cc * TP + tt] = hi;
    skL[cc * TP + tt] = from_f(w - to_f(hi));
  }
  __syncthreads();
  cs_state_product(skT, skL, svT, states + ((long long)bh * NC + c) * K * (long long)V, k0, v0, K, V);
}

#define TPK 40   // pitch (halves) of a 32-key half tile row: 20 words, conflict-free fragment loads

// grid (chunks, ceil(V/64), B*H), block 256: chunk_output for GLA with the two large products on tensor cores. Per key
// tile of 32: the causal scores a_ts = sum_k q_t[k] k_s[k] exp(G_t[k] - G_s[k]) in float32 FMA as chunk_output
// computes them (a per-key exponential per pair), and (q_t exp G_t) . S_in on tensor cores (both rounded to the I/O
// type); then the masked scores, rounded, times v on tensor cores. Warp w owns the output rows t = 16 (w / 2) .. + 15
// and columns 32 (w % 2) .. + 31 of the value tile.
extern "C" __global__ void __launch_bounds__(256) chunk_output_gla_tc(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ states, io_t* __restrict__ o, int T, int H, int K, int V, float scale)
{
  // per key tile: q, k and G as [key][step, interleaved] floats; after the key loop the same bytes hold the masked
  // scores [t][s] and the values [column][s] as halves
  __shared__ __align__(16) float smem[3 * CKT * CQP];
  __shared__ __align__(16) io_t sqe[CQ * TPK];   // [t][key]: q exp(G_t)
  __shared__ __align__(16) io_t sS[CVT * TPK];   // [value column][key]: the entering state
  float* sq = smem;
  float* sk = sq + CKT * CQP;
  float* sg = sk + CKT * CQP;
  io_t* sP = reinterpret_cast<io_t*>(smem);
  io_t* svT = sP + CQ * TP;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16, warp = tid >> 5, lane = tid & 31;
  const int c = blockIdx.x, NC = gridDim.x;
  const int v0 = blockIdx.y * CVT;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  const float* Sin = states + ((long long)bh * NC + c) * K * (long long)V;
  const int m0 = 16 * (warp >> 1), n0 = 32 * (warp & 1);

  float sc[4][4] = {};   // FMA scores a[t][s], t = ty + 16 i, s = tx + 16 j
  float acc[4][4] = {};  // mma output fragments: rows m0 + g (+ 8), columns n0 + 8 j + 2 t (+ 1)
  for (int kt = 0; kt < K; kt += CKT) {
    for (int idx = tid; idx < CQ * CKT; idx += 256) {
      const int tt = idx / CKT, kk = idx % CKT, at = kk * CQP + CPOS(tt);
      const bool in = tt < Tc && kt + kk < K;
      const long long qk = (((long long)b * T + t0 + tt) * H + h) * K + kt + kk;
      sq[at] = in ? to_f(q[qk]) * scale : 0.0f;
      sk[at] = in ? to_f(k[qk]) : 0.0f;
      sg[at] = in ? to_f(g[qk]) : 0.0f;
    }
    for (int idx = tid; idx < CKT * CVT; idx += 256) {
      const int kk = idx / CVT, cc = idx % CVT;
      sS[cc * TPK + kk] = (kt + kk < K && v0 + cc < V) ? from_f(Sin[(long long)(kt + kk) * V + v0 + cc]) : (io_t)0;
    }
    __syncthreads();
    chunk_cumsum<true, false>(sg, 1, CQP, CKT);
    for (int kk = 0; kk < CKT; kk++) {
      float a[4], ga[4], w[4], gw[4];
      ld4(sq + kk * CQP + 4 * ty, a);
      ld4(sg + kk * CQP + 4 * ty, ga);
      ld4(sk + kk * CQP + 4 * tx, w);
      ld4(sg + kk * CQP + 4 * tx, gw);
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j <= i; j++) {
          // j < i: every s < t; j == i: causal where tx <= ty; j > i (skipped): every s > t
          const float e = j < i ? __expf(ga[i] - gw[j]) : __expf(tx <= ty ? ga[i] - gw[j] : -1e30f);
          sc[i][j] = fmaf(a[i] * w[j], e, sc[i][j]);
        }
    }
    for (int idx = tid; idx < CQ * CKT; idx += 256) {
      const int tt = idx / CKT, kk = idx % CKT, at = kk * CQP + CPOS(tt);
      sqe[tt * TPK + kk] = from_f(sq[at] * __expf(sg[at]));
    }
    __syncthreads();
#pragma unroll
    for (int k0 = 0; k0 < CKT; k0 += 16) {
      unsigned a[4];
      cs_frag_a_p(sqe, TPK, m0, k0, a);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        unsigned b0, b1;
        cs_frag_b_p(sS, TPK, n0 + 8 * j, k0, b0, b1);
        cs_mma(acc[j], a, b0, b1);
      }
    }
    __syncthreads();
  }
  // the masked scores and the values, as halves over the (now free) float tiles
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int t = ty + 16 * i, s = tx + 16 * j;
      sP[t * TP + s] = from_f(s <= t ? sc[i][j] : 0.0f);
    }
  for (int idx = tid; idx < CQ * CVT; idx += 256) {
    const int tt = idx / CVT, cc = idx % CVT;
    svT[cc * TP + tt] = (tt < Tc && v0 + cc < V) ? v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc] : (io_t)0;
  }
  __syncthreads();
  for (int s0 = 0; s0 <= m0; s0 += 16) {
    unsigned a[4];
    cs_frag_a(sP, m0, s0, a);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      unsigned b0, b1;
      cs_frag_b(svT, n0 + 8 * j, s0, b0, b1);
      cs_mma(acc[j], a, b0, b1);
    }
  }
  const int gq = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int tt = m0 + gq + 8 * (i >> 1);
    if (tt >= Tc) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int col = v0 + n0 + 8 * j + 2 * tq + (i & 1);
      if (col < V) o[(((long long)b * T + t0 + tt) * H + h) * V + col] = from_f(acc[j][i]);
    }
  }
}
// ---- GLA forward, second form (bfloat16 I/O, K and V multiples of 8): chunk_state_gla_tc2 -> chunk_state_pass_t ->
// chunk_output_gla_tc2. The first form's chunk_output_gla_tc formed a per-key exponential for every (t, s, key) of
// the 64 x 64 causal scores, in float32 FMA, once per 64-column value tile: about 1.6e5 exponentials per block, each
// with four more FMA-pipe instructions, which left it issue-bound (1.40 ms at b4 16K on the H100, ncu). Here the scores of the 16 x 16 blocks below the diagonal take tensor
// cores, each side decayed against the first step n of the row block (q_t exp(G_t - G_n), k_s exp(G_n - G_s), both
// exponents <= 0 for s < n <= t, so neither factor overflows: fla's secondary chunking), and only the four diagonal
// blocks keep a per-pair exponential; a block covers 128 value columns, so the scores are formed once per chunk for
// V <= 128. The state entering each chunk reaches the output kernel in the I/O type (it was rounded to it there
// anyway), stored [V, K] so that it is the B operand as it lies.

__device__ __forceinline__ unsigned cs_pack(float lo, float hi) {
  return (unsigned)from_f(lo) | ((unsigned)from_f(hi) << 16);
}
__device__ __forceinline__ float cs_lo(unsigned u) { return to_f((io_t)(u & 0xffffu)); }
__device__ __forceinline__ float cs_hi(unsigned u) { return to_f((io_t)(u >> 16)); }

// The float32 contributions of the second form lie tile-major, [B*H][tiles][chunks][PT] with the element index
// e = v K + k cut into tiles of PT: a chunk_state_pass_t block then streams one contiguous region (its tile for every
// chunk) instead of a 1 KB piece per chunk 32 KB apart (the first form's pass reached 24 % of DRAM bandwidth on the H100
// at b4 16K, ncu, session 17).
#define PT 512
__device__ __forceinline__ long long cs_tiled(long long e, int c, int NC) {
  return ((e / PT) * NC + c) * PT + (e % PT);
}

#define S2P 68   // pitch (floats) of the gates [step][64 keys]: float4 accesses of 8 consecutive steps hit distinct banks

// grid (chunks, ceil(V/128) * ceil(K/64), B*H), block 256: chunk_state_gla_tc's product for 64 keys x 128 value
// columns (the gates' cumulative sums, the decays and the weighted keys formed once for both 64-column halves of the
// GLA LM's V), with 16-byte loads and conflict-free transposing stores (the first form's 2-byte loads, per-element
// index arithmetic and 8-way conflicting transposes left it issue-bound at 381 us for 404 MB, ncu, session 17).
// Thread: step tid % 64, keys 16 (tid / 64) .. + 15 and value columns 32 (tid / 64) .. + 31; a warp's lanes take
// consecutive steps, so its [key][step] and [value][step] stores fall in consecutive halves. The values reuse the
// gates' shared memory once the weights are formed. Warp w owns keys 16 (w % 4) .. + 15 and columns 64 (w / 4) .. + 63.
// Contributions stored tile-major (cs_tiled).
extern "C" __global__ void __launch_bounds__(256) chunk_state_gla_tc2(
    const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    float* __restrict__ states, float* __restrict__ decays, int T, int H, int K, int V)
{
  __shared__ __align__(16) float su[128 * TP / 2];   // the gates [step][key] (pitch S2P), then the values [column][step]
  __shared__ __align__(16) io_t skT[64 * TP];        // [key][step]: the weighted keys, rounded
  __shared__ __align__(16) io_t skL[64 * TP];        // [key][step]: their rounding errors
  float* sg = su;
  io_t* svT = reinterpret_cast<io_t*>(su);
  const int tid = threadIdx.x, tt = tid & 63, part = tid >> 6;
  const int c = blockIdx.x, NC = gridDim.x;
  const int vtiles = (V + 127) / 128;
  const int v0 = (blockIdx.y % vtiles) * 128, k0 = (blockIdx.y / vtiles) * 64;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  const long long row = ((long long)b * T + t0 + tt) * H + h;
  const int kc = 16 * part, vc = 32 * part;   // this thread's first key and value column within the tile
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
  uint4 kr[2], gr[2], vr[4];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const bool kin = tt < Tc && k0 + kc + 8 * i < K;
    kr[i] = kin ? *reinterpret_cast<const uint4*>(k + row * K + k0 + kc + 8 * i) : zero4;
    gr[i] = kin ? *reinterpret_cast<const uint4*>(g + row * K + k0 + kc + 8 * i) : zero4;
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const bool vin = tt < Tc && v0 + vc + 8 * i < V;
    vr[i] = vin ? *reinterpret_cast<const uint4*>(v + row * V + v0 + vc + 8 * i) : zero4;
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
    float* d = sg + tt * S2P + kc + 8 * i;
    *reinterpret_cast<float4*>(d) = make_float4(cs_lo(gr[i].x), cs_hi(gr[i].x), cs_lo(gr[i].y), cs_hi(gr[i].y));
    *reinterpret_cast<float4*>(d + 4) = make_float4(cs_lo(gr[i].z), cs_hi(gr[i].z), cs_lo(gr[i].w), cs_hi(gr[i].w));
  }
  __syncthreads();
  chunk_cumsum<false, false>(sg, S2P, 1, 64);
  if (blockIdx.y % vtiles == 0 && tid < 64 && k0 + tid < K)
    decays[((long long)bh * NC + c) * K + k0 + tid] = __expf(sg[(CQ - 1) * S2P + tid]);
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const unsigned w[4] = { kr[i].x, kr[i].y, kr[i].z, kr[i].w };
#pragma unroll
    for (int h4 = 0; h4 < 2; h4++) {
      // float4 reads: 8 consecutive steps' rows hit distinct banks (a float per lane would be 4-way conflicting)
      const float4 gt = *reinterpret_cast<const float4*>(sg + tt * S2P + kc + 8 * i + 4 * h4);
      const float4 ge = *reinterpret_cast<const float4*>(sg + (CQ - 1) * S2P + kc + 8 * i + 4 * h4);
      const float x[4] = { cs_lo(w[2 * h4]) * __expf(ge.x - gt.x), cs_hi(w[2 * h4]) * __expf(ge.y - gt.y),
                           cs_lo(w[2 * h4 + 1]) * __expf(ge.z - gt.z), cs_hi(w[2 * h4 + 1]) * __expf(ge.w - gt.w) };
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int kk = kc + 8 * i + 4 * h4 + e;
        const io_t hi = from_f(x[e]);
        skT[kk * TP + tt] = hi;
        skL[kk * TP + tt] = from_f(x[e] - to_f(hi));
      }
    }
  }
  __syncthreads();   // the gates are read: their bytes take the values
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const unsigned w[4] = { vr[i].x, vr[i].y, vr[i].z, vr[i].w };
#pragma unroll
    for (int e = 0; e < 4; e++) {
      svT[(vc + 8 * i + 2 * e) * TP + tt] = (io_t)(w[e] & 0xffffu);
      svT[(vc + 8 * i + 2 * e + 1) * TP + tt] = (io_t)(w[e] >> 16);
    }
  }
  __syncthreads();
  const int warp = tid >> 5, lane = tid & 31;
  const int m0 = 16 * (warp & 3), n0 = 64 * (warp >> 2), gq = lane >> 2, tq = lane & 3;
  float acc[8][4] = {};
#pragma unroll
  for (int s0 = 0; s0 < CQ; s0 += 16) {
    unsigned a[4], al[4];
    cs_frag_a(skT, m0, s0, a);
    cs_frag_a(skL, m0, s0, al);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      unsigned b0, b1;
      cs_frag_b(svT, n0 + 8 * j, s0, b0, b1);
      cs_mma(acc[j], a, b0, b1);
      cs_mma(acc[j], al, b0, b1);
    }
  }
  // into the tile-major layout: lanes gq of a fragment hold 8 consecutive keys (32 bytes)
  const int tiles = (int)(((long long)K * V + PT - 1) / PT);
  float* out = states + (long long)bh * tiles * NC * PT;
#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int kk = k0 + m0 + gq + 8 * (i >> 1), cc = v0 + n0 + 8 * j + 2 * tq + (i & 1);
      if (kk < K && cc < V) out[cs_tiled((long long)cc * K + kk, c, NC)] = acc[j][i];
    }
}

// grid (ceil(K*V/PT), B*H), block 256: chunk_state_pass over the tile-major contributions of chunk_state_gla_tc2, two
// neighbouring keys per thread (K even), 8 chunks of loads in flight (a 16-chunk batch made NVRTC 11.8's ptxas
// interleave the loads with the chain at 32 registers, 8 keeps them ahead at 40). The state entering each chunk goes to
// sin [B*H, chunks, V, K] in the I/O type (the float32 contributions are only read: no write-back), the final state to
// sT as [K, V].
extern "C" __global__ void __launch_bounds__(256) chunk_state_pass_t(
    const float* __restrict__ states, const float* __restrict__ decays, const float* __restrict__ s0, float* __restrict__ sT,
    io_t* __restrict__ sin, int NC, int K, int V)
{
  const long long KV = (long long)K * V;
  const int tile = blockIdx.x, tiles = gridDim.x, bh = blockIdx.y;
  const long long e = (long long)tile * PT + 2 * threadIdx.x;
  if (e >= KV) return;
  const int vv = (int)(e / K), kk = (int)(e % K);
  const long long f0 = (long long)bh * KV + (long long)kk * V + vv;   // [K, V] index of the first of the two
  float S0 = s0 ? s0[f0] : 0.0f, S1 = s0 ? s0[f0 + V] : 0.0f;
  const float* p = states + ((long long)bh * tiles + tile) * NC * PT + 2 * threadIdx.x;   // chunk c at p + c PT
  const float* d = decays + (long long)bh * NC * K + kk;
  io_t* w = sin + (long long)bh * NC * KV + e;
  int c = 0;
  for (; c + 8 <= NC; c += 8) {
    float2 l[8], dc[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
      l[j] = *reinterpret_cast<const float2*>(p + (long long)(c + j) * PT);
      dc[j] = *reinterpret_cast<const float2*>(d + (long long)(c + j) * K);
    }
#pragma unroll
    for (int j = 0; j < 8; j++) {
      *reinterpret_cast<unsigned*>(w + (long long)(c + j) * KV) = cs_pack(S0, S1);
      S0 = fmaf(dc[j].x, S0, l[j].x);
      S1 = fmaf(dc[j].y, S1, l[j].y);
    }
  }
  for (; c < NC; c++) {
    const float2 l = *reinterpret_cast<const float2*>(p + (long long)c * PT);
    const float2 dc = *reinterpret_cast<const float2*>(d + (long long)c * K);
    *reinterpret_cast<unsigned*>(w + (long long)c * KV) = cs_pack(S0, S1);
    S0 = fmaf(dc.x, S0, l.x);
    S1 = fmaf(dc.y, S1, l.y);
  }
  if (sT) { sT[f0] = S0; sT[f0 + V] = S1; }
}

#define G2P 36   // pitch (floats) of a [step][32 keys] tile: float4 reads of 8 consecutive rows hit distinct banks
#define Q2P 40   // pitch (halves) of the entering state's [column][32 keys] tile: 20 words, conflict-free fragment reads

// 2^x on the SFU (no range reduction: callers pass exponents <= 0, results below 2^-126 flush to zero)
__device__ __forceinline__ float cs_ex2(float x) {
#ifdef __CUDA_ARCH__
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

// The A fragment of rows r0 .. r0 + 15 and keys k0 .. k0 + 15 of the key tile, formed in registers from the staged
// scaled queries and base-2 cumulative gates: q_t[k] 2^(G_t[k] - G_ref[k]) (ref < 0: 2^G_t[k]).
__device__ __forceinline__ void g2_frag_q(const float* sq, const float* sg, int r0, int k0, int ref, unsigned (&a)[4]) {
  const int lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int r = r0 + gq + 8 * (i & 1), c = k0 + 2 * tq + 8 * (i >> 1);
    const float2 qq = *reinterpret_cast<const float2*>(sq + r * G2P + c);
    const float2 gt = *reinterpret_cast<const float2*>(sg + r * G2P + c);
    float e0 = gt.x, e1 = gt.y;
    if (ref >= 0) {
      const float2 gr = *reinterpret_cast<const float2*>(sg + ref * G2P + c);
      e0 -= gr.x;
      e1 -= gr.y;
    }
    a[i] = cs_pack(qq.x * cs_ex2(e0), qq.y * cs_ex2(e1));
  }
}

// The B fragment of the steps (columns) n0 .. n0 + 7 and keys k0 .. k0 + 15: k_s[k] 2^(G_ref[k] - G_s[k]).
__device__ __forceinline__ void g2_frag_k(const float* sk, const float* sg, int n0, int k0, int ref, unsigned& b0, unsigned& b1) {
  const int lane = threadIdx.x & 31, s = n0 + (lane >> 2), c = k0 + 2 * (lane & 3);
  unsigned r[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int cc = c + 8 * i;
    const float2 kk = *reinterpret_cast<const float2*>(sk + s * G2P + cc);
    const float2 gs = *reinterpret_cast<const float2*>(sg + s * G2P + cc);
    const float2 gr = *reinterpret_cast<const float2*>(sg + ref * G2P + cc);
    r[i] = cs_pack(kk.x * cs_ex2(gr.x - gs.x), kk.y * cs_ex2(gr.y - gs.y));
  }
  b0 = r[0];
  b1 = r[1];
}

// Score tile u (0 .. 11) below the diagonal: the 8-column half (u & 1) of the 16 x 16 block (i, j), j < i, in the order
// (1,0) (2,0) (2,1) (3,0) (3,1) (3,2).
__device__ __forceinline__ void g2_tile(int u, int& i, int& j, int& half) {
  const int pr = u >> 1;
  i = pr < 1 ? 1 : pr < 3 ? 2 : 3;
  j = pr - i * (i - 1) / 2;
  half = u & 1;
}

// grid (chunks, ceil(V/128), B*H), block 256 (8 warps): the output of a chunk for 128 value columns,
// o_t = sum_{s<=t} a_ts v_s + (q_t scale exp G_t) S_in. Per key tile of 32: the scores of the six 16 x 16 blocks below
// the diagonal on tensor cores (warp w: the 8-column halves w and w + 8 of them, operands decayed in registers against
// the row block's first step), the four diagonal blocks' causal pairs in float32 FMA (two or three pairs per thread),
// and (q exp G) . S_in on tensor cores; then the scores, rounded to the I/O type, times v. Warp w owns the
// output rows 16 (w % 4) .. + 15 and columns 64 (w / 4) .. + 63 of the block.
extern "C" __global__ void __launch_bounds__(256) chunk_output_gla_tc2(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const io_t* __restrict__ sin, io_t* __restrict__ o, int T, int H, int K, int V, float scale)
{
  // per key tile: the base-2 cumulative gates, the scaled queries and the keys [step][key] as floats (converted once
  // here rather than per pair in the diagonal blocks), the entering state [column][key] as halves; after the key loop
  // the same bytes hold the scores [t][s] and the values [column][s] (halves)
  __shared__ __align__(16) float smem2[3 * CQ * G2P + 128 * Q2P / 2];
  float* sg = smem2;
  float* sq = sg + CQ * G2P;
  float* sk = sq + CQ * G2P;
  io_t* sS = reinterpret_cast<io_t*>(sk + CQ * G2P);
  io_t* sP = reinterpret_cast<io_t*>(smem2);
  io_t* svT = sP + CQ * TP;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
  const int c = blockIdx.x, NC = gridDim.x;
  const int v0 = blockIdx.y * 128;
  const int bh = blockIdx.z, b = bh / H, h = bh % H;
  const int t0 = c * CQ, Tc = min(CQ, T - t0);
  const io_t* Sin = sin + ((long long)bh * NC + c) * K * (long long)V;
  const int m0 = 16 * (warp & 3), n0 = 64 * (warp >> 2);
  // the diagonal blocks' 4 x 136 causal pairs, numbered blk * 136 + row-major within the triangle: thread tid takes
  // the pairs tid, tid + 256 and (warp 0) tid + 512, so that no lane idles on a pair above the diagonal
  int pair[3];   // (t << 8) | s
#pragma unroll
  for (int r = 0; r < 3; r++) {
    const int p = tid + 256 * r, blk = p / 136;
    int rr = p % 136, ti = 0;
    while (rr > ti) { rr -= ti + 1; ti++; }
    pair[r] = ((16 * blk + ti) << 8) | (16 * blk + rr);
  }
  const int npairs = tid + 512 < 4 * 136 ? 3 : 2;   // warp-uniform
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
  float acc[8][4] = {};   // output fragments: rows m0 + gq (+ 8), columns n0 + 8 j + 2 tq (+ 1)
  float sc[2][4] = {};    // score fragments of the tiles warp and warp + 8
  float dg[3] = {};       // the diagonal pairs' scores
  for (int kt = 0; kt < K; kt += 32) {
    {
      // one 8-key vector of q, k and g per thread: 64 steps x 4 vectors
      const int tt = tid >> 2, kv = 8 * (tid & 3);
      const bool in = tt < Tc && kt + kv < K;
      const long long off = (((long long)b * T + t0 + tt) * H + h) * K + kt + kv;
      const uint4 qv = in ? *reinterpret_cast<const uint4*>(q + off) : zero4;
      const uint4 kv4 = in ? *reinterpret_cast<const uint4*>(k + off) : zero4;
      const uint4 gv = in ? *reinterpret_cast<const uint4*>(g + off) : zero4;
      const float L2E = 1.4426950408889634f;   // gates in base 2: every exponential below is one ex2
      const unsigned qw[4] = { qv.x, qv.y, qv.z, qv.w }, kw[4] = { kv4.x, kv4.y, kv4.z, kv4.w }, gw[4] = { gv.x, gv.y, gv.z, gv.w };
#pragma unroll
      for (int h4 = 0; h4 < 2; h4++) {
        const int at = tt * G2P + kv + 4 * h4;
        *reinterpret_cast<float4*>(sq + at) = make_float4(cs_lo(qw[2 * h4]) * scale, cs_hi(qw[2 * h4]) * scale,
                                                          cs_lo(qw[2 * h4 + 1]) * scale, cs_hi(qw[2 * h4 + 1]) * scale);
        *reinterpret_cast<float4*>(sk + at) = make_float4(cs_lo(kw[2 * h4]), cs_hi(kw[2 * h4]), cs_lo(kw[2 * h4 + 1]), cs_hi(kw[2 * h4 + 1]));
        *reinterpret_cast<float4*>(sg + at) = make_float4(cs_lo(gw[2 * h4]) * L2E, cs_hi(gw[2 * h4]) * L2E,
                                                          cs_lo(gw[2 * h4 + 1]) * L2E, cs_hi(gw[2 * h4 + 1]) * L2E);
      }
    }
    for (int idx = tid; idx < 128 * 4; idx += 256) {
      const int cc = idx >> 2, kv = 8 * (idx & 3);
      const bool in = v0 + cc < V && kt + kv < K;
      *reinterpret_cast<uint4*>(sS + cc * Q2P + kv) =
          in ? *reinterpret_cast<const uint4*>(Sin + (long long)(v0 + cc) * K + kt + kv) : zero4;
    }
    __syncthreads();
    chunk_cumsum<false, false>(sg, G2P, 1, 32);
    // the diagonal blocks: a per-key exponential per pair, s <= t
#pragma unroll
    for (int r = 0; r < 3; r++) {
      const int t = pair[r] >> 8, s = pair[r] & 255;
      if (r < npairs) {
        float a = 0.0f;
#pragma unroll
        for (int kk = 0; kk < 32; kk += 4) {
          const float4 qa = *reinterpret_cast<const float4*>(sq + t * G2P + kk);
          const float4 ka = *reinterpret_cast<const float4*>(sk + s * G2P + kk);
          const float4 gt = *reinterpret_cast<const float4*>(sg + t * G2P + kk);
          const float4 gs = *reinterpret_cast<const float4*>(sg + s * G2P + kk);
          a = fmaf(qa.x * ka.x, cs_ex2(gt.x - gs.x), a);
          a = fmaf(qa.y * ka.y, cs_ex2(gt.y - gs.y), a);
          a = fmaf(qa.z * ka.z, cs_ex2(gt.z - gs.z), a);
          a = fmaf(qa.w * ka.w, cs_ex2(gt.w - gs.w), a);
        }
        dg[r] += a;
      }
    }
    // the blocks below the diagonal (warp-uniform tiles)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int u = warp + 8 * r;
      if (u < 12) {
        int i, j, half;
        g2_tile(u, i, j, half);
#pragma unroll
        for (int k0 = 0; k0 < 32; k0 += 16) {
          unsigned a[4], b0, b1;
          g2_frag_q(sq, sg, 16 * i, k0, 16 * i, a);
          g2_frag_k(sk, sg, 16 * j + 8 * half, k0, 16 * i, b0, b1);
          cs_mma(sc[r], a, b0, b1);
        }
      }
    }
    // the entering state's part
#pragma unroll
    for (int k0 = 0; k0 < 32; k0 += 16) {
      unsigned a[4];
      g2_frag_q(sq, sg, m0, k0, -1, a);
#pragma unroll
      for (int j = 0; j < 8; j++) {
        unsigned b0, b1;
        cs_frag_b_p(sS, Q2P, n0 + 8 * j, k0, b0, b1);
        cs_mma(acc[j], a, b0, b1);
      }
    }
    __syncthreads();
  }
  // the scores as halves [t][s] (the blocks above the diagonal are never read)
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int u = warp + 8 * r;
    if (u < 12) {
      int i, j, half;
      g2_tile(u, i, j, half);
#pragma unroll
      for (int e = 0; e < 4; e++)
        sP[(16 * i + gq + 8 * (e >> 1)) * TP + 16 * j + 8 * half + 2 * tq + (e & 1)] = from_f(sc[r][e]);
    }
  }
#pragma unroll
  for (int r = 0; r < 3; r++)
    if (r < npairs) sP[(pair[r] >> 8) * TP + (pair[r] & 255)] = from_f(dg[r]);
#pragma unroll
  for (int blk = 0; blk < 4; blk++)
    if ((tid & 15) > (tid >> 4)) sP[(16 * blk + (tid >> 4)) * TP + 16 * blk + (tid & 15)] = from_f(0.0f);
  // the values as [column][step]: a warp's lanes take consecutive steps, so the transposing stores are conflict-free
  for (int idx = tid; idx < CQ * 16; idx += 256) {
    const int tt = idx & 63, cv = 8 * (idx >> 6);
    const bool in = tt < Tc && v0 + cv < V;
    const uint4 x = in ? *reinterpret_cast<const uint4*>(v + (((long long)b * T + t0 + tt) * H + h) * V + v0 + cv) : zero4;
    const unsigned w[4] = { x.x, x.y, x.z, x.w };
#pragma unroll
    for (int e = 0; e < 4; e++) {
      svT[(cv + 2 * e) * TP + tt] = (io_t)(w[e] & 0xffffu);
      svT[(cv + 2 * e + 1) * TP + tt] = (io_t)(w[e] >> 16);
    }
  }
  __syncthreads();
  for (int s0 = 0; s0 <= m0; s0 += 16) {   // row block m0 needs s <= t only
    unsigned a[4];
    cs_frag_a(sP, m0, s0, a);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      unsigned b0, b1;
      cs_frag_b(svT, n0 + 8 * j, s0, b0, b1);
      cs_mma(acc[j], a, b0, b1);
    }
  }
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int tt = m0 + gq + 8 * hr;
    if (tt >= Tc) continue;
#pragma unroll
    for (int j = 0; j < 8; j++) {
      const int col = v0 + n0 + 8 * j + 2 * tq;
      if (col < V)
        *reinterpret_cast<unsigned*>(o + (((long long)b * T + t0 + tt) * H + h) * V + col) = cs_pack(acc[j][2 * hr], acc[j][2 * hr + 1]);
    }
  }
}
#endif
""";
    }
}
