namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA source of the split-K (flash-decoding) attention of a few queries over a KIVI / VidKV quantized KV cache,
    /// second generation (see docs/quantization.md, "GPU kernels"). Compiled with <see cref="FusedKernelSources.Prelude"/>
    /// and <c>-DMIX_T</c> (I/O dtype), <c>-DMIX_KV=0|1|2</c> (KIVI 4-bit, KIVI 2-bit, VidKV) and <c>-DKVA_D</c> (head
    /// dimension, a multiple of 32 up to 256: the per-lane register arrays are sized by it).
    /// <para>
    /// Work unit: a chunk of 32 consecutive cache entries (a quantized block of G tokens is G/32 chunks; the fp16/fp32
    /// tail follows in the same launch). Each warp owns a contiguous range of chunks (one split) of one (batch, head)
    /// and keeps an online softmax in float32 (log2 domain); <c>kva_combine</c> merges the splits.
    /// </para>
    /// <para>
    /// Scores, lanes over channels: lane l owns key channels d = j·32 + l and loads the codes of its channels for all
    /// 32 tokens of the chunk at once (G·bits/8 bytes per channel are contiguous: a 16-byte load per channel for KIVI-4,
    /// 8 for KIVI-2, 4 for VidKV), forms 32 partial dot products and a transposing butterfly (31 shuffles) leaves lane t
    /// with the full score of token t. Per block the query is folded once with the key scales (q·s·2^bits per channel
    /// and the constant Σ q·min), codes become floats without a conversion instruction (a code c of b bits ORed into the
    /// mantissa of 1.0 reads as 1 + c/2^b; the 1 is folded into the constant).
    /// </para>
    /// <para>
    /// Values, lanes over channels too: 16 contiguous channels of one token per lane (one 4-byte load for KIVI-2 and
    /// VidKV's trit bytes, 8 bytes for KIVI-4), D/16 lanes per token, 32·16/D tokens per pass; the per-token scale and
    /// minimum are folded with the probability (p·s·2^bits for the codes, one accumulator for the minimum's share).
    /// At the end of a split the lanes holding the same channels are summed through shared memory.
    /// </para>
    /// <para>
    /// Visibility: either an explicit boolean mask <c>allowed [B, nq, T]</c> (sliding windows), or the causal rule
    /// computed in the kernel: query i (entry qpos0 + i) sees entry j ≤ qpos0 + i that is valid (<c>valid [B, vstride]</c>
    /// bytes, null = all valid) and always itself.
    /// </para>
    /// </summary>
    internal static class KvAttentionKernelSources
    {
        /// <summary>The kernels <c>kva_split_q{1,2,4}</c>, <c>kva_combine</c>, <c>kva_append</c> (the step's keys and
        /// values into the tail buffers), <c>kva_table_row</c> (one row of the block pointer table) and, for KIVI,
        /// <c>kva_quantize</c> (the tail's oldest G tokens into a block, and the tail's shift).</summary>
        public const string Source = """
#ifndef MIX_KV
#define MIX_KV 0
#endif
#ifndef KVA_D
#define KVA_D 128
#endif
#define KVA_WARPS 4
#define KVA_CPL (KVA_D / 32)
#define KVA_VC 16
#define KVA_LPT (KVA_D / KVA_VC)
#define KVA_TPP (32 / KVA_LPT)
#define KVA_PASSES ((32 + KVA_TPP - 1) / KVA_TPP)
#define KVA_NEG_INF __int_as_float(0xff800000)
#if MIX_KV == 0
#define KVA_KB 4
#define KVA_VB 4
#elif MIX_KV == 1
#define KVA_KB 2
#define KVA_VB 2
#else
#define KVA_KB 1
#define KVA_VB 2
#endif

#ifndef KVA_HOST_HALF
__device__ __forceinline__ float kva_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short kva_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif

// A code of B bits at bit P of w as the float 1 + code / 2^B (ORed into the mantissa of 1.0).
template <int B>
__device__ __forceinline__ float kva_code(unsigned int w, int p) {
  const int s = 23 - B;
  const unsigned int x = p <= s ? (w << (s - p)) : (w >> (p - s));
  return __int_as_float(0x3f800000u | (x & (((1u << B) - 1u) << s)));
}

__device__ __forceinline__ float kva_warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float kva_warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Transposing butterfly: on return lane l holds the warp-wide sum of v[l] (v is destroyed). One step per template
// instance: written as two nested loops (KVA_ROLLED_SUM, kept selectable for benchmarks), NVVM left the inner loop
// rolled in these large kernels, so v was indexed at run time and lived in local memory (a 256-byte stack frame in
// every kva_split/kva_fast entry, NVRTC 11.8, sm_90). The additions are the same, in the same order.
#ifdef KVA_ROLLED_SUM
__device__ __forceinline__ float kva_transpose_sum(float (&v)[32], int lane) {
#pragma unroll
  for (int h = 16; h > 0; h >>= 1) {
    const bool hi = (lane & h) != 0;
#pragma unroll
    for (int k = 0; k < h; k++) {
      const float send = hi ? v[k] : v[k + h];
      const float keep = hi ? v[k + h] : v[k];
      v[k] = keep + __shfl_xor_sync(0xffffffffu, send, h);
    }
  }
  return v[0];
}
#else
template <int H>
__device__ __forceinline__ void kva_transpose_step(float (&v)[32], int lane) {
  const bool hi = (lane & H) != 0;
#pragma unroll
  for (int k = 0; k < H; k++) {
    const float send = hi ? v[k] : v[k + H];
    const float keep = hi ? v[k + H] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, H);
  }
}
__device__ __forceinline__ float kva_transpose_sum(float (&v)[32], int lane) {
  kva_transpose_step<16>(v, lane);
  kva_transpose_step<8>(v, lane);
  kva_transpose_step<4>(v, lane);
  kva_transpose_step<2>(v, lane);
  kva_transpose_step<1>(v, lane);
  return v[0];
}
#endif

template <int NQ>
__device__ __forceinline__ void kva_split_body(
    const io_t* __restrict__ q, const long long* __restrict__ table, const io_t* __restrict__ tailK,
    const io_t* __restrict__ tailV, long long tailStride, const unsigned char* __restrict__ allowed,
    const unsigned char* __restrict__ valid, int validStride, float* __restrict__ part_o, float* __restrict__ part_ml,
    int Hq, int Hkv, int nq, int qpos0, int G, int NB, int Tt, int nOut, int gv, int chunksPerSplit, int S, float scaleLog2)
{
  __shared__ float qsm[NQ][KVA_D];
  __shared__ float red[KVA_WARPS][32 * KVA_VC];
#if MIX_KV == 2
  __shared__ unsigned short lut[256];
  for (int e = threadIdx.x; e < 256; e += blockDim.x) {
    unsigned int v = (unsigned int)e, r = 0;
    for (int k = 0; k < 5; k++) { r |= (v % 3u) << (2 * k); v /= 3u; }
    lut[e] = (unsigned short)r;
  }
#endif
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (Hq / Hkv);
  const long long bh = (long long)b * Hkv + kvh;
  const long long bhq = (long long)b * Hq + h;
  const int T = NB * G + Tt;
  for (int e = threadIdx.x; e < NQ * KVA_D; e += blockDim.x) {
    const int i = e / KVA_D, d = e - i * KVA_D;
    qsm[i][d] = i < nq ? to_f(q[(bhq * nq + i) * KVA_D + d]) * scaleLog2 : 0.0f;
  }
  __syncthreads();
  const int s = blockIdx.x * KVA_WARPS + warp;
  if (s >= S) return;

  const int CPB = G >> 5;                 // chunks per quantized block
  const int qChunks = NB * CPB;
  const int nChunks = qChunks + ((Tt + 31) >> 5);
  const int c0 = s * chunksPerSplit, c1 = min(c0 + chunksPerSplit, nChunks);
  const int ngv = KVA_D / gv;
  const int vtok = lane / KVA_LPT, vcl = lane - vtok * KVA_LPT, vc0 = vcl * KVA_VC;
  const bool vlane = vtok < KVA_TPP;
  const int vgrp = vc0 / gv;
#if MIX_KV == 2
  const int TB = (gv + 4) / 5;
  const int vw0 = vc0 - vgrp * gv, vfb = vw0 / 5, vnb = (vw0 + KVA_VC - 1) / 5 - vfb + 1, vsh = 2 * (vw0 - 5 * vfb);
#endif
  const int KRB = G * KVA_KB / 8;         // key code bytes per channel and block

  float m[NQ], lsum[NQ], accm[NQ], acc[NQ][KVA_VC];
  float qk[NQ][KVA_CPL], cst[NQ];
#if MIX_KV == 2
  float qo[NQ][KVA_CPL];
#endif
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    m[i] = KVA_NEG_INF; lsum[i] = 0.0f; accm[i] = 0.0f; cst[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < KVA_VC; k++) acc[i][k] = 0.0f;
#pragma unroll
    for (int j = 0; j < KVA_CPL; j++) {
      qk[i][j] = 0.0f;
#if MIX_KV == 2
      qo[i][j] = 0.0f;
#endif
    }
  }
  int curBlk = -1;
  const long long* row = 0;

  for (int c = c0; c < c1; c++) {
    const bool quant = c < qChunks;
    int blk = 0, sub = 0;
    float sc[NQ];
    if (quant) {
      blk = c / CPB;
      sub = c - blk * CPB;
      row = table + (long long)blk * 8;
      if (blk != curBlk) {
        // fold the queries with this block's key scales once: q·s·2^bits per channel, Σ q·min − Σ q·s·2^bits
        curBlk = blk;
        const unsigned short* ks = (const unsigned short*)row[1] + bh * KVA_D;
        const unsigned short* km = (const unsigned short*)row[2] + bh * KVA_D;
        float part[NQ];
#pragma unroll
        for (int i = 0; i < NQ; i++) part[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++) {
          const int d = j * 32 + lane;
          const float a = kva_h2f(ks[d]) * (float)(1 << KVA_KB), mn = kva_h2f(km[d]);
#pragma unroll
          for (int i = 0; i < NQ; i++) { qk[i][j] = qsm[i][d] * a; part[i] += qsm[i][d] * mn - qk[i][j]; }
        }
#if MIX_KV == 2
        // outlier channels: their second bit plane adds 2·bit1·s·q = 4·(q·s·2)·(f − 1)/2 … i.e. coefficient 2·qk
        const short* oidx = (const short*)row[4] + bh * nOut;
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++) {
          const int o = j * 32 + lane;
          if (o < nOut) {
            const int d = oidx[o];
            const float a = kva_h2f(ks[d]) * 4.0f;
#pragma unroll
            for (int i = 0; i < NQ; i++) { qo[i][j] = qsm[i][d] * a; part[i] -= qo[i][j]; }
          } else {
#pragma unroll
            for (int i = 0; i < NQ; i++) qo[i][j] = 0.0f;
          }
        }
#endif
#pragma unroll
        for (int i = 0; i < NQ; i++) cst[i] = kva_warp_sum(part[i]);
      }
      // ---- key codes of the chunk: lane l, channels j·32 + l, 32 tokens each ----
      const unsigned char* kc = (const unsigned char*)row[0] + bh * KVA_D * KRB + sub * (4 * KVA_KB);
      unsigned int kw[KVA_CPL][KVA_KB];
#pragma unroll
      for (int j = 0; j < KVA_CPL; j++) {
        const unsigned char* p = kc + (long long)(j * 32 + lane) * KRB;
#if KVA_KB == 4
        const uint4 u = *reinterpret_cast<const uint4*>(p);
        kw[j][0] = u.x; kw[j][1] = u.y; kw[j][2] = u.z; kw[j][3] = u.w;
#elif KVA_KB == 2
        const uint2 u = *reinterpret_cast<const uint2*>(p);
        kw[j][0] = u.x; kw[j][1] = u.y;
#else
        kw[j][0] = *reinterpret_cast<const unsigned int*>(p);
#endif
      }
#if MIX_KV == 2
      unsigned int ow[KVA_CPL];
      {
        const unsigned char* p1 = (const unsigned char*)row[3] + bh * nOut * KRB + sub * 4;
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++) {
          const int o = j * 32 + lane;
          ow[j] = o < nOut ? *reinterpret_cast<const unsigned int*>(p1 + (long long)o * KRB) : 0u;
        }
      }
#endif
#pragma unroll
      for (int i = 0; i < NQ; i++) {
        float part[32];
#pragma unroll
        for (int t = 0; t < 32; t++) part[t] = 0.0f;
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++) {
#pragma unroll
          for (int t = 0; t < 32; t++)
            part[t] += qk[i][j] * kva_code<KVA_KB>(kw[j][(t * KVA_KB) >> 5], (t * KVA_KB) & 31);
#if MIX_KV == 2
#pragma unroll
          for (int t = 0; t < 32; t++) part[t] += qo[i][j] * kva_code<1>(ow[j], t);
#endif
        }
        sc[i] = kva_transpose_sum(part, lane) + cst[i];
      }
    } else {
      // ---- full-precision tail ----
      const int tt0 = (c - qChunks) * 32;
      const io_t* kr = tailK + bh * tailStride;
#pragma unroll
      for (int i = 0; i < NQ; i++) {
        float part[32];
#pragma unroll
        for (int t = 0; t < 32; t++) {
          float a = 0.0f;
          if (tt0 + t < Tt) {
#pragma unroll
            for (int j = 0; j < KVA_CPL; j++) a += qsm[i][j * 32 + lane] * to_f(kr[(long long)(tt0 + t) * KVA_D + j * 32 + lane]);
          }
          part[t] = a;
        }
        sc[i] = kva_transpose_sum(part, lane);
      }
    }

    // ---- online softmax; lane t holds token c·32 + t ----
    const int tok = c * 32 + lane;
    float pv[NQ];
#pragma unroll
    for (int i = 0; i < NQ; i++) {
      bool ok = i < nq && tok < T;
      if (ok) {
        if (allowed) ok = allowed[((long long)b * nq + i) * T + tok] != 0;
        else {
          const int qp = qpos0 + i;
          ok = tok <= qp && (valid == 0 || valid[(long long)b * validStride + tok] != 0 || tok == qp);
        }
      }
      const float si = ok ? sc[i] : KVA_NEG_INF;
      const float mNew = fmaxf(m[i], kva_warp_max(si));
      pv[i] = 0.0f;
      if (mNew != KVA_NEG_INF) {
        const float alpha = exp2f(m[i] - mNew);
        pv[i] = ok ? exp2f(si - mNew) : 0.0f;
        lsum[i] = lsum[i] * alpha + pv[i];
        accm[i] *= alpha;
#pragma unroll
        for (int k = 0; k < KVA_VC; k++) acc[i][k] *= alpha;
        m[i] = mNew;
      }
    }

    // ---- values: lane covers channels vc0 .. vc0+15 of token pass·TPP + vtok ----
#pragma unroll
    for (int pass = 0; pass < KVA_PASSES; pass++) {
      const int t = pass * KVA_TPP + vtok;
      float pt[NQ];
#pragma unroll
      for (int i = 0; i < NQ; i++) pt[i] = __shfl_sync(0xffffffffu, pv[i], t & 31);
      if (!vlane || t >= 32) continue;
      if (quant) {
        const int tb = sub * 32 + t;   // token within the block
        const long long vrow = bh * G + tb;
        const float vs = kva_h2f(((const unsigned short*)row[6])[vrow * ngv + vgrp]);
        const float vm = kva_h2f(((const unsigned short*)row[7])[vrow * ngv + vgrp]);
#if MIX_KV == 2
        // trits stored 0..2 (value = (stored − 1)·α + mean) decoded to 2-bit codes: v = 4α·f + (mean − 5α)
        const unsigned char* vb = (const unsigned char*)row[5] + vrow * ngv * TB + vgrp * TB + vfb;
        unsigned long long big = 0;
#pragma unroll
        for (int k = 0; k < 4; k++)
          if (k < vnb) big |= (unsigned long long)lut[vb[k]] << (10 * k);
        const unsigned int vw[1] = { (unsigned int)(big >> vsh) };
        const float fs = 4.0f * vs, fm = vm - 5.0f * vs;
#else
        unsigned int vw[KVA_VB / 2];
        const unsigned char* vb = (const unsigned char*)row[5] + vrow * (KVA_D * KVA_VB / 8) + vc0 * KVA_VB / 8;
#if KVA_VB == 4
        const uint2 u = *reinterpret_cast<const uint2*>(vb);
        vw[0] = u.x; vw[1] = u.y;
#else
        vw[0] = *reinterpret_cast<const unsigned int*>(vb);
#endif
        const float fs = vs * (float)(1 << KVA_VB), fm = vm - fs;
#endif
#pragma unroll
        for (int i = 0; i < NQ; i++) {
          const float ps = pt[i] * fs;
          accm[i] += pt[i] * fm;
#pragma unroll
          for (int k = 0; k < KVA_VC; k++) acc[i][k] += ps * kva_code<KVA_VB>(vw[(k * KVA_VB) >> 5], (k * KVA_VB) & 31);
        }
      } else {
        const int tt = (c - qChunks) * 32 + t;
        if (tt < Tt) {
          const io_t* vr = tailV + bh * tailStride + (long long)tt * KVA_D + vc0;
          float v[KVA_VC];
#pragma unroll
          for (int k = 0; k < KVA_VC; k++) v[k] = to_f(vr[k]);
#pragma unroll
          for (int i = 0; i < NQ; i++)
#pragma unroll
            for (int k = 0; k < KVA_VC; k++) acc[i][k] += pt[i] * v[k];
        }
      }
    }
  }

  // ---- partials of this split: (m, l) and o summed over the lanes that hold the same channels ----
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    const float l = kva_warp_sum(lsum[i]);
    if (i >= nq) continue;
    const long long pi = (bhq * S + s) * nq + i;
    __syncwarp();
#pragma unroll
    for (int k = 0; k < KVA_VC; k++) red[warp][lane * KVA_VC + k] = acc[i][k] + accm[i];
    __syncwarp();
    for (int d = lane; d < KVA_D; d += 32) {
      const int cl = d / KVA_VC, k = d - cl * KVA_VC;
      float o = 0.0f;
#pragma unroll
      for (int tp = 0; tp < KVA_TPP; tp++) o += red[warp][(tp * KVA_LPT + cl) * KVA_VC + k];
      part_o[pi * KVA_D + d] = o;
    }
    if (lane == 0) { part_ml[pi * 2] = m[i]; part_ml[pi * 2 + 1] = l; }
  }
}

#define KVA_ENTRY(NQ) \
extern "C" __global__ void __launch_bounds__(KVA_WARPS * 32) kva_split_q##NQ(const io_t* __restrict__ q, \
    const long long* __restrict__ table, const io_t* __restrict__ tailK, const io_t* __restrict__ tailV, long long tailStride, \
    const unsigned char* __restrict__ allowed, const unsigned char* __restrict__ valid, int validStride, \
    float* __restrict__ part_o, float* __restrict__ part_ml, int Hq, int Hkv, int nq, int qpos0, int G, int NB, int Tt, int nOut, \
    int gv, int chunksPerSplit, int S, float scaleLog2) \
{ kva_split_body<NQ>(q, table, tailK, tailV, tailStride, allowed, valid, validStride, part_o, part_ml, Hq, Hkv, nq, qpos0, G, NB, Tt, \
    nOut, gv, chunksPerSplit, S, scaleLog2); }
KVA_ENTRY(1)
KVA_ENTRY(2)
KVA_ENTRY(4)

// grid (ceil(n·D / 128), Hkv, B), block 128: the step's new keys and values (any strides, unit stride along D) written
// into the tail buffers [B, Hkv, cap, D] at rows pos .. pos+n−1.
extern "C" __global__ void __launch_bounds__(128) kva_append(const io_t* __restrict__ k, const io_t* __restrict__ v,
    long long kb, long long kh, long long kt, long long vb, long long vh, long long vt, io_t* __restrict__ bufK,
    io_t* __restrict__ bufV, long long cap, int pos, int n)
{
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= n * KVA_D) return;
  const int t = e / KVA_D, d = e - t * KVA_D;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long dst = ((b * gridDim.y + h) * cap + pos + t) * KVA_D + d;
  bufK[dst] = k[b * kb + h * kh + t * kt + d];
  bufV[dst] = v[b * vb + h * vh + t * vt + d];
}

#if MIX_KV != 2
// grid (B·Hkv), block 128: KIVI-quantizes the tail's first G rows into one block with the numerics of
// KvQuantizer.Quantize on CUDA (float32 min and max, scale = max((max − min)·(1/levels), 1e-8) — torch divides a CUDA
// tensor by a host scalar through the rounded reciprocal —, code = rint((x − min)/scale) clamped
// to [0, levels], scale and min stored as float16; keys per channel over the G tokens, values per token over groups of
// gv channels), then moves the remaining rows [G, len) to rows [0, len − G) of the destination buffers (another pair,
// since the two ranges may overlap).
extern "C" __global__ void __launch_bounds__(128) kva_quantize(const io_t* __restrict__ srcK, const io_t* __restrict__ srcV,
    io_t* __restrict__ dstK, io_t* __restrict__ dstV, long long cap, int len, int G, int gv,
    unsigned char* __restrict__ kc, unsigned short* __restrict__ ks, unsigned short* __restrict__ km,
    unsigned char* __restrict__ vc, unsigned short* __restrict__ vs, unsigned short* __restrict__ vm)
{
  const long long bh = blockIdx.x;
  const io_t* K = srcK + bh * cap * KVA_D;
  const io_t* V = srcV + bh * cap * KVA_D;
  const float levels = (float)((1 << KVA_KB) - 1);
  const float inv = 1.0f / levels;   // torch's CUDA division by a scalar multiplies by the rounded reciprocal
  const int per = 8 / KVA_KB;
  const int RB = G / per;
  for (int d = threadIdx.x; d < KVA_D; d += blockDim.x) {
    float mn = to_f(K[d]), mx = mn;
    for (int t = 1; t < G; t++) { const float x = to_f(K[(long long)t * KVA_D + d]); mn = fminf(mn, x); mx = fmaxf(mx, x); }
    const float sc = fmaxf((mx - mn) * inv, 1e-8f);
    ks[bh * KVA_D + d] = kva_f2h(sc);
    km[bh * KVA_D + d] = kva_f2h(mn);
    for (int j = 0; j < RB; j++) {
      unsigned int byte = 0;
      for (int u = 0; u < per; u++) {
        const float x = to_f(K[(long long)(j * per + u) * KVA_D + d]);
        const float c = fminf(fmaxf(rintf((x - mn) / sc), 0.0f), levels);
        byte |= (unsigned int)c << (u * KVA_KB);
      }
      kc[(bh * KVA_D + d) * RB + j] = (unsigned char)byte;
    }
  }
  const int ngv = KVA_D / gv;
  const int VBy = KVA_D / per;
  for (int e = threadIdx.x; e < G * ngv; e += blockDim.x) {
    const int t = e / ngv, g = e - t * ngv;
    const io_t* x0 = V + (long long)t * KVA_D + g * gv;
    float mn = to_f(x0[0]), mx = mn;
    for (int c = 1; c < gv; c++) { const float x = to_f(x0[c]); mn = fminf(mn, x); mx = fmaxf(mx, x); }
    const float sc = fmaxf((mx - mn) * inv, 1e-8f);
    vs[(bh * G + t) * ngv + g] = kva_f2h(sc);
    vm[(bh * G + t) * ngv + g] = kva_f2h(mn);
    for (int j = 0; j < gv / per; j++) {
      unsigned int byte = 0;
      for (int u = 0; u < per; u++) {
        const float c = fminf(fmaxf(rintf((to_f(x0[j * per + u]) - mn) / sc), 0.0f), levels);
        byte |= (unsigned int)c << (u * KVA_KB);
      }
      vc[(bh * G + t) * VBy + g * gv / per + j] = (unsigned char)byte;
    }
  }
  const long long rest = (long long)(len - G) * KVA_D;
  for (long long e = threadIdx.x; e < rest; e += blockDim.x) {
    dstK[bh * cap * KVA_D + e] = K[(long long)G * KVA_D + e];
    dstV[bh * cap * KVA_D + e] = V[(long long)G * KVA_D + e];
  }
}
#endif

// one thread: row `row` of the block pointer table, so adding a block needs no host-to-device copy (which would wait
// for the queued work)
extern "C" __global__ void kva_table_row(long long* __restrict__ table, int row, long long p0, long long p1, long long p2,
    long long p3, long long p4, long long p5, long long p6, long long p7)
{
  long long* r = table + (long long)row * 8;
  r[0] = p0; r[1] = p1; r[2] = p2; r[3] = p3; r[4] = p4; r[5] = p5; r[6] = p6; r[7] = p7;
}

// grid (nq, Hq, B), block 128: out[b,h,i,:] = Σ_s o_s·2^(m_s − M) / Σ_s l_s·2^(m_s − M). The splits' maxima and sums
// are reduced by the whole block and the weights 2^(m_s − M) kept in shared memory; the outputs are summed by
// (channel, slice of the splits) pairs, so no thread walks all S splits serially more than once. S ≤ KVA_MAX_SPLITS.
#define KVA_MAX_SPLITS 512
__device__ __forceinline__ float kva_block_reduce(float v, bool isMax, float* sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = isMax ? kva_warp_max(v) : kva_warp_sum(v);
  __syncthreads();
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  float r = isMax ? KVA_NEG_INF : 0.0f;
  for (int w = 0; w < nw; w++) r = isMax ? fmaxf(r, sm[w]) : r + sm[w];
  return r;
}
extern "C" __global__ void __launch_bounds__(128) kva_combine(const float* __restrict__ part_o, const float* __restrict__ part_ml,
    io_t* __restrict__ out, int Hq, int nq, int S)
{
  __shared__ float wts[KVA_MAX_SPLITS];
  __shared__ float sm[32];
  __shared__ float acc[128];
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const long long bhq = (long long)b * Hq + h;
  float mx = KVA_NEG_INF;
  for (int s = threadIdx.x; s < S; s += blockDim.x) mx = fmaxf(mx, part_ml[((bhq * S + s) * nq + i) * 2]);
  const float M = kva_block_reduce(mx, true, sm);
  float l = 0.0f;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const long long pi = (bhq * S + s) * nq + i;
    const float ms = part_ml[pi * 2];
    const float w = (M == KVA_NEG_INF || ms == KVA_NEG_INF) ? 0.0f : exp2f(ms - M);
    wts[s] = w;
    l += part_ml[pi * 2 + 1] * w;
  }
  const float L = kva_block_reduce(l, false, sm);
  const float invL = L > 0.0f ? 1.0f / L : 0.0f;
  __syncthreads();
  const int slices = KVA_D >= (int)blockDim.x ? 1 : (int)blockDim.x / KVA_D;
  const int sl = (int)threadIdx.x / KVA_D;
  for (int d0 = 0; d0 < KVA_D; d0 += (int)blockDim.x) {
    const int d = d0 + (int)threadIdx.x % KVA_D;
    float o = 0.0f;
    if (sl < slices && d < KVA_D) {
#pragma unroll 4
      for (int s = sl; s < S; s += slices) o += part_o[((bhq * S + s) * nq + i) * KVA_D + d] * wts[s];
    }
    if (slices == 1) {
      if (d < KVA_D && (int)threadIdx.x < KVA_D) out[(bhq * nq + i) * KVA_D + d] = from_f(o * invL);
    } else {
      acc[threadIdx.x] = o;
      __syncthreads();
      if ((int)threadIdx.x < KVA_D) {
        float r = 0.0f;
        for (int k = 0; k < slices; k++) r += acc[k * KVA_D + threadIdx.x];
        out[(bhq * nq + i) * KVA_D + threadIdx.x] = from_f(r * invL);
      }
    }
  }
}
""";

        /// <summary>The third-generation kernels <c>kva_fast_q{1,2,4}</c> (KIVI and VidKV), compiled as a module of their
        /// own after <see cref="Source"/> (whose helpers they use), so a failure to build them leaves the second generation
        /// working. See the comment at the top of the source.</summary>
        public const string Staged = """
// ---------------------------------------------------------------------------------------------------------------------
// Third generation (kva_fast_q{1,2,4}): every quantized chunk a warp will read is staged into shared memory
// with cp.async one chunk ahead (two buffers per warp), so the codes and scales of chunk c+1 are in flight while chunk c
// is computed from shared memory and no global load sits on the critical path of the arithmetic. A block is one split
// (its warps take its chunks in turn and merge their softmax states in shared memory), so the partials are per block,
// and the last block of a (batch, head) to finish merges the splits (no second launch; one split writes the output).
// Stage layout (bytes): key codes [D][4·KB] (channel d's 32 tokens), key scales [D] and minimums [D] (float16),
// value codes [32][D·VB/8], value scales [32][ngv] then minimums [32][ngv] (ngv ≤ D/32 groups).
// VidKV adds, after the key scales, the outlier channels' high bit plane [nOut][4] and their channel indices [nOut]
// (int16), room for nOut ≤ D; its value rows are ngv·ceil(gv/5) trit bytes, at most 7·D/32 (gv = 32).
#define KVA_FW (KVA_D <= 128 ? 4 : 2)
#define KVA_KCB (4 * KVA_KB)
#define KVA_VRB (KVA_D * KVA_VB / 8)
#define KVA_SKS (KVA_D * KVA_KCB)
#if MIX_KV == 2
#define KVA_SP1 (KVA_SKS + 4 * KVA_D)
#define KVA_SOI (KVA_SP1 + 4 * KVA_D)
#define KVA_SVC (KVA_SOI + 2 * KVA_D)
#define KVA_SVS (KVA_SVC + 7 * KVA_D)
#else
#define KVA_SVC (KVA_SKS + 4 * KVA_D)
#define KVA_SVS (KVA_SVC + 32 * KVA_VRB)
#endif
#define KVA_STAGE (KVA_SVS + 4 * KVA_D)

#ifndef KVA_HOST_ASYNC
template <int N>
__device__ __forceinline__ void kva_cp(void* smem, const void* gmem) {
#if __CUDA_ARCH__ >= 800
  const unsigned int s = (unsigned int)__cvta_generic_to_shared(smem);
  if (N == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(gmem));
  else asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" :: "r"(s), "l"(gmem), "n"(N));
#else
  if (N == 16) *reinterpret_cast<uint4*>(smem) = *reinterpret_cast<const uint4*>(gmem);
  else if (N == 8) *reinterpret_cast<uint2*>(smem) = *reinterpret_cast<const uint2*>(gmem);
  else *reinterpret_cast<unsigned int*>(smem) = *reinterpret_cast<const unsigned int*>(gmem);
#endif
}
__device__ __forceinline__ void kva_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void kva_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" :: "n"(N));
#endif
}
#endif

// Stages chunk `sub` of a block (pointers p0 key codes, p1/p2 key scale/min, p3/p4 VidKV's outlier bit plane and
// indices, p5 value codes, p6/p7 value scale/min) for the (batch, kv head) bh: every lane copies its share in 16-byte
// pieces (8 for 2-bit key codes, 4 for VidKV's bit planes unless a block is one chunk); vrb: value code bytes per token.
__device__ __forceinline__ void kva_stage(unsigned char* st, long long p0, long long p1, long long p2, long long p3,
    long long p4, long long p5, long long p6, long long p7, long long bh, int G, int sub, int ngv, int vrb, int nOut, int lane)
{
  const long long krb = G * KVA_KB / 8;
  const unsigned char* kc = (const unsigned char*)p0 + bh * KVA_D * krb + sub * KVA_KCB;
#if MIX_KV == 2
  if (krb == KVA_KCB) {
    // G = 32: the chunk's bit plane is one contiguous run [D][4], so 16-byte pieces instead of D 4-byte ones
    for (int e = lane; e < KVA_D / 4; e += 32) kva_cp<16>(st + e * 16, kc + e * 16);
  } else
#endif
  {
#pragma unroll
    for (int j = 0; j < KVA_D / 32; j++) {
      const int d = j * 32 + lane;
      kva_cp<KVA_KCB>(st + d * KVA_KCB, kc + d * krb);
    }
  }
  const unsigned char* ks = (const unsigned char*)p1 + bh * KVA_D * 2;
  const unsigned char* km = (const unsigned char*)p2 + bh * KVA_D * 2;
  for (int e = lane; e < KVA_D / 4; e += 32) {
    const bool hi = e >= KVA_D / 8;
    const int o = (hi ? e - KVA_D / 8 : e) * 16;
    kva_cp<16>(st + KVA_SKS + (hi ? 2 * KVA_D : 0) + o, (hi ? km : ks) + o);
  }
#if MIX_KV == 2
  // a plane row is 4-byte aligned (G/8 bytes, G a multiple of 32); an index row only when nOut is even, so an odd
  // count (never the default 1/8 of D) copies through registers, a load on the staging path that only it pays for
  const unsigned char* k1 = (const unsigned char*)p3 + bh * nOut * krb + sub * 4;
  for (int o = lane; o < nOut; o += 32) kva_cp<4>(st + KVA_SP1 + o * 4, k1 + (long long)o * krb);
  const unsigned char* oi = (const unsigned char*)p4 + bh * nOut * 2;
  if ((nOut & 1) == 0) {
    for (int e = lane; e < nOut / 2; e += 32) kva_cp<4>(st + KVA_SOI + e * 4, oi + e * 4);
  } else {
    for (int e = lane; e < nOut; e += 32)
      reinterpret_cast<unsigned short*>(st + KVA_SOI)[e] = reinterpret_cast<const unsigned short*>(oi)[e];
  }
#endif
  const long long tok = bh * G + sub * 32;
  const unsigned char* vc = (const unsigned char*)p5 + tok * vrb;
  for (int e = lane; e < 2 * vrb; e += 32) kva_cp<16>(st + KVA_SVC + e * 16, vc + e * 16);
  const unsigned char* vs = (const unsigned char*)p6 + tok * ngv * 2;
  const unsigned char* vm = (const unsigned char*)p7 + tok * ngv * 2;
  for (int e = lane; e < 8 * ngv; e += 32) {
    const bool hi = e >= 4 * ngv;
    const int o = (hi ? e - 4 * ngv : e) * 16;
    kva_cp<16>(st + KVA_SVS + (hi ? 64 * ngv : 0) + o, (hi ? vm : vs) + o);
  }
}

#if MIX_KV == 2
// Two trit bytes x (< 243) in the 16-bit halves of v, each as its five digits in 2-bit fields: Σ d_k·4^k =
// x + ⌊x/3⌋ + 4⌊x/9⌋ + 16⌊x/27⌋ + 64⌊x/81⌋ (the digits telescope), each quotient a multiply and a shift that is exact
// for x < 243, done for both halves at once (the products stay below 2^16; the mask drops what the high half shifts
// down into the low one). KVA_TRIT_ALU: instead of the shared-memory table, whose 32 random reads per load conflict.
__device__ __forceinline__ unsigned int kva_trits2(unsigned int v) {
  const unsigned int q1 = ((v * 171u) >> 9) & 0x007f007fu, q2 = ((v * 57u) >> 9) & 0x001f001fu,
                     q3 = ((v * 19u) >> 9) & 0x000f000fu, q4 = ((v * 203u) >> 14) & 0x00030003u;
  return v + q1 + (q2 << 2) + (q3 << 4) + (q4 << 6);
}
#endif

template <int NQ>
__device__ __forceinline__ void kva_fast_body(
    const io_t* __restrict__ q, const long long* __restrict__ table, const io_t* __restrict__ tailK,
    const io_t* __restrict__ tailV, long long tailStride, const unsigned char* __restrict__ allowed,
    const unsigned char* __restrict__ valid, int validStride, float* __restrict__ part_o, float* __restrict__ part_ml,
    unsigned int* __restrict__ counters, io_t* __restrict__ out, int Hq, int Hkv, int nq, int qpos0, int G, int NB, int Tt,
    int nOut, int gv, int chunksPerBlock, int S, float scaleLog2)
{
  __shared__ __align__(16) unsigned char stg[KVA_FW][2][KVA_STAGE];
  __shared__ float qsm[NQ][KVA_D];
  __shared__ float mls[KVA_FW][NQ][2];
  __shared__ float sm[32];
  __shared__ unsigned int amLast;
#if MIX_KV == 2 && !defined(KVA_TRIT_ALU)
  // a trit byte (five base-3 digits) to its five digits as 2-bit codes, one lookup per byte in the value pass
  __shared__ unsigned short lut[256];
  for (int e = threadIdx.x; e < 256; e += blockDim.x) {
    unsigned int v = (unsigned int)e, r = 0;
    for (int k = 0; k < 5; k++) { r |= (v % 3u) << (2 * k); v /= 3u; }
    lut[e] = (unsigned short)r;
  }
#endif
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, b = blockIdx.z, s = blockIdx.x;
  const int kvh = h / (Hq / Hkv);
  const long long bh = (long long)b * Hkv + kvh;
  const long long bhq = (long long)b * Hq + h;
  const int T = NB * G + Tt;
  for (int e = threadIdx.x; e < NQ * KVA_D; e += blockDim.x) {
    const int i = e / KVA_D, d = e - i * KVA_D;
    qsm[i][d] = i < nq ? to_f(q[(bhq * nq + i) * KVA_D + d]) * scaleLog2 : 0.0f;
  }
  __syncthreads();

  const int CPB = G >> 5;
  const int qChunks = NB * CPB;
  const int nChunks = qChunks + ((Tt + 31) >> 5);
  const int cb0 = s * chunksPerBlock, cb1 = min(cb0 + chunksPerBlock, nChunks), qEnd = min(cb1, qChunks);
  const int ngv = KVA_D / gv;
  const int vtok = lane / KVA_LPT, vcl = lane - vtok * KVA_LPT, vc0 = vcl * KVA_VC;
  const bool vlane = vtok < KVA_TPP;
  const int vgrp = vc0 / gv;
#if MIX_KV == 2
  // a lane's 16 channels of its value group span 4 trit bytes from byte vfb (16 digits from digit vw0 % 5 ≤ 4 end
  // within the fourth byte, which is still inside the group: vw0 + 15 < gv), its first digit at bit vsh of their
  // decoded 2-bit codes
  const int TB = (gv + 4) / 5, vrb = ngv * TB;
  const int vw0 = vc0 - vgrp * gv, vfb = vw0 / 5, vsh = 2 * (vw0 - 5 * vfb);
#else
  const int vrb = KVA_VRB;
#endif

  float m[NQ], lsum[NQ], accm[NQ], acc[NQ][KVA_VC];
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    m[i] = KVA_NEG_INF; lsum[i] = 0.0f; accm[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < KVA_VC; k++) acc[i][k] = 0.0f;
  }

  // staging, one chunk ahead: lane l holds entry l % 8 of the table row of the next chunk to stage
  int cNext = cb0 + warp, nb = 0;
  long long trow = cNext < qEnd ? table[(long long)(cNext / CPB) * 8 + (lane & 7)] : 0;
  auto stageNext = [&]() {
    if (cNext < qEnd) {
      const long long p0 = __shfl_sync(0xffffffffu, trow, 0), p1 = __shfl_sync(0xffffffffu, trow, 1),
                      p2 = __shfl_sync(0xffffffffu, trow, 2), p5 = __shfl_sync(0xffffffffu, trow, 5),
                      p6 = __shfl_sync(0xffffffffu, trow, 6), p7 = __shfl_sync(0xffffffffu, trow, 7);
#if MIX_KV == 2
      const long long p3 = __shfl_sync(0xffffffffu, trow, 3), p4 = __shfl_sync(0xffffffffu, trow, 4);
#else
      const long long p3 = 0, p4 = 0;
#endif
      kva_stage(stg[warp][nb], p0, p1, p2, p3, p4, p5, p6, p7, bh, G, cNext - (cNext / CPB) * CPB, ngv, vrb, nOut, lane);
      cNext += KVA_FW;
      if (cNext < qEnd) trow = table[(long long)(cNext / CPB) * 8 + (lane & 7)];
    }
    kva_commit();
    nb ^= 1;
  };
  stageNext();

  int k = 0;
  for (int c = cb0 + warp; c < cb1; c += KVA_FW, k++) {
    stageNext();
    kva_wait<1>();
    __syncwarp();
    const unsigned char* st = stg[warp][k & 1];
    const bool quant = c < qChunks;
    float sc[NQ];
    if (quant) {
      // ---- scores: the queries folded with the block's key scales (q·s·2^bits per channel; each lane's share of
      // Σ q·min − Σ q·s·2^bits seeds its 32 partial sums, so the transposing sum adds the constant), codes as floats ----
      const unsigned short* sks = reinterpret_cast<const unsigned short*>(st + KVA_SKS);
      float qk[NQ][KVA_CPL], cl[NQ];
#pragma unroll
      for (int i = 0; i < NQ; i++) cl[i] = 0.0f;
#pragma unroll
      for (int j = 0; j < KVA_CPL; j++) {
        const int d = j * 32 + lane;
        const float a = kva_h2f(sks[d]) * (float)(1 << KVA_KB), mn = kva_h2f(sks[KVA_D + d]);
#pragma unroll
        for (int i = 0; i < NQ; i++) { qk[i][j] = qsm[i][d] * a; cl[i] += qsm[i][d] * mn - qk[i][j]; }
      }
#if MIX_KV == 2
      // VidKV's outlier channels, slot o = j·32 + lane holding channel oi[o]: the high bit adds 2·bit·s·q, as
      // 4·q·s times the float 1 + bit/2, with 4·q·s taken off this lane's share of the constant
      const short* soi = reinterpret_cast<const short*>(st + KVA_SOI);
      float qo[NQ][KVA_CPL];
      unsigned int ow[KVA_CPL];
#pragma unroll
      for (int j = 0; j < KVA_CPL; j++) {
        const int o = j * 32 + lane;
        const bool has = o < nOut;
        const int d = has ? (int)soi[o] : 0;
        const float a = has ? kva_h2f(sks[d]) * 4.0f : 0.0f;
        ow[j] = has ? *reinterpret_cast<const unsigned int*>(st + KVA_SP1 + o * 4) : 0u;
#pragma unroll
        for (int i = 0; i < NQ; i++) { qo[i][j] = qsm[i][d] * a; cl[i] -= qo[i][j]; }
      }
#endif
      unsigned int kw[KVA_CPL][KVA_KB];
#pragma unroll
      for (int j = 0; j < KVA_CPL; j++) {
        const unsigned char* p = st + (j * 32 + lane) * KVA_KCB;
#if KVA_KB == 4
        const uint4 u = *reinterpret_cast<const uint4*>(p);
        kw[j][0] = u.x; kw[j][1] = u.y; kw[j][2] = u.z; kw[j][3] = u.w;
#elif KVA_KB == 2
        const uint2 u = *reinterpret_cast<const uint2*>(p);
        kw[j][0] = u.x; kw[j][1] = u.y;
#else
        kw[j][0] = *reinterpret_cast<const unsigned int*>(p);
#endif
      }
#pragma unroll
      for (int i = 0; i < NQ; i++) {
        float part[32];
#pragma unroll
        for (int t = 0; t < 32; t++) part[t] = cl[i];
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++)
#pragma unroll
          for (int t = 0; t < 32; t++)
            part[t] += qk[i][j] * kva_code<KVA_KB>(kw[j][(t * KVA_KB) >> 5], (t * KVA_KB) & 31);
#if MIX_KV == 2
        // only the slots that hold outliers (nOut is warp-uniform: 1/8 of D by default, one slot row of 32)
#pragma unroll
        for (int j = 0; j < KVA_CPL; j++)
          if (j * 32 < nOut)
#pragma unroll
            for (int t = 0; t < 32; t++) part[t] += qo[i][j] * kva_code<1>(ow[j], t);
#endif
        sc[i] = kva_transpose_sum(part, lane);
      }
    } else {
      // ---- full-precision tail (read directly: at most R + G + 15 tokens) ----
      const int tt0 = (c - qChunks) * 32;
      const io_t* kr = tailK + bh * tailStride;
#pragma unroll
      for (int i = 0; i < NQ; i++) {
        float part[32];
#pragma unroll
        for (int t = 0; t < 32; t++) {
          float a = 0.0f;
          if (tt0 + t < Tt) {
#pragma unroll
            for (int j = 0; j < KVA_CPL; j++) a += qsm[i][j * 32 + lane] * to_f(kr[(long long)(tt0 + t) * KVA_D + j * 32 + lane]);
          }
          part[t] = a;
        }
        sc[i] = kva_transpose_sum(part, lane);
      }
    }

    // ---- online softmax; lane t holds token c·32 + t ----
    const int tok = c * 32 + lane;
    float pv[NQ];
#pragma unroll
    for (int i = 0; i < NQ; i++) {
      bool ok = i < nq && tok < T;
      if (ok) {
        if (allowed) ok = allowed[((long long)b * nq + i) * T + tok] != 0;
        else {
          const int qp = qpos0 + i;
          ok = tok <= qp && (valid == 0 || valid[(long long)b * validStride + tok] != 0 || tok == qp);
        }
      }
      const float si = ok ? sc[i] : KVA_NEG_INF;
      const float mNew = fmaxf(m[i], kva_warp_max(si));
      pv[i] = 0.0f;
      if (mNew != KVA_NEG_INF) {
        const float alpha = exp2f(m[i] - mNew);
        pv[i] = ok ? exp2f(si - mNew) : 0.0f;
        lsum[i] = lsum[i] * alpha + pv[i];
        accm[i] *= alpha;
#pragma unroll
        for (int kk = 0; kk < KVA_VC; kk++) acc[i][kk] *= alpha;
        m[i] = mNew;
      }
    }

    // ---- values: lane covers channels vc0 .. vc0+15 of token pass·TPP + vtok ----
    const unsigned short* svs = reinterpret_cast<const unsigned short*>(st + KVA_SVS);
#pragma unroll
    for (int pass = 0; pass < KVA_PASSES; pass++) {
      const int t = pass * KVA_TPP + vtok;
      float pt[NQ];
#pragma unroll
      for (int i = 0; i < NQ; i++) pt[i] = __shfl_sync(0xffffffffu, pv[i], t & 31);
      if (!vlane || t >= 32) continue;
      if (quant) {
        const float vs = kva_h2f(svs[t * ngv + vgrp]), vm = kva_h2f(svs[32 * ngv + t * ngv + vgrp]);
#if MIX_KV == 2
        // trits stored 0..2 (value = (stored − 1)·α + mean) decoded to 2-bit codes: v = 4α·f + (mean − 5α). The
        // 4 bytes in one word from the two aligned words that hold them (the stage row has room past its last byte).
        const int vo = t * vrb + vgrp * TB + vfb;
        const unsigned int* vwd = reinterpret_cast<const unsigned int*>(st + KVA_SVC + (vo & ~3));
        const unsigned int w4 = (unsigned int)((((unsigned long long)vwd[1] << 32) | vwd[0]) >> (8 * (vo & 3)));
#ifdef KVA_TRIT_ALU
        const unsigned int ev = kva_trits2(w4 & 0x00ff00ffu), od = kva_trits2((w4 >> 8) & 0x00ff00ffu);
        // fields of bytes 0..3 at bits 0, 10, 20, 30 (the last one's top 2 bits above bit 31 come from hi)
        const unsigned int lo = (ev & 0x3ffu) | ((od & 0x3ffu) << 10) | ((ev >> 16) << 20) | ((od >> 16) << 30);
        const unsigned int hi = od >> 18;
        const unsigned int vw[1] = { (unsigned int)((((unsigned long long)hi << 32) | lo) >> vsh) };
#else
        const unsigned long long big = (unsigned long long)lut[w4 & 0xffu] | ((unsigned long long)lut[(w4 >> 8) & 0xffu] << 10)
            | ((unsigned long long)lut[(w4 >> 16) & 0xffu] << 20) | ((unsigned long long)lut[w4 >> 24] << 30);
        const unsigned int vw[1] = { (unsigned int)(big >> vsh) };
#endif
        const float fs = 4.0f * vs, fm = vm - 5.0f * vs;
#else
        unsigned int vw[KVA_VB / 2];
        const unsigned char* vb = st + KVA_SVC + t * KVA_VRB + vc0 * KVA_VB / 8;
#if KVA_VB == 4
        const uint2 u = *reinterpret_cast<const uint2*>(vb);
        vw[0] = u.x; vw[1] = u.y;
#else
        vw[0] = *reinterpret_cast<const unsigned int*>(vb);
#endif
        const float fs = vs * (float)(1 << KVA_VB), fm = vm - fs;
#endif
#pragma unroll
        for (int i = 0; i < NQ; i++) {
          const float ps = pt[i] * fs;
          accm[i] += pt[i] * fm;
#pragma unroll
          for (int kk = 0; kk < KVA_VC; kk++) acc[i][kk] += ps * kva_code<KVA_VB>(vw[(kk * KVA_VB) >> 5], (kk * KVA_VB) & 31);
        }
      } else {
        const int tt = (c - qChunks) * 32 + t;
        if (tt < Tt) {
          const io_t* vr = tailV + bh * tailStride + (long long)tt * KVA_D + vc0;
          float v[KVA_VC];
#pragma unroll
          for (int kk = 0; kk < KVA_VC; kk++) v[kk] = to_f(vr[kk]);
#pragma unroll
          for (int i = 0; i < NQ; i++)
#pragma unroll
            for (int kk = 0; kk < KVA_VC; kk++) acc[i][kk] += pt[i] * v[kk];
        }
      }
    }
    __syncwarp();   // every lane is done with this buffer before it is staged again
  }
  kva_wait<0>();
  __syncwarp();

  // ---- this warp's state: channel sums over the lanes holding the same channels (lanes vcl, vcl + LPT, …), written
  // by lanes 0 .. LPT−1 into the warp's own stage buffers (free now) ----
  float* ow = reinterpret_cast<float*>(stg[warp][0]);   // [NQ][D]
#pragma unroll
  for (int i = 0; i < NQ; i++) {
    const float l = kva_warp_sum(lsum[i]);
#pragma unroll
    for (int kk = 0; kk < KVA_VC; kk++) {
      float o = acc[i][kk] + accm[i];
      float r = o;
#pragma unroll
      for (int tp = 1; tp < KVA_TPP; tp++) r += __shfl_sync(0xffffffffu, o, (tp * KVA_LPT + vcl) & 31);
      if (vtok == 0) ow[i * KVA_D + vc0 + kk] = r;
    }
    if (lane == 0) { mls[warp][i][0] = m[i]; mls[warp][i][1] = l; }
  }
  __syncthreads();

  // ---- the block's split: the warps merged ----
  for (int i = 0; i < nq; i++) {
    float M = KVA_NEG_INF;
#pragma unroll
    for (int w = 0; w < KVA_FW; w++) M = fmaxf(M, mls[w][i][0]);
    float wt[KVA_FW], L = 0.0f;
#pragma unroll
    for (int w = 0; w < KVA_FW; w++) {
      wt[w] = (M == KVA_NEG_INF || mls[w][i][0] == KVA_NEG_INF) ? 0.0f : exp2f(mls[w][i][0] - M);
      L += mls[w][i][1] * wt[w];
    }
    for (int d = threadIdx.x; d < KVA_D; d += blockDim.x) {
      float o = 0.0f;
#pragma unroll
      for (int w = 0; w < KVA_FW; w++) o += reinterpret_cast<const float*>(stg[w][0])[i * KVA_D + d] * wt[w];
      if (S == 1) out[(bhq * nq + i) * KVA_D + d] = from_f(L > 0.0f ? o / L : 0.0f);
      else part_o[((bhq * S + s) * nq + i) * KVA_D + d] = o;
    }
    if (S > 1 && threadIdx.x == 0) { part_ml[((bhq * S + s) * nq + i) * 2] = M; part_ml[((bhq * S + s) * nq + i) * 2 + 1] = L; }
  }
  if (S == 1) return;

  // ---- the last block of (b, h) to finish merges the S splits and resets the counter ----
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) amLast = atomicAdd(counters + bhq, 1u) == (unsigned int)(S - 1);
  __syncthreads();
  if (!amLast) return;
  __threadfence();
  float* wts = reinterpret_cast<float*>(stg[0][0]);   // [S] (S ≤ KVA_MAX_SPLITS fits: the stage area is larger)
  for (int i = 0; i < nq; i++) {
    float mx = KVA_NEG_INF;
    for (int j = threadIdx.x; j < S; j += blockDim.x) mx = fmaxf(mx, __ldcg(part_ml + ((bhq * S + j) * nq + i) * 2));
    const float M = kva_block_reduce(mx, true, sm);
    float l = 0.0f;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
      const long long pi = (bhq * S + j) * nq + i;
      const float mj = __ldcg(part_ml + pi * 2);
      const float w = (M == KVA_NEG_INF || mj == KVA_NEG_INF) ? 0.0f : exp2f(mj - M);
      wts[j] = w;
      l += __ldcg(part_ml + pi * 2 + 1) * w;
    }
    const float L = kva_block_reduce(l, false, sm);
    const float invL = L > 0.0f ? 1.0f / L : 0.0f;
    for (int d = threadIdx.x; d < KVA_D; d += blockDim.x) {
      float o = 0.0f;
#pragma unroll 4
      for (int j = 0; j < S; j++) o += __ldcg(part_o + ((bhq * S + j) * nq + i) * KVA_D + d) * wts[j];
      out[(bhq * nq + i) * KVA_D + d] = from_f(o * invL);
    }
    __syncthreads();   // wts is rewritten for the next query
  }
  if (threadIdx.x == 0) counters[bhq] = 0u;
}

#define KVA_FAST_ENTRY(NQ, THREADS_PER_SM) \
extern "C" __global__ void __launch_bounds__(KVA_FW * 32, (THREADS_PER_SM) / (KVA_FW * 32)) kva_fast_q##NQ(const io_t* __restrict__ q, \
    const long long* __restrict__ table, const io_t* __restrict__ tailK, const io_t* __restrict__ tailV, long long tailStride, \
    const unsigned char* __restrict__ allowed, const unsigned char* __restrict__ valid, int validStride, \
    float* __restrict__ part_o, float* __restrict__ part_ml, unsigned int* __restrict__ counters, io_t* __restrict__ out, int Hq, \
    int Hkv, int nq, int qpos0, int G, int NB, int Tt, int nOut, int gv, int chunksPerBlock, int S, float scaleLog2) \
{ kva_fast_body<NQ>(q, table, tailK, tailV, tailStride, allowed, valid, validStride, part_o, part_ml, counters, out, Hq, Hkv, nq, \
    qpos0, G, NB, Tt, nOut, gv, chunksPerBlock, S, scaleLog2); }
KVA_FAST_ENTRY(1, 512)
KVA_FAST_ENTRY(2, 384)
KVA_FAST_ENTRY(4, 256)
""";
    }
}
