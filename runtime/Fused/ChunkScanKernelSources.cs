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
    /// tile per block, 4 × 4 per thread, strided by 16 so that a warp's shared reads are broadcasts or consecutive);
    /// no tensor cores yet. The state layout is <c>[K, V]</c> (keys = B's state size for SSD, values = head dim).
    /// </summary>
    internal static class ChunkScanKernelSources
    {
        /// <summary>Steps per chunk.</summary>
        public const int Chunk = 64;

        /// <summary>Key rows per block of <c>chunk_state</c>.</summary>
        public const int StateKeys = 64;

        /// <summary>Value columns per block of <c>chunk_state</c> and <c>chunk_output</c>.</summary>
        public const int Values = 64;

        public const string Source = """
#define CQ 64     // steps per chunk
#define CKA 64    // key rows per chunk_state block
#define CKT 32    // keys per shared tile in chunk_output
#define CVT 64    // value columns per block
#define CLD (CKT + 1)

// Inclusive cumulative sum down the CQ rows of columns [0, ncol) of a row-major tile with leading dimension ld
// (256 threads: four segments of 16 rows per column, then each segment adds the totals of the ones before it).
__device__ __forceinline__ void chunk_cumsum(float* m, int ld, int ncol) {
  const int col = threadIdx.x % 64, seg = threadIdx.x / 64;
  float run = 0.0f;
  if (col < ncol)
    for (int r = seg * 16; r < seg * 16 + 16; r++) { run += m[r * ld + col]; m[r * ld + col] = run; }
  __syncthreads();
  float add = 0.0f;
  if (col < ncol)
    for (int s = 0; s < seg; s++) add += m[(s * 16 + 15) * ld + col];
  __syncthreads();
  if (col < ncol && seg > 0)
    for (int r = seg * 16; r < seg * 16 + 16; r++) m[r * ld + col] += add;
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
  chunk_cumsum(sa, 1, 1);
}

// grid (chunks, ceil(V/CVT) * ceil(K/CKA), B*H), block 256. states [B*H, chunks, K, V] (this chunk's contribution),
// decays [B*H, chunks, K] (GLA) or [B*H, chunks] (SSD, g == 0): exp of the chunk's total log decay.
extern "C" __global__ void __launch_bounds__(256) chunk_state(
    const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ dt, const float* __restrict__ A, float* __restrict__ states, float* __restrict__ decays,
    int T, int H, int hpg, int K, int V)
{
  __shared__ float sk[CQ * CKA];   // g, its cumulative sum, then the decayed keys
  __shared__ float sv[CQ * CVT];
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
    sv[idx] = (tt < Tc && v0 + cc < V) ? to_f(v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc]) : 0.0f;
  }
  if (scalarDecay) {
    chunk_ssd_decay(dt, A, sa, sw, b, h, H, T, t0, Tc);
  } else {
    for (int idx = tid; idx < CQ * CKA; idx += 256) {
      const int tt = idx / CKA, kk = idx % CKA;
      sk[idx] = (tt < Tc && k0 + kk < K) ? to_f(g[(((long long)b * T + t0 + tt) * H + h) * K + k0 + kk]) : 0.0f;
    }
    __syncthreads();
    chunk_cumsum(sk, CKA, CKA);
    if (tid < CKA) sgl[tid] = sk[(CQ - 1) * CKA + tid];
    __syncthreads();
  }
  for (int idx = tid; idx < CQ * CKA; idx += 256) {
    const int tt = idx / CKA, kk = idx % CKA;
    const float kv = (tt < Tc && k0 + kk < K) ? to_f(k[(((long long)b * T + t0 + tt) * Gq + hq) * K + k0 + kk]) : 0.0f;
    sk[idx] = scalarDecay ? kv * __expf(sa[CQ - 1] - sa[tt]) * sw[tt] : kv * __expf(sgl[kk] - sk[idx]);
  }
  if (blockIdx.y % vtiles == 0) {
    if (scalarDecay) {
      if (tid == 0 && k0 == 0) decays[(long long)bh * NC + c] = __expf(sa[CQ - 1]);
    } else if (tid < CKA && k0 + tid < K) {
      decays[((long long)bh * NC + c) * K + k0 + tid] = __expf(sgl[tid]);
    }
  }
  __syncthreads();

  float acc[4][4] = {};
  for (int s = 0; s < CQ; s++) {
    float a[4], w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) { a[i] = sk[s * CKA + ty + 16 * i]; w[i] = sv[s * CVT + tx + 16 * i]; }
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
// state to sT (from s0 or zeros). Loads run four chunks ahead of the dependent update.
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
  for (; c + 4 <= NC; c += 4) {
    float l[4], dc[4];
#pragma unroll
    for (int j = 0; j < 4; j++) { l[j] = p[(long long)(c + j) * KV]; dc[j] = d[(long long)(c + j) * dstride]; }
#pragma unroll
    for (int j = 0; j < 4; j++) { p[(long long)(c + j) * KV] = S; S = fmaf(dc[j], S, l[j]); }
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
  // phase 1 (per key tile): q, k, Γ tiles and the entering state's rows; phase 2: the causal scores and the values
  __shared__ float smem[3 * CQ * CLD + CKT * CVT];
  __shared__ float sa[CQ], sw[CQ];
  float* sq = smem;
  float* sk = sq + CQ * CLD;
  float* sg = sk + CQ * CLD;
  float* sS = sg + CQ * CLD;
  float* sA = smem;
  float* sv = smem + CQ * CQ;
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
      const int tt = idx / CKT, kk = idx % CKT;
      const bool in = tt < Tc && kt + kk < K;
      const long long qk = (((long long)b * T + t0 + tt) * Gq + hq) * K + kt + kk;
      sq[tt * CLD + kk] = in ? to_f(q[qk]) * scale : 0.0f;
      sk[tt * CLD + kk] = in ? to_f(k[qk]) : 0.0f;
      if (!scalarDecay) sg[tt * CLD + kk] = in ? to_f(g[(((long long)b * T + t0 + tt) * H + h) * K + kt + kk]) : 0.0f;
    }
    for (int idx = tid; idx < CKT * CVT; idx += 256) {
      const int kk = idx / CVT, cc = idx % CVT;
      sS[idx] = (kt + kk < K && v0 + cc < V) ? Sin[(long long)(kt + kk) * V + v0 + cc] : 0.0f;
    }
    __syncthreads();
    if (scalarDecay) {
      for (int kk = 0; kk < CKT; kk++) {
        float a[4], w[4];
#pragma unroll
        for (int i = 0; i < 4; i++) { a[i] = sq[(ty + 16 * i) * CLD + kk]; w[i] = sk[(tx + 16 * i) * CLD + kk]; }
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j <= i; j++) sc[i][j] = fmaf(a[i], w[j], sc[i][j]);   // j > i: every s > t
      }
    } else {
      chunk_cumsum(sg, CLD, CKT);
      for (int kk = 0; kk < CKT; kk++) {
        float a[4], ga[4], w[4], gw[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          a[i] = sq[(ty + 16 * i) * CLD + kk]; ga[i] = sg[(ty + 16 * i) * CLD + kk];
          w[i] = sk[(tx + 16 * i) * CLD + kk]; gw[i] = sg[(tx + 16 * i) * CLD + kk];
        }
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
      for (int idx = tid; idx < CQ * CKT; idx += 256) {
        const int tt = idx / CKT, kk = idx % CKT;
        sq[tt * CLD + kk] *= __expf(sg[tt * CLD + kk]);
      }
    }
    __syncthreads();
    for (int kk = 0; kk < CKT; kk++) {
      float a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; i++) { a[i] = sq[(ty + 16 * i) * CLD + kk]; w[i] = sS[kk * CVT + tx + 16 * i]; }
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }

  // the causal scores with SSD's scalar decay and dt, then o += scores · v
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int t = ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int s = tx + 16 * j;
      float a = j <= i ? sc[i][j] : 0.0f;
      if (scalarDecay) a = s <= t ? a * __expf(sa[t] - sa[s]) * sw[s] : 0.0f;
      sA[t * CQ + s] = a;
    }
    if (scalarDecay) {
      const float e = __expf(sa[t]);
#pragma unroll
      for (int j = 0; j < 4; j++) acc[i][j] *= e;
    }
  }
  for (int idx = tid; idx < CQ * CVT; idx += 256) {
    const int tt = idx / CVT, cc = idx % CVT;
    sv[idx] = (tt < Tc && v0 + cc < V) ? to_f(v[(((long long)b * T + t0 + tt) * H + h) * V + v0 + cc]) : 0.0f;
  }
  __syncthreads();
  // row t = ty + 16 i needs s <= t only: the 16-step block sb of s contributes to the rows i >= sb
#pragma unroll
  for (int sb = 0; sb < 4; sb++) {
    for (int s = 16 * sb; s < 16 * sb + 16; s++) {
      float a[4], w[4];
#pragma unroll
      for (int i = sb; i < 4; i++) a[i] = sA[(ty + 16 * i) * CQ + s];
#pragma unroll
      for (int j = 0; j < 4; j++) w[j] = sv[s * CVT + tx + 16 * j];
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
      const int cc = tx + 16 * j, col = v0 + cc;
      if (col >= V) continue;
      const long long off = (((long long)b * T + t0 + tt) * H + h) * V + col;
      float val = acc[i][j];
      if (Dp) val = fmaf(Dp[(long long)h * V + col], sv[tt * CVT + cc], val);
      if (z) val *= silu_f(to_f(z[off]));
      o[off] = from_f(val);
    }
  }
}
""";
    }
}
