using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using Mix.Tests.Shared;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// The tensor-core quantized linear's CUDA source (<see cref="QuantGemmKernelSources"/>) compiled as C++ with the CUDA
/// built-ins emulated: cooperative CUDA threads (<see cref="CudaThreadEmulation"/>), barriers for <c>__syncthreads</c>, warp shuffles and the
/// <c>mma.sync.m16n8k16</c> collective. The mma is emulated from the PTX ISA's fragment layouts (A: rows g, g+8 and
/// columns 2t, 2t+1, +8; B: rows 2t, 2t+1, +8 of column g; C: rows g, g+8, columns 2t, 2t+1, with g = lane/4,
/// t = lane%4), independently of how the kernel stages its fragments, and the packed half-precision FMAs round to
/// nearest even like the hardware. The weights are the layer's real codes repacked by <see cref="QuantizedGemm"/> (the
/// C# the runtime uses), and the harness compares against float64 over the original (unpacked) codes, scales and
/// zeros. Cases: int4 (groups 32, 64, 128, 256) and int8, float16 and bfloat16, M = 1, 3, 5, 16, 17, 33, 40, 64, odd N,
/// K not a multiple of the chunk (and odd K for int8: the staging's scalar path, as for x off a 16-byte boundary), split-K on (2–9 splits: the final sum takes the splits 4 at a time, checked again on a second launch so the
/// split counters are seen to reset) and off, AWQ input scale and bias. Bounds on the relative L2 error: 6e-3
/// (bfloat16), 1.5e-3 (float16) — output and weight rounding; a layout error is O(1). Also every int4 (code, zero)
/// pair and every int8 code through the dequantization helpers, exactly. Needs g++ (C++20); skipped without it.
/// </summary>
public class QuantGemmKernelEmulationTests
{
    private const string Emulation = CudaThreadEmulation.Header + """
#include <cstring>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <vector>
#include <cstdio>
using std::min;
#define __device__
#define __forceinline__ inline
#define __global__
#define __restrict__
#define __launch_bounds__(x)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct alignas(16) uint4 { unsigned x, y, z, w; };
static uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{ x, y, z, w }; }
struct alignas(16) float4 { float x, y, z, w; };
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx; D3 blockIdx, blockDim, gridDim;
static mix_barrier* block_barrier;
static unsigned shuffle_slots[1024];
static unsigned emu_a[1024][4], emu_b[1024][2];
template <class T> static T __ldg(const T* p) { return *p; }
template <class T> static T __ldcg(const T* p) { return *p; }
static float4 make_float4(float x, float y, float z, float w) { return float4{ x, y, z, w }; }
static inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
template <class T> static T __shfl_down_sync(unsigned, T v, int) { return v; }  // the prelude's (unused here)
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static void __threadfence() {}
// cp.async copies at once here (the kernel's waits and barriers are what the GPU needs; the emulation checks layout)
static void emu_cp16(unsigned* dst, const void* src, int n) { unsigned char b[16] = {}; std::memcpy(b, src, n); std::memcpy(dst, b, 16); }
static unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
static unsigned __shfl_sync(unsigned, unsigned v, int src) {
  shuffle_slots[threadIdx.x] = v; block_barrier->arrive_and_wait();
  unsigned r = shuffle_slots[(threadIdx.x & ~31u) | (unsigned)(src & 31)]; block_barrier->arrive_and_wait(); return r;
}
static unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned long long v = ((unsigned long long)y << 32) | x; unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
}
static float emu_h2f(unsigned short h) {
  unsigned e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp((float)(m | 1024), (int)e - 25);
  return (h & 0x8000) ? -v : v;
}
static unsigned short emu_f2h(float f) {
  unsigned short sign = (__float_as_uint(f) >> 16) & 0x8000;
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7E00;
  if (a >= 65520.0f) return sign | 0x7C00;
  if (a < std::ldexp(1.0f, -14)) return sign | (unsigned short)std::nearbyint(a * 16777216.0f);
  int e; std::frexp(a, &e);
  float q = std::nearbyint(std::ldexp(a, 11 - e));
  int E = e - 1;
  if (q >= 2048.0f) { q *= 0.5f; E++; }
  if (E > 15) return sign | 0x7C00;
  return sign | (unsigned short)(((E + 15) << 10) | ((int)q - 1024));
}
static unsigned short emu_f2bf(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
#if MIX_T == 2
static double emu_half(unsigned h) { return __uint_as_float((h & 0xFFFFu) << 16); }
static unsigned emu_round(double v) { return emu_f2bf((float)v); }
#else
static double emu_half(unsigned h) { return emu_h2f((unsigned short)(h & 0xFFFFu)); }
static unsigned emu_round(double v) { return emu_f2h((float)v); }
#endif
static unsigned emu_fma2(unsigned a, unsigned b, unsigned c) {
  unsigned r = 0;
  for (int i = 0; i < 2; i++) r |= emu_round(emu_half(a >> (16 * i)) * emu_half(b >> (16 * i)) + emu_half(c >> (16 * i))) << (16 * i);
  return r;
}
// the warp publishes its fragments; every lane computes its four accumulators from the PTX ISA's m16n8k16 layouts
static void emu_mma(float (&c)[4], const uint4& a, unsigned b0, unsigned b1) {
  const unsigned tid = threadIdx.x, base = tid & ~31u, lane = tid & 31u;
  emu_a[tid][0] = a.x; emu_a[tid][1] = a.y; emu_a[tid][2] = a.z; emu_a[tid][3] = a.w;
  emu_b[tid][0] = b0; emu_b[tid][1] = b1;
  block_barrier->arrive_and_wait();
  const unsigned g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; i++) {
    const unsigned row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    double sum = 0;
    for (unsigned k = 0; k < 16; k++) {
      // A(row, k): lane 4·(row % 8) + (k % 8)/2, register (row / 8) + 2·(k / 8), half k % 2
      const unsigned ar = emu_a[base + 4 * (row & 7) + ((k & 7) >> 1)][(row >> 3) + 2 * (k >> 3)];
      // B(k, col): lane 4·col + (k % 8)/2, register k / 8, half k % 2
      const unsigned br = emu_b[base + 4 * col + ((k & 7) >> 1)][k >> 3];
      sum += emu_half(ar >> (16 * (k & 1))) * emu_half(br >> (16 * (k & 1)));
    }
    c[i] = (float)((double)c[i] + sum);
  }
  block_barrier->arrive_and_wait();
}
// ldmatrix.x4 (b16, not transposed): lanes 8j … 8j + 7 give the row addresses of matrix j (8 rows of 16 bytes);
// register j of lane l is matrix j's row l / 4, 32-bit word l % 4 (the PTX ISA's layout)
static const unsigned* emu_rows[1024];
static uint4 emu_ldmatrix_x4(const unsigned* p) {
  const unsigned tid = threadIdx.x, base = tid & ~31u, lane = tid & 31u;
  emu_rows[tid] = p;
  block_barrier->arrive_and_wait();
  unsigned r[4];
  for (unsigned j = 0; j < 4; j++) r[j] = emu_rows[base + 8 * j + lane / 4][lane % 4];
  block_barrier->arrive_and_wait();
  return uint4{ r[0], r[1], r[2], r[3] };
}
template <class F> static void launch(D3 grid, unsigned threads, F body) {
  blockDim = { threads, 1, 1 }; gridDim = grid;
  for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
    blockIdx = { x, y, z };
    mix_barrier b((std::ptrdiff_t)threads); block_barrier = &b;
    mix_fibers fs;
    for (unsigned t = 0; t < threads; t++) fs.spawn([t] { threadIdx = { t, 0, 0 }; }, body);
    fs.run();
  }
}
""";

