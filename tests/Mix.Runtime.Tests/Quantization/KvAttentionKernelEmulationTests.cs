using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using Mix.Tests.Shared;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// The quantized-cache attention kernels (<see cref="KvAttentionKernelSources"/>: the second-generation split-K kernel
/// with its combine, and the third-generation staged kernel, for KIVI-4, KIVI-2 and VidKV alike) compiled as C++ with the CUDA
/// built-ins emulated (cooperative CUDA threads: <see cref="CudaThreadEmulation"/>; warp shuffles and <c>__syncwarp</c> as barriers of the warp's 32
/// threads, <c>__syncthreads</c> as a barrier of the block), fed with blocks packed by the real
/// <see cref="KvQuantizer"/> (KIVI-4, KIVI-2, VidKV) and a float32 tail, against softmax attention in float64 over
/// <see cref="KvQuantizer.Dequantize"/>'s keys and values (computed here in C#). Cases: contexts that are not a multiple
/// of the block or of the split, tails of 0, 5, 7 and 33+ tokens, blocks of 64 tokens, batch 2 with rows of different
/// lengths (left padding through the validity bytes), an explicit mask, grouped-query heads, 1–4 queries per launch,
/// head dimensions 32, 64, 96, 128 and 256; for VidKV also value groups of 64 channels, an odd outlier count and more
/// than 32 outliers. Needs g++ (C++20); skipped without it. Bound: max |error| ≤ 2e-5 ×
/// (1 + max |reference|) (float32 kernel, float64 reference). The KIVI block quantizer (<c>kva_quantize</c>) against
/// the same blocks: float16 scales and minimums within one ulp and at most 0.5 % of the codes one step off (it follows
/// torch's CUDA numerics, which divide by the level count through its reciprocal; the reference here ran on the CPU,
/// which divides — the GPU tests demand bit equality with the reference quantizer on the GPU), the tail's shift exact.
/// </summary>
public class KvAttentionKernelEmulationTests
{
    private const string Emulation = CudaThreadEmulation.Header + """
#include <cstring>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <vector>
#include <cstdio>
#include <cstdlib>
using std::min;
#define MIX_T 0
#define KVA_HOST_HALF 1
#define __device__
#define __forceinline__ inline
#define __global__
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
struct float4 { float x, y, z, w; };
struct uint2 { unsigned int x, y; };
struct uint4 { unsigned int x, y, z, w; };
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx; D3 blockIdx, blockDim, gridDim;
static mix_barrier* block_barrier;
static mix_barrier* warp_barriers[32];
static long long shuffle_slots[1024];
static inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
template <class T> static T __ldg(const T* p) { return *p; }
static inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline float __int_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
template <class T> static T __shfl_down_sync(unsigned, T v, int) { return v; }
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static void __syncwarp() { warp_barriers[threadIdx.x >> 5]->arrive_and_wait(); }
template <class T> static T __shfl_sync(unsigned, T v, int src) {
  static_assert(sizeof(T) <= 8);
  std::memcpy(&shuffle_slots[threadIdx.x], &v, sizeof(T)); __syncwarp();
  T r; std::memcpy(&r, &shuffle_slots[(threadIdx.x & ~31u) + (unsigned)(src & 31)], sizeof(T)); __syncwarp(); return r;
}
static float __shfl_xor_sync(unsigned, float v, int o) {
  std::memcpy(&shuffle_slots[threadIdx.x], &v, 4); __syncwarp();
  float r; std::memcpy(&r, &shuffle_slots[threadIdx.x ^ (unsigned)o], 4); __syncwarp(); return r;
}
// cp.async as a plain copy (complete at once), the arrival counter as a host atomic (blocks run one after another)
#define KVA_HOST_ASYNC 1
#define __align__(n) __attribute__((aligned(n)))
template <int N> static void kva_cp(void* smem, const void* gmem) { std::memcpy(smem, gmem, N); }
static void kva_commit() {}
template <int N> static void kva_wait() {}
static void __threadfence() {}
template <class T> static T __ldcg(const T* p) { return *p; }
static unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static float kva_h2f(unsigned short h) {
  const unsigned s = (h >> 15) & 1u, e = (h >> 10) & 31u, m = h & 1023u;
  float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp((float)(m | 1024u), (int)e - 25);
  return s ? -v : v;
}
static unsigned short kva_f2h(float f) {   // round to nearest even, as cvt.rn.f16.f32
  unsigned u; std::memcpy(&u, &f, 4);
  const unsigned s = (u >> 16) & 0x8000u;
  const float a = std::fabs(f);
  if (!(a == a)) return (unsigned short)(s | 0x7e00u);
  if (a >= 65520.0f) return (unsigned short)(s | 0x7c00u);
  if (a < 6.103515625e-05f) return (unsigned short)(s | (unsigned)std::nearbyint(a * 16777216.0f));   // subnormal: units of 2^-24
  int e; const float m = std::frexp(a, &e);            // a = m·2^e, m in [0.5, 1)
  unsigned mant = (unsigned)std::nearbyint(std::ldexp(m, 11));   // 11 significant bits
  if (mant == 2048u) { mant = 1024u; e++; }
  return (unsigned short)(s | ((unsigned)(e + 14) << 10) | (mant - 1024u));
}
template <class F> static void launch(D3 grid, unsigned threads, F body) {
  blockDim = { threads, 1, 1 }; gridDim = grid;
  for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
    blockIdx = { x, y, z };
    mix_barrier b((std::ptrdiff_t)threads); block_barrier = &b;
    std::vector<std::unique_ptr<mix_barrier>> wb;
    for (unsigned w = 0; w < threads / 32; w++) { wb.emplace_back(new mix_barrier(32)); warp_barriers[w] = wb.back().get(); }
    mix_fibers fs;
    for (unsigned t = 0; t < threads; t++) fs.spawn([t] { threadIdx = { t, 0, 0 }; }, body);
    fs.run();
  }
}
""";

