namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA sources of the quantized kernels: fused dequantize + GEMV/GEMM for <c>QuantizedLinear</c> and attention over a
    /// KIVI / VidKV quantized KV cache that dequantizes inside the kernel. Compiled with
    /// <see cref="FusedKernelSources.Prelude"/> (<c>-DMIX_T</c> = I/O dtype); arithmetic and accumulation are float32.
    /// </summary>
    internal static class QuantKernelSources
    {
        /// <summary>
        /// <c>y[m, n] = Σ_k (x[m,k]·in_scale[k]) · dequant(W)[n,k] + bias[n]</c>. <c>-DMIX_QMODE=0</c>: int8 per channel;
        /// <c>1</c>: int4 group-wise (two codes per byte, even k in the low nibble, zero points). One warp per output
        /// channel, 8 warps per block; x is staged in shared memory as float32 in K tiles of 512 (times MT rows);
        /// entries <c>qgemv_mMT</c> handle up to MT rows of x each (grid.y covers more rows, re-reading W per chunk).
        /// The vector path (8 codes per lane and step) needs K % 8 == 0 (and group % 8 == 0 for int4) and 8-byte aligned
        /// codes; otherwise a scalar path handles any K.
        /// </summary>
        public const string Gemv = """
#ifndef MIX_QMODE
#define MIX_QMODE 0
#endif
#define QG_KT 512
template <int MT>
__device__ __forceinline__ void qgemv_body(const io_t* __restrict__ x, const float* __restrict__ in_scale,
    const unsigned char* __restrict__ qw, const float* __restrict__ scales, const unsigned char* __restrict__ zeros,
    const float* __restrict__ bias, io_t* __restrict__ y, int M, int K, int N, int group, int vec)
{
  __shared__ __align__(16) float xs[MT][QG_KT];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = blockIdx.x * (blockDim.x >> 5) + warp;
  const int m0 = blockIdx.y * MT;
  const int rows = min(MT, M - m0);
  const int groups = MIX_QMODE == 1 ? K / group : 1;
  float acc[MT];
#pragma unroll
  for (int r = 0; r < MT; r++) acc[r] = 0.0f;
  const long long rowBase = (long long)n * K;
  for (int k0 = 0; k0 < K; k0 += QG_KT) {
    const int kt = min(QG_KT, K - k0);
    __syncthreads();
    for (int e = threadIdx.x; e < MT * QG_KT; e += blockDim.x) {
      const int r = e / QG_KT, c = e - r * QG_KT;
      float v = 0.0f;
      if (r < rows && c < kt) {
        v = to_f(x[(long long)(m0 + r) * K + k0 + c]);
        if (in_scale) v *= in_scale[k0 + c];
      }
      xs[r][c] = v;
    }
    __syncthreads();
    if (n >= N) continue;
    if (vec) {
      for (int c = lane * 8; c < kt; c += 256) {
        const int k = k0 + c;
        float w[8];
#if MIX_QMODE == 0
        const uint2 raw = *reinterpret_cast<const uint2*>(qw + rowBase + k);
        const float s = scales[n];
#pragma unroll
        for (int j = 0; j < 4; j++) {
          w[j] = (float)(signed char)((raw.x >> (8 * j)) & 0xffu) * s;
          w[4 + j] = (float)(signed char)((raw.y >> (8 * j)) & 0xffu) * s;
        }
#else
        const unsigned int raw = *reinterpret_cast<const unsigned int*>(qw + ((rowBase + k) >> 1));
        const int g = k / group;
        const float s = scales[(long long)n * groups + g];
        const float z = (float)zeros[(long long)n * groups + g];
#pragma unroll
        for (int j = 0; j < 8; j++) w[j] = ((float)((raw >> (4 * j)) & 15u) - z) * s;
#endif
#pragma unroll
        for (int r = 0; r < MT; r++) {
          const float4 a = *reinterpret_cast<const float4*>(&xs[r][c]);
          const float4 b = *reinterpret_cast<const float4*>(&xs[r][c + 4]);
          acc[r] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
        }
      }
    } else {
      for (int c = lane; c < kt; c += 32) {
        const int k = k0 + c;
#if MIX_QMODE == 0
        const float w = (float)(signed char)qw[rowBase + k] * scales[n];
#else
        const unsigned int byte = qw[(rowBase + k) >> 1];
        const unsigned int code = (k & 1) ? (byte >> 4) : (byte & 15u);
        const int g = k / group;
        const float w = ((float)code - (float)zeros[(long long)n * groups + g]) * scales[(long long)n * groups + g];
#endif
#pragma unroll
        for (int r = 0; r < MT; r++) acc[r] += w * xs[r][c];
      }
    }
  }
  if (n >= N) return;
#pragma unroll
  for (int r = 0; r < MT; r++) {
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    acc[r] = v;
  }
  if (lane == 0) {
    const float b = bias ? bias[n] : 0.0f;
#pragma unroll
    for (int r = 0; r < MT; r++)
      if (r < rows) y[(long long)(m0 + r) * N + n] = from_f(acc[r] + b);
  }
}
#define QG_ENTRY(MT) \
extern "C" __global__ void __launch_bounds__(256) qgemv_m##MT(const io_t* __restrict__ x, const float* __restrict__ in_scale, \
    const unsigned char* __restrict__ qw, const float* __restrict__ scales, const unsigned char* __restrict__ zeros, \
    const float* __restrict__ bias, io_t* __restrict__ y, int M, int K, int N, int group, int vec) \
{ qgemv_body<MT>(x, in_scale, qw, scales, zeros, bias, y, M, K, N, group, vec); }
QG_ENTRY(1)
QG_ENTRY(2)
QG_ENTRY(4)
QG_ENTRY(8)
QG_ENTRY(16)
""";

        /// <summary>
        /// Split-K (flash-decoding) attention of a few queries over a quantized KV cache: quantized blocks (codes read
        /// through a per-block pointer table, dequantized in registers) followed by the full-precision tail.
        /// <c>-DMIX_KV=0|1|2</c>: KIVI 4-bit, KIVI 2-bit, VidKV (1-bit keys + 2-bit outlier channels, ternary values).
        /// Each warp owns a contiguous range of 32-token tiles and keeps an online softmax (log2 domain) per query; lanes
        /// are tokens for the scores and channels for the values. Partials (m, l, o) per split are merged by
        /// <c>kv_combine</c>. Limits: D % 32 == 0, D ≤ 256, G % 32 == 0, queries per launch ≤ NQ.
        /// Pointer table row (int64 × 8): key codes, key scale (f16), key min (f16), key high plane, outlier idx (i16),
        /// value codes, value scale (f16), value min (f16); each tensor is [B, Hkv, ...] of one block.
        /// </summary>
        public const string KvAttention = """
#ifndef MIX_KV
#define MIX_KV 0
#endif
#define KV_WARPS 4
#define KV_NEG_INF __int_as_float(0xff800000)
#define KV_MAXD 256
#if MIX_KV == 0
#define KV_BITS 4
#elif MIX_KV == 1
#define KV_BITS 2
#endif
__device__ __forceinline__ float h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <int NQ>
__device__ __forceinline__ void kv_partial_body(
    const io_t* __restrict__ q, const long long* __restrict__ table, const io_t* __restrict__ tailK,
    const io_t* __restrict__ tailV, const unsigned char* __restrict__ allowed, float* __restrict__ part_o,
    float* __restrict__ part_ml, int Hq, int Hkv, int nq, int D, int G, int NB, int Tt, int nOut, int gv,
    int tilesPerWarp, int S, float scaleLog2)
{
  __shared__ float qsm[NQ][KV_MAXD];
  __shared__ float qk[KV_WARPS][NQ][KV_MAXD];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (Hq / Hkv);
  const long long bh = (long long)b * Hkv + kvh;
  const long long bhq = (long long)b * Hq + h;
  const int T = NB * G + Tt;
  for (int e = threadIdx.x; e < NQ * D; e += blockDim.x) {
    const int i = e / D, d = e - i * D;
    qsm[i][d] = i < nq ? to_f(q[(bhq * nq + i) * D + d]) * scaleLog2 : 0.0f;
  }
  __syncthreads();
  const int s = blockIdx.x * KV_WARPS + warp;
  if (s >= S) return;
  const int DC = D >> 5;  // channels per lane in the value phase
  float m[NQ], l[NQ], acc[NQ][KV_MAXD / 32];
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    m[i] = KV_NEG_INF; l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < KV_MAXD / 32; c++) acc[i][c] = 0.0f;
  }
  const int qTiles = NB * (G >> 5);
  const int tTiles = (Tt + 31) >> 5;
  const int t0 = s * tilesPerWarp, t1 = min(t0 + tilesPerWarp, qTiles + tTiles);
  const int ngv = D / gv;
  for (int tile = t0; tile < t1; tile++) {
    float sc[NQ];
    int tokGlobal;
    const bool quant = tile < qTiles;
    // ---- scores: lane = token ----
    int blk = 0, tb = 0;
    const long long* row = 0;
    if (quant) {
      blk = tile / (G >> 5);
      tb = (tile - blk * (G >> 5)) * 32 + lane;
      tokGlobal = blk * G + tb;
      row = table + (long long)blk * 8;
      const unsigned short* ks = (const unsigned short*)row[1] + bh * D;
      const unsigned short* km = (const unsigned short*)row[2] + bh * D;
      float cpart[NQ];
#pragma unroll
      for (int i = 0; i < NQ; i++) cpart[i] = 0.0f;
      for (int d = lane; d < D; d += 32) {
        const float a = h2f(ks[d]), mn = h2f(km[d]);
#pragma unroll
        for (int i = 0; i < NQ; i++) { qk[warp][i][d] = qsm[i][d] * a; cpart[i] += qsm[i][d] * mn; }
      }
#pragma unroll
      for (int i = 0; i < NQ; i++) sc[i] = warp_sum(cpart[i]);
      __syncwarp();
      const unsigned char* kc = (const unsigned char*)row[0];
#if MIX_KV == 2
      const int RB = (G + 7) >> 3;
      kc += bh * D * RB;
      const int byteIdx = tb >> 3, sh = tb & 7;
      for (int d = 0; d < D; d++) {
        const float code = (float)((kc[d * RB + byteIdx] >> sh) & 1);
#pragma unroll
        for (int i = 0; i < NQ; i++) sc[i] += qk[warp][i][d] * code;
      }
      if (nOut > 0) {
        const unsigned char* kp1 = (const unsigned char*)row[3] + bh * nOut * RB;
        const short* oidx = (const short*)row[4] + bh * nOut;
        for (int j = 0; j < nOut; j++) {
          const int d = oidx[j];
          const float hb = 2.0f * (float)((kp1[j * RB + byteIdx] >> sh) & 1);
#pragma unroll
          for (int i = 0; i < NQ; i++) sc[i] += qk[warp][i][d] * hb;
        }
      }
#else
      const int RB = G * KV_BITS / 8;
      kc += bh * D * RB;
      const int byteIdx = tb * KV_BITS / 8, sh = (tb * KV_BITS) & 7;
      for (int d = 0; d < D; d++) {
        const float code = (float)((kc[d * RB + byteIdx] >> sh) & ((1 << KV_BITS) - 1));
#pragma unroll
        for (int i = 0; i < NQ; i++) sc[i] += qk[warp][i][d] * code;
      }
#endif
    } else {
      const int tt = (tile - qTiles) * 32 + lane;
      tokGlobal = NB * G + tt;
#pragma unroll
      for (int i = 0; i < NQ; i++) sc[i] = 0.0f;
      if (tt < Tt) {
        const io_t* kr = tailK + (bh * Tt + tt) * D;
        for (int d = 0; d < D; d++) {
          const float kv = to_f(kr[d]);
#pragma unroll
          for (int i = 0; i < NQ; i++) sc[i] += qsm[i][d] * kv;
        }
      }
    }
    const bool inRange = tokGlobal < T;
    float p[NQ];
#pragma unroll
    for (int i = 0; i < NQ; i++) {
      bool ok = i < nq && inRange && allowed[((long long)b * nq + i) * T + tokGlobal] != 0;
      const float si = ok ? sc[i] : KV_NEG_INF;
      const float mx = warp_max(si);
      const float mNew = fmaxf(m[i], mx);
      if (mNew == KV_NEG_INF) { p[i] = 0.0f; continue; }
      p[i] = ok ? exp2f(si - mNew) : 0.0f;
      const float alpha = exp2f(m[i] - mNew);
      l[i] = l[i] * alpha + warp_sum(p[i]);
      m[i] = mNew;
#pragma unroll
      for (int c = 0; c < KV_MAXD / 32; c++) acc[i][c] *= alpha;
    }
    __syncwarp();
    // ---- values: lane = channel ----
    const int nTok = quant ? 32 : min(32, Tt - (tile - qTiles) * 32);
    for (int t = 0; t < nTok; t++) {
      float pt[NQ];
      float any = 0.0f;
#pragma unroll
      for (int i = 0; i < NQ; i++) { pt[i] = __shfl_sync(0xffffffffu, p[i], t); any += pt[i]; }
      if (any == 0.0f) continue;
      if (quant) {
        const int tok = tb - lane + t;  // token within the block
        const unsigned short* vs = (const unsigned short*)row[6] + (bh * G + tok) * ngv;
        const unsigned short* vm = (const unsigned short*)row[7] + (bh * G + tok) * ngv;
#if MIX_KV == 2
        const int TB = (gv + 4) / 5;
        const unsigned char* vc = (const unsigned char*)row[5] + (bh * G + tok) * ngv * TB;
#else
        const int VB = D * KV_BITS / 8;
        const unsigned char* vc = (const unsigned char*)row[5] + (bh * G + tok) * VB;
#endif
#pragma unroll
        for (int c = 0; c < KV_MAXD / 32; c++) {
          if (c >= DC) break;
          const int d = lane + 32 * c;
          const int grp = d / gv;
#if MIX_KV == 2
          const int within = d - grp * gv;
          const int byte = vc[grp * TB + within / 5];
          const int r5 = within % 5;
          const int pw = r5 == 0 ? 1 : r5 == 1 ? 3 : r5 == 2 ? 9 : r5 == 3 ? 27 : 81;
          const float v = (float)((byte / pw) % 3 - 1) * h2f(vs[grp]) + h2f(vm[grp]);
#else
          const float code = (float)((vc[d * KV_BITS / 8] >> ((d * KV_BITS) & 7)) & ((1 << KV_BITS) - 1));
          const float v = code * h2f(vs[grp]) + h2f(vm[grp]);
#endif
#pragma unroll
          for (int i = 0; i < NQ; i++) acc[i][c] += pt[i] * v;
        }
      } else {
        const int tt = (tile - qTiles) * 32 + t;
        const io_t* vr = tailV + (bh * Tt + tt) * D;
#pragma unroll
        for (int c = 0; c < KV_MAXD / 32; c++) {
          if (c >= DC) break;
          const float v = to_f(vr[lane + 32 * c]);
#pragma unroll
          for (int i = 0; i < NQ; i++) acc[i][c] += pt[i] * v;
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    if (i >= nq) break;
    const long long pi = (bhq * S + s) * nq + i;
    if (lane == 0) { part_ml[pi * 2] = m[i]; part_ml[pi * 2 + 1] = l[i]; }
#pragma unroll
    for (int c = 0; c < KV_MAXD / 32; c++) {
      if (c >= DC) break;
      part_o[pi * D + lane + 32 * c] = acc[i][c];
    }
  }
}
#define KV_ENTRY(NQ) \
extern "C" __global__ void __launch_bounds__(KV_WARPS * 32) kv_partial_q##NQ(const io_t* __restrict__ q, \
    const long long* __restrict__ table, const io_t* __restrict__ tailK, const io_t* __restrict__ tailV, \
    const unsigned char* __restrict__ allowed, float* __restrict__ part_o, float* __restrict__ part_ml, int Hq, int Hkv, \
    int nq, int D, int G, int NB, int Tt, int nOut, int gv, int tilesPerWarp, int S, float scaleLog2) \
{ kv_partial_body<NQ>(q, table, tailK, tailV, allowed, part_o, part_ml, Hq, Hkv, nq, D, G, NB, Tt, nOut, gv, tilesPerWarp, S, scaleLog2); }
KV_ENTRY(1)
KV_ENTRY(2)
KV_ENTRY(4)
KV_ENTRY(8)

// grid (nq, Hq, B), block 128: out[b,h,i,:] = Σ_s o_s·2^(m_s − M) / Σ_s l_s·2^(m_s − M)
extern "C" __global__ void kv_combine(const float* __restrict__ part_o, const float* __restrict__ part_ml,
    io_t* __restrict__ out, int Hq, int nq, int D, int S)
{
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const long long bhq = (long long)b * Hq + h;
  float M = KV_NEG_INF;
  for (int s = 0; s < S; s++) M = fmaxf(M, part_ml[((bhq * S + s) * nq + i) * 2]);
  float L = 0.0f;
  if (M != KV_NEG_INF)
    for (int s = 0; s < S; s++) {
      const long long pi = (bhq * S + s) * nq + i;
      const float ms = part_ml[pi * 2];
      if (ms != KV_NEG_INF) L += part_ml[pi * 2 + 1] * exp2f(ms - M);
    }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    if (L > 0.0f) {
      for (int s = 0; s < S; s++) {
        const long long pi = (bhq * S + s) * nq + i;
        const float ms = part_ml[pi * 2];
        if (ms != KV_NEG_INF) o += part_o[pi * D + d] * exp2f(ms - M);
      }
      o /= L;
    }
    out[(bhq * nq + i) * D + d] = from_f(o);
  }
}
""";
    }
}
