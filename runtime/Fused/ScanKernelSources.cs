namespace Mix.Runtime.Fused
{
    /// <summary>CUDA C++ of the scan primitives' fused kernels (after <see cref="FusedKernelSources.Prelude"/>).</summary>
    internal static class ScanKernelSources
    {
        /// <summary>
        /// A gated linear recurrence <c>S_t = diag(decay_t) S_{t-1} + k_tᵀ (w_t v_t)</c>, <c>o_t = q_t S_t</c>, which is
        /// GLA (per-key decay <c>exp g</c>, w = 1) and Mamba-2's SSD (q = C, k = B, v = x, scalar decay <c>exp(dt·A)</c>,
        /// w = dt, optional D skip and silu(z) gate on the way out). A block owns 32 value columns of one (batch, head);
        /// each column is held by 8 lanes, each lane keeping every 8th key row of the float32 state in registers, so the
        /// readout is a 3-step shuffle. Inputs of TC steps are staged in shared memory, the outputs leave coalesced.
        /// </summary>
        public const string GatedScan = """
#define GS_VB 32
#define GS_KS 8

template <int KPT>
__device__ __forceinline__ void gated_scan_body(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ dt, const float* __restrict__ A, const float* __restrict__ Dp, const io_t* __restrict__ z,
    const float* __restrict__ s0, io_t* __restrict__ o, float* __restrict__ sT,
    int T, int H, int hpg, int K, int V, int TC, float scale)
{
  extern __shared__ float smem[];
  const int tid = threadIdx.x;
  const int vloc = tid / GS_KS, ks = tid % GS_KS;
  const int v0 = blockIdx.x * GS_VB, h = blockIdx.y, b = blockIdx.z;
  const int col = v0 + vloc;
  const int Gq = H / hpg, hq = h / hpg;
  float* sq = smem;
  float* sk = sq + TC * K;
  float* sg = sk + TC * K;               // exp(g) per key (GLA) or exp(dt*A) in sg[tt] (SSD)
  float* sw = sg + (g ? TC * K : TC);    // dt (SSD)
  float* sv = sw + TC;
  float* so = sv + TC * GS_VB;
  const bool scalarDecay = g == 0;
  const float Ah = scalarDecay ? A[h] : 0.0f;

  float S[KPT];
  const long long stateBase = ((long long)b * H + h) * K * (long long)V;
#pragma unroll
  for (int j = 0; j < KPT; j++) {
    const int kk = ks + GS_KS * j;
    S[j] = (s0 && kk < K && col < V) ? s0[stateBase + (long long)kk * V + col] : 0.0f;
  }

  for (int t0 = 0; t0 < T; t0 += TC) {
    const int Tc = min(TC, T - t0);
    for (int idx = tid; idx < Tc * K; idx += blockDim.x) {
      const int tt = idx / K, kk = idx % K;
      const long long row = (long long)b * T + t0 + tt;
      const long long qk = (row * Gq + hq) * K + kk;
      sq[idx] = to_f(q[qk]) * scale;
      sk[idx] = to_f(k[qk]);
      if (!scalarDecay) sg[idx] = __expf(to_f(g[(row * H + h) * K + kk]));
    }
    if (scalarDecay) {
      for (int tt = tid; tt < Tc; tt += blockDim.x) {
        const float d = dt[((long long)b * T + t0 + tt) * H + h];
        sg[tt] = __expf(d * Ah);
        sw[tt] = d;
      }
    }
    for (int idx = tid; idx < Tc * GS_VB; idx += blockDim.x) {
      const int tt = idx / GS_VB, c = v0 + idx % GS_VB;
      sv[idx] = c < V ? to_f(v[(((long long)b * T + t0 + tt) * H + h) * V + c]) : 0.0f;
    }
    __syncthreads();
    for (int tt = 0; tt < Tc; tt++) {
      const float* qr = sq + tt * K;
      const float* kr = sk + tt * K;
      const float vt = scalarDecay ? sv[tt * GS_VB + vloc] * sw[tt] : sv[tt * GS_VB + vloc];
      float part = 0.0f;
      if (scalarDecay) {
        const float dec = sg[tt];
#pragma unroll
        for (int j = 0; j < KPT; j++) {
          const int kk = ks + GS_KS * j;
          if (kk < K) { S[j] = fmaf(S[j], dec, kr[kk] * vt); part = fmaf(qr[kk], S[j], part); }
        }
      } else {
        const float* gr = sg + tt * K;
#pragma unroll
        for (int j = 0; j < KPT; j++) {
          const int kk = ks + GS_KS * j;
          if (kk < K) { S[j] = fmaf(S[j], gr[kk], kr[kk] * vt); part = fmaf(qr[kk], S[j], part); }
        }
      }
      part += __shfl_xor_sync(0xffffffffu, part, 4);
      part += __shfl_xor_sync(0xffffffffu, part, 2);
      part += __shfl_xor_sync(0xffffffffu, part, 1);
      if (ks == 0) so[tt * GS_VB + vloc] = part;
    }
    __syncthreads();
    for (int idx = tid; idx < Tc * GS_VB; idx += blockDim.x) {
      const int tt = idx / GS_VB, c = v0 + idx % GS_VB;
      if (c < V) {
        const long long off = (((long long)b * T + t0 + tt) * H + h) * V + c;
        float val = so[idx];
        if (Dp) val = fmaf(Dp[(long long)h * V + c], sv[idx], val);
        if (z) val *= silu_f(to_f(z[off]));
        o[off] = from_f(val);
      }
    }
    __syncthreads();
  }
  if (sT && col < V) {
#pragma unroll
    for (int j = 0; j < KPT; j++) {
      const int kk = ks + GS_KS * j;
      if (kk < K) sT[stateBase + (long long)kk * V + col] = S[j];
    }
  }
}

// grid (ceil(V/32), H, B), block 256; g == 0 selects the scalar (SSD) decay exp(dt*A[h]) and v scaled by dt.
extern "C" __global__ void __launch_bounds__(256) gated_scan(
    const io_t* __restrict__ q, const io_t* __restrict__ k, const io_t* __restrict__ v, const io_t* __restrict__ g,
    const float* __restrict__ dt, const float* __restrict__ A, const float* __restrict__ Dp, const io_t* __restrict__ z,
    const float* __restrict__ s0, io_t* __restrict__ o, float* __restrict__ sT,
    int T, int H, int hpg, int K, int V, int TC, float scale, int kpt)
{
  switch (kpt) {
    case 1:  gated_scan_body<1>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
    case 2:  gated_scan_body<2>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
    case 4:  gated_scan_body<4>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
    case 8:  gated_scan_body<8>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
    case 16: gated_scan_body<16>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
    default: gated_scan_body<32>(q, k, v, g, dt, A, Dp, z, s0, o, sT, T, H, hpg, K, V, TC, scale); break;
  }
}
""";

        /// <summary>
        /// Depthwise causal convolution, one thread per output: <c>y = act(bias + Σ_j w[j] · x[t − (W−1) + j])</c>, inputs
        /// before t = 0 from the carried state (zeros without one). float32 taps and bias.
        /// </summary>
        public const string CausalConv = """
// grid (ceil(L/256), D, B), block 256.
extern "C" __global__ void __launch_bounds__(256) causal_conv1d_fwd(
    const io_t* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, const io_t* __restrict__ s0,
    io_t* __restrict__ y, int D, int L, int W, int silu)
{
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const int d = blockIdx.y, b = blockIdx.z;
  if (t >= L) return;
  const long long row = (long long)b * D + d;
  const io_t* xr = x + row * L;
  const float* wr = w + (long long)d * W;
  float acc = bias ? bias[d] : 0.0f;
  for (int j = 0; j < W; j++) {
    const int i = t - (W - 1) + j;
    float xv;
    if (i >= 0) xv = to_f(xr[i]);
    else xv = s0 ? to_f(s0[row * (W - 1) + (W - 1) + i]) : 0.0f;
    acc = fmaf(__ldg(wr + j), xv, acc);
  }
  if (silu) acc = silu_f(acc);
  y[row * L + t] = from_f(acc);
}
""";
    }
}