    private const string Harness = """
static FILE* in;
static int rd() { int v; if (fread(&v, 4, 1, in) != 1) { printf("bad input\n"); exit(2); } return v; }
static std::vector<unsigned char> arr() {
  long long n; if (fread(&n, 8, 1, in) != 1) { printf("bad input\n"); exit(2); }
  std::vector<unsigned char> v((size_t)n + 16);
  if (n > 0 && fread(v.data(), 1, (size_t)n, in) != (size_t)n) { printf("bad input\n"); exit(2); }
  v.resize((size_t)n);
  return v;
}
template <class T> static const T* ptr(const std::vector<unsigned char>& v) { return v.empty() ? nullptr : (const T*)v.data(); }

int main(int argc, char** argv) {
  in = fopen(argv[1], "rb");
  int cases = rd();
  for (int cs = 0; cs < cases; cs++) {
    int B = rd(), Hkv = rd(), Hq = rd(), D = rd(), G = rd(), NB = rd(), Tt = rd(), cap = rd(), nq = rd(), nOut = rd(), gv = rd(),
        S = rd(), vstride = rd(), qpos0 = rd();
    if (D != KVA_D) { printf("case %d has D=%d, compiled for %d\n", cs, D, KVA_D); return 3; }
    auto q = arr();
    std::vector<std::vector<unsigned char>> blocks;
    std::vector<long long> table((size_t)std::max(NB, 1) * 8, 0);
    for (int b = 0; b < NB; b++) for (int k = 0; k < 8; k++) blocks.push_back(arr());
    for (int b = 0; b < NB; b++) for (int k = 0; k < 8; k++)
      table[b * 8 + k] = blocks[b * 8 + k].empty() ? 0 : (long long)(intptr_t)blocks[b * 8 + k].data();
    auto tk = arr(), tv = arr(), allowed = arr(), valid = arr(), expect = arr();
    const int T = NB * G + Tt;
    const int chunks = NB * (G / 32) + (Tt + 31) / 32;
    const int S0 = S;
    int cps = (chunks + S - 1) / S; S = (chunks + cps - 1) / cps;
    std::vector<float> po((size_t)B * Hq * S * nq * D), pml((size_t)B * Hq * S * nq * 2), out((size_t)B * Hq * nq * D, -7.0f);
    const float scaleLog2 = (float)(1.0 / std::sqrt((double)D) * 1.4426950408889634);
    D3 grid = { (unsigned)((S + 3) / 4), (unsigned)Hq, (unsigned)B };
    auto body = [&] {
      auto a = [&](auto f) { f(ptr<float>(q), NB ? table.data() : nullptr, ptr<float>(tk), ptr<float>(tv), (long long)cap * D,
          ptr<unsigned char>(allowed), ptr<unsigned char>(valid), vstride, po.data(), pml.data(), Hq, Hkv, nq, qpos0, G, NB, Tt, nOut, gv,
          cps, S, scaleLog2); };
      if (nq == 1) a(kva_split_q1); else if (nq == 2) a(kva_split_q2); else a(kva_split_q4);
    };
    launch(grid, 128, body);
    launch({ (unsigned)nq, (unsigned)Hq, (unsigned)B }, 128, [&] { kva_combine(po.data(), pml.data(), out.data(), Hq, nq, S); });
    const double* ref = (const double*)expect.data();
    double err = 0, mag = 0;
    for (size_t i = 0; i < out.size(); i++) { err = std::max(err, std::fabs(out[i] - ref[i])); mag = std::max(mag, std::fabs(ref[i])); }
    printf("case%d %.6g %.6g %d", cs, err, mag, S);
    {
      // the staged kernel: as QuantizedKvAttention splits a forced count (at least one chunk per warp), one block
      // per split, the merge done by the last block of each head (the counters must be zero again afterwards)
      int S3 = std::max(1, std::min(S0, std::min((chunks + KVA_FW - 1) / KVA_FW, 512)));
      const int cpb = (chunks + S3 - 1) / S3; S3 = (chunks + cpb - 1) / cpb;
      std::vector<float> po3((size_t)B * Hq * S3 * nq * D, NAN), pml3((size_t)B * Hq * S3 * nq * 2, NAN), out3(out.size(), -7.0f);
      std::vector<unsigned> counters((size_t)B * Hq, 0u);
      auto body3 = [&] {
        auto a = [&](auto f) { f(ptr<float>(q), NB ? table.data() : nullptr, ptr<float>(tk), ptr<float>(tv), (long long)cap * D,
            ptr<unsigned char>(allowed), ptr<unsigned char>(valid), vstride, po3.data(), pml3.data(), counters.data(), out3.data(), Hq, Hkv,
            nq, qpos0, G, NB, Tt, nOut, gv, cpb, S3, scaleLog2); };
        if (nq == 1) a(kva_fast_q1); else if (nq == 2) a(kva_fast_q2); else a(kva_fast_q4);
      };
      launch({ (unsigned)S3, (unsigned)Hq, (unsigned)B }, KVA_FW * 32, body3);
      double err3 = 0;
      for (size_t i = 0; i < out3.size(); i++) { const double d = std::fabs(out3[i] - ref[i]); if (!(d <= err3)) err3 = d; }
      if (!(err3 == err3)) err3 = 1e30;
      unsigned left = 0;
      for (unsigned c : counters) left += c;
      printf(" staged %.6g %d %u", err3, S3, left);
    }
    // the block quantizer: the raw rows of the first block (and a few more), quantized and shifted by kva_quantize
    const int qlen = rd();
    auto rawK = arr(), rawV = arr();
#if MIX_KV != 2
    if (qlen > 0) {
      const int qcap = qlen + 2, RB = G * KVA_KB / 8, ngv = KVA_D / gv;
      std::vector<float> sk((size_t)B * Hkv * qcap * D, 0.0f), sv(sk.size(), 0.0f), dk(sk.size(), -1.0f), dv(sk.size(), -1.0f);
      for (int bh = 0; bh < B * Hkv; bh++)
        for (int e = 0; e < qlen * D; e++) {
          sk[(size_t)bh * qcap * D + e] = ((const float*)rawK.data())[(size_t)bh * qlen * D + e];
          sv[(size_t)bh * qcap * D + e] = ((const float*)rawV.data())[(size_t)bh * qlen * D + e];
        }
      std::vector<unsigned char> kc((size_t)B * Hkv * D * RB), vc((size_t)B * Hkv * G * D * KVA_VB / 8);
      std::vector<unsigned short> ks((size_t)B * Hkv * D), km(ks.size()), vs((size_t)B * Hkv * G * ngv), vm(vs.size());
      launch({ (unsigned)(B * Hkv), 1, 1 }, 128, [&] { kva_quantize(sk.data(), sv.data(), dk.data(), dv.data(), qcap, qlen, G, gv,
          kc.data(), ks.data(), km.data(), vc.data(), vs.data(), vm.data()); });
      // against KvQuantizer's block 0 (CPU): codes may differ by one step where (x − min)/scale sits at a rounding
      // boundary (the CPU divides by levels, CUDA's torch multiplies by its reciprocal), scales by one float16 ulp
      long codes = 0, off = 0; int worst = 0, ulp = 0;
      auto cmpCodes = [&](const std::vector<unsigned char>& got, const std::vector<unsigned char>& want, int bits) {
        for (size_t i = 0; i < got.size(); i++)
          for (int u = 0; u < 8 / bits; u++) {
            const int a = (got[i] >> (u * bits)) & ((1 << bits) - 1), b = (want[i] >> (u * bits)) & ((1 << bits) - 1);
            codes++; if (a != b) { off++; worst = std::max(worst, std::abs(a - b)); }
          }
      };
      auto cmpHalf = [&](const std::vector<unsigned short>& got, const std::vector<unsigned char>& want) {
        for (size_t i = 0; i < got.size(); i++) { unsigned short w; std::memcpy(&w, want.data() + 2 * i, 2); ulp = std::max(ulp, std::abs((int)got[i] - (int)w)); }
      };
      if (blocks[0].size() != kc.size() || blocks[5].size() != vc.size()) { printf(" quant-size-mismatch\n"); continue; }
      cmpCodes(kc, blocks[0], KVA_KB); cmpCodes(vc, blocks[5], KVA_VB);
      cmpHalf(ks, blocks[1]); cmpHalf(km, blocks[2]); cmpHalf(vs, blocks[6]); cmpHalf(vm, blocks[7]);
      double shift = 0;
      for (int bh = 0; bh < B * Hkv; bh++)
        for (int e = 0; e < (qlen - G) * D; e++) {
          shift = std::max(shift, (double)std::fabs(dk[(size_t)bh * qcap * D + e] - sk[(size_t)bh * qcap * D + G * D + e]));
          shift = std::max(shift, (double)std::fabs(dv[(size_t)bh * qcap * D + e] - sv[(size_t)bh * qcap * D + G * D + e]));
        }
      printf(" quant %.6g %d %d %.3g %d", (double)off / (double)codes, worst, ulp, shift, qlen - G);
    }
#endif
    printf("\n");
  }
  return 0;
}
""";