    private const string Harness = """
template <class T> static std::vector<T> take(FILE* f, size_t n) {
  std::vector<T> v(n);
  if (n && fread(v.data(), sizeof(T), n, f) != n) { printf("short read\n"); exit(2); }
  return v;
}

static void run(int MT, int GPC, D3 grid, const io_t* x, const float* is, const uint4* codes, const unsigned* sz, const float* chs,
                const float* bias, io_t* y, float* partial, unsigned* counters, int M, int K, int N, int Np, int CH, int G, int group, int S) {
#define QM_RUN(mt, gpc) if (MT == mt && GPC == gpc) { launch(grid, 128, [&] { qgemm_body<mt, gpc>(x, is, codes, sz, chs, bias, y, partial, counters, M, K, N, Np, CH, G, group, S); }); return; }
  QM_RUN(1, 1) QM_RUN(2, 1) QM_RUN(4, 1)
#if MIX_QMODE == 1
  QM_RUN(1, 2) QM_RUN(2, 2) QM_RUN(4, 2) QM_RUN(1, 4) QM_RUN(2, 4) QM_RUN(4, 4)
#endif
  printf("no entry for MT %d GPC %d\n", MT, GPC); exit(3);
}

static double to_d(io_t v) {
#if MIX_T == 2
  return __uint_as_float((unsigned)v << 16);
#else
  return emu_h2f(v);
#endif
}

// one case file: header, x, input scale, bias, the original codes/scales/zeros, the repacked codes, sz or channel scales
static void one(const char* path) {
  FILE* f = fopen(path, "rb");
  auto h = take<int>(f, 16);
  const int mode = h[0], M = h[1], K = h[2], N = h[3], group = h[4], Np = h[5], CH = h[7], G = h[8], S = h[9], MT = h[10], GPC = h[11];
  const int hasBias = h[12], hasIs = h[13], Gr = h[14], shifted = h[15];
  // shifted: x one element past a 16-byte boundary (the staging's scalar path)
  auto xbuf = take<io_t>(f, (size_t)M * K);
  std::vector<io_t> xv(xbuf.size() + 8);
  std::memcpy(xv.data() + (shifted ? 1 : 0), xbuf.data(), xbuf.size() * sizeof(io_t));
  const io_t* xp = xv.data() + (shifted ? 1 : 0);
  auto is = take<float>(f, hasIs ? K : 0);
  auto bias = take<float>(f, hasBias ? N : 0);
  auto qw = take<unsigned char>(f, mode == 1 ? (size_t)N * (K / 2) : (size_t)N * K);
  auto sc = take<float>(f, mode == 1 ? (size_t)N * Gr : (size_t)N);
  auto zr = take<unsigned char>(f, mode == 1 ? (size_t)N * Gr : 0);
  auto codes = take<uint4>(f, (size_t)(Np / 8) * CH * 32);
  auto sz = take<unsigned>(f, mode == 1 ? (size_t)(Np / 8) * G * 8 : 0);
  auto chs = take<float>(f, mode == 1 ? 0 : (size_t)Np);
  fclose(f);
  const int guard = 64;
  std::vector<io_t> y((size_t)M * N + guard, (io_t)0xABCD);
  std::vector<float> partial((size_t)S * M * Np + guard, 12345.0f);
  std::vector<unsigned> counters(Np / 128, 0u);
  D3 grid = { (unsigned)(Np / 128), (unsigned)S, 1 };
  run(MT, GPC, grid, xp, hasIs ? is.data() : nullptr, codes.data(), mode == 1 ? sz.data() : nullptr, mode == 1 ? nullptr : chs.data(),
      hasBias ? bias.data() : nullptr, y.data(), S > 1 ? partial.data() : nullptr, counters.data(), M, K, N, Np, CH, G, group, S);
  bool guards = true;
  for (int i = 0; i < guard; i++) guards = guards && y[(size_t)M * N + i] == (io_t)0xABCD && partial[(size_t)S * M * Np + i] == 12345.0f;
  bool reset = true;
  for (unsigned c : counters) reset = reset && c == 0;
  bool again = true;
  if (S > 1) {
    std::vector<io_t> y2((size_t)M * N + guard, (io_t)0xABCD);
    run(MT, GPC, grid, xp, hasIs ? is.data() : nullptr, codes.data(), mode == 1 ? sz.data() : nullptr, mode == 1 ? nullptr : chs.data(),
        hasBias ? bias.data() : nullptr, y2.data(), partial.data(), counters.data(), M, K, N, Np, CH, G, group, S);
    again = std::memcmp(y.data(), y2.data(), y.size() * sizeof(io_t)) == 0;
  }
  double num = 0, den = 0;
  for (int r = 0; r < M; r++)
    for (int n = 0; n < N; n++) {
      double want = hasBias ? bias[n] : 0.0;
      for (int k = 0; k < K; k++) {
        double w;
        if (mode == 1) {
          const int q = (qw[(size_t)n * (K / 2) + k / 2] >> (4 * (k & 1))) & 15, gi = k / group;
          w = (q - (double)zr[(size_t)n * Gr + gi]) * sc[(size_t)n * Gr + gi];
        } else {
          w = (double)(signed char)qw[(size_t)n * K + k] * sc[n];
        }
        want += to_d(xbuf[(size_t)r * K + k]) * (hasIs ? is[k] : 1.0) * w;
      }
      const double got = to_d(y[(size_t)r * N + n]);
      num += (got - want) * (got - want);
      den += want * want;
    }
  printf("%s %.6g %d %d %d %.6g\n", path, std::sqrt(num / (den > 0 ? den : 1)), guards ? 1 : 0, reset ? 1 : 0, again ? 1 : 0, std::sqrt(den));
}

// every code through the dequantization helpers: exact integers (scale 1)
static void dequant_check() {
  int bad = 0;
#if MIX_T == 2
  const unsigned one = 0x3F80u;
#else
  const unsigned one = 0x3C00u;
#endif
  for (unsigned z = 0; z < 16; z++)
    for (unsigned q = 0; q < 16; q++) {
      // nibble p holds (q + p) % 16: checks the (j, j + 4) pairing too
      unsigned w = 0;
      for (unsigned p = 0; p < 8; p++) w |= ((q + p) & 15u) << (4 * p);
      unsigned r[4];
      qm_dq4(w, (one << 16) | z, 0, r[0], r[1]);
      qm_dq4(w, (one << 16) | z, 1, r[2], r[3]);
      for (int j = 0; j < 4; j++) {
        const double lo = emu_half(r[j]), hi = emu_half(r[j] >> 16);
        if (lo != (double)(int)(((q + j) & 15u) - z) || hi != (double)(int)(((q + j + 4) & 15u) - z)) bad++;
      }
    }
  for (unsigned u = 0; u < 256; u++) {
    const unsigned w = u | ((u + 1) & 255u) << 8 | ((u + 2) & 255u) << 16 | ((u + 3) & 255u) << 24;
    unsigned r0, r1;
    qm_dq8(w, r0, r1);
    const double want[4] = { (double)((int)u - 128), (double)((int)((u + 1) & 255u) - 128), (double)((int)((u + 2) & 255u) - 128), (double)((int)((u + 3) & 255u) - 128) };
    if (emu_half(r0) != want[0] || emu_half(r0 >> 16) != want[1] || emu_half(r1) != want[2] || emu_half(r1 >> 16) != want[3]) bad++;
  }
  printf("dequant %d\n", bad);
}

int main(int argc, char** argv) {
  dequant_check();
  for (int i = 1; i < argc; i++) one(argv[i]);
  return 0;
}
""";