    /// <summary>One attention call: the cache shape, the queries and how visibility is given.</summary>
    private sealed record Case(KvQuantMode Mode, int B, int Hkv, int Hq, int D, int G, int NB, int Tt, int Nq, int Splits,
        string Visibility, int Seed, double OutlierFraction = 0.125);

    private static readonly Case[] Cases =
    {
        // KIVI-4: 5 blocks + 7 tail tokens split unevenly in 3; one query, causal, all valid
        new(KvQuantMode.Kivi4, 1, 2, 2, 64, 32, 5, 7, 1, 4, "causal", 1),
        // KIVI-4: batch 2 with rows of different lengths (left padding), 4 queries, 256 channels, a tail over a chunk
        new(KvQuantMode.Kivi4, 2, 1, 1, 256, 32, 2, 40, 4, 2, "valid", 2),
        // KIVI-2: blocks of 64 tokens (two chunks each), no tail, grouped-query heads, 2 queries, left padding
        new(KvQuantMode.Kivi2, 2, 1, 2, 128, 64, 3, 0, 2, 4, "valid", 3),
        // KIVI-4: 21 blocks + 13 tail tokens in 2 splits (the staged kernel's warps pipeline several chunks each),
        // grouped-query heads, left padding; and 9 blocks of 64 tokens + a tail of 31 in 3 splits, an explicit mask
        new(KvQuantMode.Kivi4, 2, 1, 2, 128, 32, 21, 13, 1, 2, "valid", 8),
        new(KvQuantMode.Kivi4, 1, 2, 2, 128, 64, 9, 31, 2, 3, "allowed", 9),
        // KIVI-2: 160 channels (ten lanes per token in the value pass, two idle lanes), 11 blocks, no tail, one split
        new(KvQuantMode.Kivi2, 1, 1, 1, 160, 32, 11, 0, 1, 1, "causal", 10),
        // KIVI-2: a single split, 32 channels (16 tokens per value pass); the tail alone, then blocks + tail
        new(KvQuantMode.Kivi2, 1, 1, 1, 32, 32, 0, 20, 1, 1, "causal", 4),
        new(KvQuantMode.Kivi2, 1, 1, 1, 32, 32, 2, 5, 1, 1, "causal", 5),
        // VidKV: 96 channels (6 lanes per token in the value pass), an explicit mask, 3 queries, a tail of 33
        new(KvQuantMode.VidKv, 2, 2, 2, 96, 32, 4, 33, 3, 5, "allowed", 6),
        // VidKV: 128 channels (16 outliers), 7 splits over 9 chunks, left padding
        new(KvQuantMode.VidKv, 2, 1, 1, 128, 32, 8, 9, 1, 7, "valid", 7),
        // VidKV, for the staged kernel: 21 blocks + an odd tail of 13 in 2 splits (several chunks per warp), grouped-query
        // heads, left padding; blocks of 64 tokens (bit planes in 4-byte pieces, value groups of 64 channels: 13 trit bytes)
        // + a tail of 31 in 3 splits, an explicit mask, 2 queries
        new(KvQuantMode.VidKv, 2, 1, 2, 128, 32, 21, 13, 1, 2, "valid", 11),
        new(KvQuantMode.VidKv, 1, 2, 2, 128, 64, 9, 31, 2, 3, "allowed", 12),
        // VidKV: 256 channels with 37 outliers (odd: the indices staged through registers; two slot rows of 32), 4
        // queries, 11 blocks + 1 tail token in 2 splits, causal
        new(KvQuantMode.VidKv, 1, 1, 1, 256, 32, 11, 1, 4, 2, "causal", 13, 0.146),
    };