    /// <summary>The prelude's float16 conversions are PTX: the emulation swaps in its own (each must be found).</summary>
    private static string EmulatedPrelude()
    {
        var p = FusedKernelSources.Prelude;
        var toF = new Regex(@"asm\(""cvt\.f32\.f16 %0, %1;"" : ""=f""\((\w+)\) : ""h""\((\w+)\)\)");
        var fromF = new Regex(@"asm\(""cvt\.rn\.f16\.f32 %0, %1;"" : ""=h""\((\w+)\) : ""f""\((\w+)\)\)");
        Assert.True(toF.IsMatch(p) && fromF.IsMatch(p), "the prelude's float16 conversions changed: update the emulation");
        p = toF.Replace(p, "$1 = emu_h2f($2)");
        return fromF.Replace(p, "$1 = emu_f2h($2)");
    }

    private static void Put(BinaryWriter w, Tensor t) => w.Write(t.contiguous().bytes);

    /// <summary>Writes one case: a quantized random layer, its repacked tensors, x in the activation dtype.</summary>
    private static void WriteCase(string path, bool int4, ScalarType dt, int group, int M, int K, int N, int splits, bool awq, bool hasBias, bool shifted)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(M * 7919 + K * 31 + N + group);
        var weight = torch.randn(N, K) * 0.05;
        var bias = hasBias ? torch.randn(N) * 0.1 : null;
        var s = awq ? torch.rand(K) + 0.5 : null;
        var mode = int4 ? WeightQuantMode.Int4Grouped : WeightQuantMode.Int8PerChannel;
        var q = QuantizedLinear.FromWeight(weight, bias, mode, int4 ? group : 128, s, keepInputScale: awq);
        var x = torch.randn(M, K).to_type(dt);
        long np = QuantizedGemm.PadN(N), chunks = QuantizedGemm.PadK(K, int4) / QuantGemmKernelSources.ChunkK(int4);
        var plan = QuantizedGemm.MakePlan(int4, group, M, np, chunks, sms: 132, splits: splits);
        Assert.Equal(splits, plan.Splits);
        long groups = int4 ? (QuantizedGemm.PadK(K, true) + group - 1) / group : 0;
        using var f = File.Create(path);
        using var w = new BinaryWriter(f);
        foreach (var v in new long[] { int4 ? 1 : 0, M, K, N, int4 ? group : 1, np, QuantizedGemm.PadK(K, int4), chunks, groups, plan.Splits,
                     plan.MTiles, plan.GroupsPerChunk, hasBias ? 1 : 0, awq ? 1 : 0, int4 ? K / group : 0, shifted ? 1 : 0 })
            w.Write((int)v);
        Put(w, x);
        if (awq) Put(w, q.InputScale!);
        if (hasBias) Put(w, q.Bias!.to_type(ScalarType.Float32));
        Put(w, q.QWeight);
        Put(w, q.Scales);
        if (int4) Put(w, q.Zeros!);
        Put(w, int4 ? QuantizedGemm.RepackInt4(q.QWeight, N, K) : QuantizedGemm.RepackInt8(q.QWeight, N, K));
        if (int4) Put(w, QuantizedGemm.RepackGroups(q.Scales, q.Zeros!, N, K, group, dt));
        else Put(w, QuantizedGemm.PadChannelScales(q.Scales, N));
    }

    // mode, group, M, K, N, splits, AWQ input scale, bias, x off a 16-byte boundary
    private static readonly (bool int4, int group, int M, int K, int N, int splits, bool awq, bool bias, bool shifted)[] Cases =
    {
        (true, 128, 1, 256, 7, 1, false, false, false),
        (true, 64, 3, 384, 130, 2, false, true, false),
        (true, 32, 16, 512, 33, 4, true, true, false),
        (true, 128, 33, 256, 129, 1, false, false, false),
        (true, 128, 64, 640, 45, 3, false, true, false),
        (true, 256, 17, 1280, 20, 1, false, false, false),
        (true, 64, 5, 192, 9, 1, true, false, false),
        (true, 128, 64, 1536, 33, 2, true, false, true),
        (true, 32, 1, 2048, 129, 3, false, true, true),
        (true, 128, 12, 2048, 129, 9, true, true, false),
        (false, 0, 1, 200, 7, 1, false, false, false),
        (false, 0, 3, 37, 29, 1, false, true, false),
        (false, 0, 16, 1000, 77, 4, true, true, false),
        (false, 0, 40, 256, 130, 2, false, false, false),
        (false, 0, 64, 128, 8, 1, false, true, false),
        (false, 0, 17, 145, 31, 2, true, false, false),
        (false, 0, 33, 1152, 9, 1, true, true, false),
        (false, 0, 64, 640, 129, 3, false, true, true),
        (false, 0, 7, 1024, 200, 6, false, true, false),
    };

    [Theory]
    [InlineData("bf16", true, 0, 2)]
    [InlineData("f16", true, 0, 2)]
    [InlineData("bf16", true, 2, 3)]
    [InlineData("f16", true, 2, 3)]
    [InlineData("bf16", false, 0, 2)]
    [InlineData("f16", false, 0, 3)]
    public void KernelMatchesFloat64WhenEmulated(string dtype, bool int4, int fscale, int ring) =>
        RunEmulation(dtype, int4, fscale, ring, Cases.Where(c => c.int4 == int4).ToArray());

    /// <summary>
    /// Every row count 1…64 for every build (so every m16 tiling and every row count within a tile), with the group size, N (odd and
    /// not), K (with and without a chunk tail), split-K and AWQ varying along the sweep: int4 with the default
    /// dequantization and with the fp32 group scale (<see cref="QuantizedGemm.Int4ScaleInAccumulator"/>), and int8;
    /// with the default weight ring and the opt-in deeper one for more than 16 rows (<see cref="QuantizedGemm.RingForManyRows"/>).
    /// </summary>
    [Theory]
    [InlineData("bf16", true, 0, 2)]
    [InlineData("f16", true, 2, 3)]
    [InlineData("bf16", true, 2, 3)]
    [InlineData("f16", false, 0, 2)]
    [InlineData("bf16", false, 0, 3)]
    public void EveryRowCountMatchesFloat64WhenEmulated(string dtype, bool int4, int fscale, int ring)
    {
        int[] groups = { 128, 32, 256, 64 }, ns = { 7, 129, 33, 8 }, ks = { 256, 384, 200, 512 };
        var cases = Enumerable.Range(1, 64).Select(m =>
        {
            int group = groups[m % 4], n = ns[(m / 4) % 4];
            // int4 K a multiple of the group (a tail of a chunk where the group is smaller); int8 any K
            int k = int4 ? (group > 128 ? 512 : ks[(m / 2) % 4] / group * group) : ks[(m / 2) % 4] + (m % 3);
            long chunks = QuantizedGemm.PadK(k, int4) / QuantGemmKernelSources.ChunkK(int4);
            int splits = (int)Math.Min(1 + m % 3, chunks);
            return (int4, int4 ? group : 0, m, k, n, splits, m % 3 == 0, m % 2 == 1, m % 7 == 0);
        }).ToArray();
        RunEmulation(dtype, int4, fscale, ring, cases);
    }

    private static void RunEmulation(string dtype, bool int4, int fscale, int ring,
        (bool int4, int group, int M, int K, int N, int splits, bool awq, bool bias, bool shifted)[] cases)
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dt = dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float16;
        var dir = Directory.CreateTempSubdirectory("mix-qgemm").FullName;
        try
        {
            var source = string.Join("\n", Emulation, EmulatedPrelude(), QuantGemmKernelSources.Source, Harness);
            File.WriteAllText(Path.Combine(dir, "qgemm.cpp"), source);
            var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, $"-std=c++20 -O1 -pthread -w -DMIX_T={(dtype == "bf16" ? 2 : 1)} -DMIX_QMODE={(int4 ? 1 : 0)} -DMIX_QM_FSCALE={fscale} -DMIX_QM_RING={ring} qgemm.cpp -o qgemm", dir);
            Assert.True(cc == 0, "the emulated kernel source does not compile:\n" + compileOutput);
            var files = new List<string>();
            foreach (var c in cases)
            {
                var name = $"m{c.M}_k{c.K}_n{c.N}_g{c.group}_s{c.splits}{(c.shifted ? "_x1" : "")}.bin";
                WriteCase(Path.Combine(dir, name), int4, dt, c.group, c.M, c.K, c.N, c.splits, c.awq, c.bias, c.shifted);
                files.Add(name);
            }
            var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, "qgemm"), string.Join(" ", files), dir);
            Assert.True(rc == 0, output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("dequant 0", lines[0]);
            Assert.Equal(files.Count + 1, lines.Length);
            double bound = dt == ScalarType.BFloat16 ? 6e-3 : 1.5e-3;
            foreach (var line in lines.Skip(1))
            {
                var p = line.Split(' ');
                double err = double.Parse(p[1], CultureInfo.InvariantCulture);
                Assert.True(err <= bound, $"{p[0]}: relative L2 error {err} > {bound}");
                Assert.True(p[2] == "1", $"{p[0]}: the kernel wrote outside y or the partial buffer");
                Assert.True(p[3] == "1", $"{p[0]}: a split-K counter was not reset");
                Assert.True(p[4] == "1", $"{p[0]}: a second launch gave a different result");
                Assert.True(double.Parse(p[5], CultureInfo.InvariantCulture) > 0, $"{p[0]}: the reference is zero");
            }
        }
        finally
        {
            // MIX_KEEP_EMULATION=1 keeps the generated source and cases for debugging
            if (Environment.GetEnvironmentVariable("MIX_KEEP_EMULATION") != "1") Directory.Delete(dir, recursive: true);
            else Console.Error.WriteLine("emulation kept in " + dir);
        }
    }

    /// <summary>
    /// Split-K: about two blocks per SM for few rows, fewer splits as M grows (the fp32 partials are M × N per split),
    /// never more splits than half the chunks, at least one.
    /// </summary>
    [Fact]
    public void PlanSplitsLessAsRowsGrow()
    {
        // 4096→11008 int4 on 132 SMs: 86 block columns, 32 chunks
        var few = QuantizedGemm.MakePlan(true, 128, 1, 11008, 32, 132);
        Assert.Equal((1, 1, 4, 86), (few.MTiles, few.GroupsPerChunk, few.Splits, few.BlockColumns));
        // 4096→4096: 32 columns want 9 splits; the partial-size cap takes over from M = 32
        int[] splits = new[] { 1, 16, 17, 32, 33, 64 }.Select(m => QuantizedGemm.MakePlan(false, 0, m, 4096, 64, 132).Splits).ToArray();
        Assert.Equal(new[] { 9, 9, 9, 8, 7, 4 }, splits);
        Assert.Equal(new[] { 1, 1, 2, 2, 4, 4 }, new[] { 1, 16, 17, 32, 33, 64 }.Select(m => QuantizedGemm.MakePlan(false, 0, m, 4096, 64, 132).MTiles));
        Assert.Equal(1, QuantizedGemm.MakePlan(true, 32, 64, 128, 1, 132).Splits);
        Assert.Equal(4, QuantizedGemm.MakePlan(true, 32, 1, 128, 1, 132).GroupsPerChunk);
        Assert.Equal(3, QuantizedGemm.MakePlan(true, 128, 64, 4096, 32, 132, splits: 3).Splits);
        // the opt-in wide plan: from 33 rows about two blocks per SM again (4096→4096 int4: 32 columns, 9 splits), up to
        // 32 rows unchanged
        Assert.Equal(new[] { 9, 9, 9, 8, 9, 9 }, new[] { 1, 16, 17, 32, 33, 64 }.Select(m => QuantizedGemm.MakePlan(true, 128, m, 4096, 32, 132, wide: true).Splits));
        Assert.Equal(4, QuantizedGemm.MakePlan(true, 128, 64, 4096, 32, 132).Splits);
    }

    /// <summary>
    /// The repacked codes read back with the index arithmetic of the kernel's fragments (written out here per element,
    /// independently of the tensor reshapes that build them) equal the original codes, padding included; likewise the
    /// int4 scale/zero words.
    /// </summary>
    [Theory]
    [InlineData(true, 64, 37, 320)]
    [InlineData(true, 128, 8, 128)]
    [InlineData(false, 0, 29, 200)]
    [InlineData(false, 0, 130, 64)]
    public void RepackRoundTrips(bool int4, int group, int N, int K)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(N + K);
        var q = QuantizedLinear.FromWeight(torch.randn(N, K), null, int4 ? WeightQuantMode.Int4Grouped : WeightQuantMode.Int8PerChannel, int4 ? group : 128);
        var codes = (int4 ? QuantizedGemm.RepackInt4(q.QWeight, N, K) : QuantizedGemm.RepackInt8(q.QWeight, N, K));
        long np = QuantizedGemm.PadN(N), kp = QuantizedGemm.PadK(K, int4), ck = QuantGemmKernelSources.ChunkK(int4), ch = kp / ck;
        Assert.Equal(new[] { np / 8, ch, 32, 4 }, codes.shape);
        var words = codes.data<int>().ToArray();
        var orig = int4 ? q.QWeight.data<byte>().ToArray() : q.QWeight.data<sbyte>().Select(b => (byte)b).ToArray();
        int mismatches = 0;
        for (long n = 0; n < np; n++)
            for (long k = 0; k < kp; k++)
            {
                long nt = n / 8, g = n % 8, c = k / ck, within = k % ck, step = within / 16, kk = within % 16;
                long kh = kk / 8, t = (kk % 8) / 2, e = kk % 2, lane = g * 4 + t;
                uint word;
                int got, want;
                if (int4)
                {
                    long j = step / 2, h = step % 2, nibble = 2 * h + kh + 4 * e;
                    word = (uint)words[((nt * ch + c) * 32 + lane) * 4 + j];
                    got = (int)((word >> (int)(4 * nibble)) & 15);
                    want = n < N && k < K ? (orig[n * (K / 2) + k / 2] >> (int)(4 * (k & 1))) & 15 : 0;
                }
                else
                {
                    long b = 2 * kh + e;
                    word = (uint)words[((nt * ch + c) * 32 + lane) * 4 + step];
                    got = (int)((word >> (int)(8 * b)) & 255) - 128;
                    want = n < N && k < K ? (sbyte)orig[n * K + k] : 0;
                }
                if (got != want) mismatches++;
            }
        Assert.Equal(0, mismatches);
        if (!int4) return;
        long gp = (kp + group - 1) / group;
        var sz = QuantizedGemm.RepackGroups(q.Scales, q.Zeros!, N, K, group, ScalarType.BFloat16);
        Assert.Equal(new[] { np / 8, gp, 8 }, sz.shape);
        var szw = sz.data<int>().ToArray();
        var scales = q.Scales.data<float>().ToArray();
        var zeros = q.Zeros!.data<byte>().ToArray();
        for (long n = 0; n < np; n++)
            for (long gi = 0; gi < gp; gi++)
            {
                uint v = (uint)szw[((n / 8) * gp + gi) * 8 + n % 8];
                bool real = n < N && gi < K / group;
                Assert.Equal(real ? zeros[n * (K / group) + gi] : 0, (int)(v & 0xFF));
                float s = BitConverter.Int32BitsToSingle((int)(v & 0xFFFF0000u));
                float want = real ? scales[n * (K / group) + gi] : 0f;
                Assert.InRange(Math.Abs(s - want), 0, Math.Abs(want) / 256 + 1e-30);
            }
    }
}