    private static void WriteArray(BinaryWriter w, Tensor? t)
    {
        if (t is null) { w.Write(0L); return; }
        var c = t.contiguous();
        var bytes = c.bytes.ToArray();
        w.Write((long)bytes.Length);
        w.Write(bytes);
    }

    /// <summary>Writes one case's inputs and float64 reference output.</summary>
    private static void WriteCase(BinaryWriter w, Case c)
    {
        using var scope = torch.NewDisposeScope();
        var gen = torch.manual_seed(c.Seed);
        var opts = new KvQuantizationOptions { Mode = c.Mode, GroupSize = c.G, OutlierFraction = c.OutlierFraction };
        int T = c.NB * c.G + c.Tt;
        Tensor Rand(long t)
        {
            var x = torch.randn(c.B, c.Hkv, t, c.D);
            x[TensorIndex.Ellipsis, 3] = x[TensorIndex.Ellipsis, 3] * 6;   // an outlier channel
            return x;
        }
        var keys = Rand(T);
        var values = Rand(T);
        var q = torch.randn(c.B, c.Hq, c.Nq, c.D);
        var blocks = new List<QuantizedKvBlock>();
        var dk = new List<Tensor>();
        var dv = new List<Tensor>();
        for (int b = 0; b < c.NB; b++)
        {
            var blk = KvQuantizer.Quantize(keys.narrow(2, b * c.G, c.G), values.narrow(2, b * c.G, c.G), opts);
            blocks.Add(blk);
            var (k1, v1) = KvQuantizer.Dequantize(blk, opts, c.G, c.D, ScalarType.Float64);
            dk.Add(k1);
            dv.Add(v1);
        }
        int cap = c.Tt + 3;   // the tail buffer holds more rows than are in use
        var tailK = torch.zeros(c.B, c.Hkv, cap, c.D);
        var tailV = torch.zeros(c.B, c.Hkv, cap, c.D);
        if (c.Tt > 0)
        {
            tailK.narrow(2, 0, c.Tt).copy_(keys.narrow(2, c.NB * c.G, c.Tt));
            tailV.narrow(2, 0, c.Tt).copy_(values.narrow(2, c.NB * c.G, c.Tt));
            dk.Add(keys.narrow(2, c.NB * c.G, c.Tt).to_type(ScalarType.Float64));
            dv.Add(values.narrow(2, c.NB * c.G, c.Tt).to_type(ScalarType.Float64));
        }
        var K = torch.cat(dk, 2);
        var V = torch.cat(dv, 2);
        // visibility [B, nq, T]
        int qpos0 = T - c.Nq;
        var allowed = torch.zeros(new long[] { c.B, c.Nq, T }, ScalarType.Bool);
        Tensor? validBytes = null, allowedBytes = null;
        int vstride = 0;
        var rng = new Random(c.Seed);
        if (c.Visibility == "allowed")
        {
            var a = new bool[c.B * c.Nq * T];
            for (int i = 0; i < a.Length; i++) a[i] = rng.NextDouble() < 0.7;
            for (int b = 0; b < c.B; b++) for (int i = 0; i < c.Nq; i++) a[(b * c.Nq + i) * T + qpos0 + i] = true;
            allowed = torch.tensor(a).reshape(c.B, c.Nq, T);
            allowedBytes = allowed.to_type(ScalarType.Byte);
        }
        else
        {
            var valid = new bool[c.B * T];
            Array.Fill(valid, true);
            if (c.Visibility == "valid")
                for (int b = 0; b < c.B; b++)
                {
                    int pad = b == 0 ? Math.Min(37, T - c.Nq) : 0;   // row 0 is shorter: its first entries are padding
                    for (int j = 0; j < pad; j++) valid[b * T + j] = false;
                    if (b == 1 && T > 10) valid[b * T + T - c.Nq - 1] = false;   // and a pad token in the middle of row 1
                }
            var a = new bool[c.B * c.Nq * T];
            for (int b = 0; b < c.B; b++)
                for (int i = 0; i < c.Nq; i++)
                    for (int j = 0; j < T; j++)
                        a[(b * c.Nq + i) * T + j] = j <= qpos0 + i && (valid[b * T + j] || j == qpos0 + i);
            allowed = torch.tensor(a).reshape(c.B, c.Nq, T);
            if (c.Visibility == "valid")
            {
                vstride = T + 5;
                var vb = new byte[c.B * vstride];
                for (int b = 0; b < c.B; b++) for (int j = 0; j < T; j++) vb[b * vstride + j] = valid[b * T + j] ? (byte)1 : (byte)0;
                validBytes = torch.tensor(vb).reshape(c.B, vstride);
            }
        }
        // float64 reference: kv heads repeated for grouped queries
        var Kq = K.repeat_interleave(c.Hq / c.Hkv, 1);
        var Vq = V.repeat_interleave(c.Hq / c.Hkv, 1);
        var s = torch.matmul(q.to_type(ScalarType.Float64), Kq.transpose(2, 3)) / Math.Sqrt(c.D);
        s = s.masked_fill(allowed.unsqueeze(1).logical_not(), double.NegativeInfinity);
        var expect = torch.matmul(torch.softmax(s, -1), Vq);

        long nOut = c.Mode == KvQuantMode.VidKv ? KvQuantizer.OutlierChannels(c.D, opts.OutlierFraction) : 0;
        foreach (var v in new[] { c.B, c.Hkv, c.Hq, c.D, c.G, c.NB, c.Tt, cap, c.Nq, (int)nOut, Math.Min(c.G, c.D), c.Splits, vstride, qpos0 })
            w.Write(v);
        WriteArray(w, q);
        foreach (var blk in blocks)
        {
            WriteArray(w, blk.KeyCodes); WriteArray(w, blk.KeyScale); WriteArray(w, blk.KeyMin); WriteArray(w, blk.KeyPlane1);
            WriteArray(w, blk.OutlierIdx); WriteArray(w, blk.ValueCodes); WriteArray(w, blk.ValueScale); WriteArray(w, blk.ValueMin);
        }
        WriteArray(w, c.Tt > 0 ? tailK : null);
        WriteArray(w, c.Tt > 0 ? tailV : null);
        WriteArray(w, allowedBytes);
        WriteArray(w, validBytes);
        WriteArray(w, expect.contiguous());
        // raw rows for the block quantizer (KIVI): block 0's G tokens and up to 5 more (shifted to the front)
        int qlen = c.Mode != KvQuantMode.VidKv && c.NB > 0 ? Math.Min(T, c.G + 5) : 0;
        w.Write(qlen);
        WriteArray(w, qlen > 0 ? keys.narrow(2, 0, qlen) : null);
        WriteArray(w, qlen > 0 ? values.narrow(2, 0, qlen) : null);
        foreach (var blk in blocks) blk.Dispose();
    }

    [Fact]
    public void SplitKernelMatchesFloat64AttentionOverTheDequantizedCache()
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-kv-attention").FullName;
        try
        {
            var results = new List<string>();
            // one program per (mode, head dimension): both are compile-time constants of the kernel
            // VidKV twice: the staged kernel's trit bytes through the table and through integer arithmetic (KVA_TRIT_ALU)
            foreach (var (group, tritAlu) in Cases.GroupBy(c => (c.Mode, c.D))
                .SelectMany(g => g.Key.Mode == KvQuantMode.VidKv ? new[] { (g, false), (g, true) } : new[] { (g, false) }))
            {
                string name = $"kva_{QuantizedOps.KvCode(group.Key.Mode)}_{group.Key.D}{(tritAlu ? "_alu" : "")}";
                var source = string.Join("\n", $"#define MIX_KV {QuantizedOps.KvCode(group.Key.Mode)}\n#define KVA_D {group.Key.D}",
                    tritAlu ? "#define KVA_TRIT_ALU 1" : "",
                    Emulation, FusedKernelSources.Prelude, KvAttentionKernelSources.Source, KvAttentionKernelSources.Staged, Harness);
                File.WriteAllText(Path.Combine(dir, name + ".cpp"), source);
                using (var f = File.Create(Path.Combine(dir, name + ".bin")))
                using (var w = new BinaryWriter(f))
                {
                    w.Write(group.Count());
                    foreach (var c in group) WriteCase(w, c);
                }
                var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, $"-std=c++20 -O1 -pthread -w {name}.cpp -o {name}", dir);
                Assert.True(cc == 0, $"{name}: the emulated kernel source does not compile:\n{compileOutput}");
                var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, name), name + ".bin", dir);
                Assert.True(rc == 0, $"{name}: {output}");
                var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(group.Count(), lines.Length);
                foreach (var (line, c) in lines.Zip(group))
                {
                    var parts = line.Split(' ');
                    int qi = Array.IndexOf(parts, "quant");
                    if (c.Mode != KvQuantMode.VidKv && c.NB > 0)
                    {
                        Assert.True(qi > 0, $"{c}: the block quantizer was not checked: {line}");
                        double offFraction = double.Parse(parts[qi + 1], CultureInfo.InvariantCulture);
                        int worst = int.Parse(parts[qi + 2], CultureInfo.InvariantCulture), ulp = int.Parse(parts[qi + 3], CultureInfo.InvariantCulture);
                        double shift = double.Parse(parts[qi + 4], CultureInfo.InvariantCulture);
                        results.Add($"{c}: quantizer codes off {offFraction:P3} (by ≤ {worst}), scales ≤ {ulp} f16 ulp, shift of {parts[qi + 5]} rows err {shift}");
                        Assert.True(offFraction <= 0.005 && worst <= 1 && ulp <= 1, $"{c}: block quantizer vs KvQuantizer: {line}");
                        Assert.Equal(0.0, shift);
                    }
                    double err = double.Parse(parts[1], CultureInfo.InvariantCulture);
                    double mag = double.Parse(parts[2], CultureInfo.InvariantCulture);
                    results.Add($"{c}: max err {err:G3} (|ref| ≤ {mag:G3}, {parts[3]} splits)");
                    Assert.True(err <= 2e-5 * (1 + mag), $"{c}: max |error| {err} vs max |reference| {mag}");
                    int si = Array.IndexOf(parts, "staged");
                    Assert.True(si > 0, $"{c}: the staged kernel did not run: {line}");
                    double err3 = double.Parse(parts[si + 1], CultureInfo.InvariantCulture);
                    results.Add($"{c}{(tritAlu ? " (trits by arithmetic)" : "")}: staged kernel max err {err3:G3} ({parts[si + 2]} blocks per head)");
                    Assert.True(err3 <= 2e-5 * (1 + mag), $"{c}: staged kernel max |error| {err3} vs max |reference| {mag}");
                    Assert.True(parts[si + 3] == "0", $"{c}: the staged kernel left its arrival counters at {parts[si + 3]}");
                    Assert.True(mag > 0.05, $"{c}: the reference output is degenerate ({mag})");
                }
            }
            TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", results));
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("MIX_KEEP_EMULATION") is null) Directory.Delete(dir, recursive: true);
        }
    }
}
