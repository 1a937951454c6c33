using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Fused;
using Xunit;
using Mix.Tests.Shared;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The tensor-core kernels of <see cref="ChunkScanKernelSources"/> (chunk_state_ssd_tc / chunk_output_ssd_tc and
/// chunk_state_gla_tc / chunk_output_gla_tc, with chunk_state_pass between them, as <see cref="CudaScanKernels"/>
/// launches them for half precision) compiled as C++ with the
/// CUDA built-ins emulated: cooperative CUDA threads (<see cref="CudaThreadEmulation"/>), barriers for <c>__syncthreads</c>, shared arrays filled with
/// NaN bit patterns at each block's start (as a GPU's leftover shared memory, which a read before a write would expose), and
/// <c>mma.sync.m16n8k16</c> as a warp collective computed from the PTX ISA's fragment layouts (A: rows g, g+8 and
/// columns 2t, 2t+1, +8; B: rows 2t, 2t+1, +8 of column g; C: rows g, g+8, columns 2t, 2t+1; g = lane/4, t = lane%4),
/// independently of how the kernels stage their fragments. bfloat16 and float16 I/O (bit patterns and round-to-nearest
/// as the prelude's conversions), against the recurrence in double over the same rounded inputs: SSD (chunks of 256 in
/// row blocks of 64) over several chunks with a partial last one, groups, two value tiles, three key tiles, D skip,
/// silu(z) gate and an initial state; GLA (chunks of 64) with three key tiles,
/// an initial state, steep gates on a sequence shorter than a chunk, and the GLA LM's head (K 64, V 128). Bounds on the
/// relative L2 error: outputs 6e-3 (bfloat16) / 1e-3 (float16): the output's own rounding and the rounded scores and
/// entering state (measured 1.4e-3 .. 2.4e-3 / 2.8e-4); final state 2e-5 (measured ~2.5e-6: the weighted keys enter as a
/// rounded half plus its rounding error). A fragment-layout error is O(1). Needs g++ (C++20); skipped without it.
/// </summary>
public class ChunkScanTensorCoreEmulationTests
{
    private const string Emulation = CudaThreadEmulation.Header + """
#include <cstring>
#include <cmath>
#include <algorithm>
#include <vector>
#include <cstdio>
#include <random>
#include <cstdlib>
using std::min;
#define __device__
#define __forceinline__ inline
#define __global__
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
#define __expf expf
#define __align__(n) __attribute__((aligned(n)))
struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return { a, b, c, d }; }
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return { a, b, c, d }; }
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx; D3 blockIdx, blockDim, gridDim;
typedef unsigned short io_t;
static inline float bits_f(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned f_bits(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
#if MIX_T == 2
inline float to_f(io_t v) { return bits_f((unsigned)v << 16); }
inline io_t from_f(float f) {
  unsigned u = f_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (io_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (io_t)(u >> 16);
}
#else
inline float to_f(io_t v) { _Float16 h; std::memcpy(&h, &v, 2); return (float)h; }
inline io_t from_f(float f) { _Float16 h = (_Float16)f; io_t v; std::memcpy(&v, &h, 2); return v; }
#endif
inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
static mix_barrier* block_barrier;
static mix_barrier* warp_barriers[32];
static void __syncthreads() { block_barrier->arrive_and_wait(); }
// GPU shared memory holds whatever an earlier block left: each shared array is filled with 0xFF bytes (NaN as float,
// bfloat16 and float16) at every block's start (Poisoned), so that a read before a write shows as a non-finite result.
static void emu_poison(void* p, size_t n) {
  if (threadIdx.x == 0) std::memset(p, 0xFF, n);
  __syncthreads();
}
static unsigned emu_a[1024][4], emu_b[1024][2];
// the warp publishes its fragments; every lane computes its four accumulators from the PTX ISA's m16n8k16 layouts
static void emu_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  const unsigned tid = threadIdx.x, base = tid & ~31u, lane = tid & 31u;
  for (int i = 0; i < 4; i++) emu_a[tid][i] = a[i];
  emu_b[tid][0] = b0; emu_b[tid][1] = b1;
  warp_barriers[tid / 32]->arrive_and_wait();
  const unsigned g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; i++) {
    const unsigned row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    double sum = 0;
    for (unsigned k = 0; k < 16; k++) {
      const unsigned ar = emu_a[base + 4 * (row & 7) + ((k & 7) >> 1)][(row >> 3) + 2 * (k >> 3)];
      const unsigned br = emu_b[base + 4 * col + ((k & 7) >> 1)][k >> 3];
      sum += (double)to_f((io_t)(ar >> (16 * (k & 1)))) * to_f((io_t)(br >> (16 * (k & 1))));
    }
    c[i] = (float)((double)c[i] + sum);
  }
  warp_barriers[tid / 32]->arrive_and_wait();
}
template <class F> static void launch(D3 grid, unsigned threads, F body) {
  blockDim = { threads, 1, 1 }; gridDim = grid;
  for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
    blockIdx = { x, y, z };
    mix_barrier b((std::ptrdiff_t)threads); block_barrier = &b;
    std::vector<mix_barrier*> wb;
    for (unsigned w = 0; w < threads / 32; w++) { wb.push_back(new mix_barrier(32)); warp_barriers[w] = wb.back(); }
    mix_fibers fs;
    for (unsigned t = 0; t < threads; t++) fs.spawn([t] { threadIdx = { t, 0, 0 }; }, body);
    fs.run();
    for (auto* p : wb) delete p;
  }
}
""";

    private const string Harness = """
static std::mt19937 rng(7);
static int ceil_div(int a, int b) { return (a + b - 1) / b; }
// SSD through chunk_state_ssd_tc, chunk_state_pass, chunk_output_ssd_tc against the recurrence in double over the same
// (rounded) inputs: relative L2 errors of the outputs and of the final state.
static void ssd(const char* name, int B, int T, int H, int G, int K, int V, bool full) {
  int hpg = H / G, NC = ceil_div(T, CL);
  std::normal_distribution<float> nd(0, 1); std::uniform_real_distribution<float> ud(0, 1);
  std::vector<io_t> q(B * T * G * K), k(q.size()), v(B * T * H * V), z(v.size()), o(v.size());
  std::vector<float> dt(B * T * H), A(H), Dp(H * V), s0(B * H * K * V), sT(B * H * K * V, NAN),
      states((size_t)B * H * NC * K * V, NAN), decays((size_t)B * H * NC, NAN);
  for (auto& x : q) x = from_f(nd(rng) * 0.5f);
  for (auto& x : k) x = from_f(nd(rng) * 0.5f);
  for (auto& x : v) x = from_f(nd(rng));
  for (auto& x : z) x = from_f(nd(rng));
  for (auto& x : dt) x = full ? std::log1p(std::exp(nd(rng) - 1.0f)) : ud(rng) * 0.2f + 0.01f;
  for (auto& x : A) x = -ud(rng) * 2 - 0.1f;
  for (auto& x : Dp) x = nd(rng);
  for (auto& x : s0) x = nd(rng);
  for (auto& x : o) x = from_f(NAN);
  launch({ (unsigned)NC, (unsigned)(ceil_div(V, 64) * ceil_div(K, 64)), (unsigned)(B * H) }, 256, [&] {
    chunk_state_ssd_tc(k.data(), v.data(), dt.data(), A.data(), states.data(), decays.data(), T, H, hpg, K, V);
  });
  launch({ (unsigned)ceil_div(K * V, 256), (unsigned)(B * H), 1 }, 256, [&] {
    chunk_state_pass(states.data(), decays.data(), full ? s0.data() : nullptr, sT.data(), NC, K, V, 1);
  });
  launch({ (unsigned)(NC * (CL / 64)), (unsigned)ceil_div(V, 64), (unsigned)(B * H) }, 256, [&] {
    chunk_output_ssd_tc(q.data(), k.data(), v.data(), dt.data(), A.data(), full ? Dp.data() : nullptr, full ? z.data() : nullptr,
                        states.data(), o.data(), T, H, hpg, K, V);
  });
  double on = 0, oe = 0, sn = 0, se = 0;
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    int hq = h / hpg;
    std::vector<double> S(K * V);
    for (int i = 0; i < K * V; i++) S[i] = full ? s0[(b * H + h) * K * V + i] : 0.0;
    for (int t = 0; t < T; t++) {
      long row = (long)b * T + t;
      double d = dt[row * H + h], dec = std::exp(d * A[h]);
      for (int kk = 0; kk < K; kk++) for (int c = 0; c < V; c++)
        S[kk * V + c] = dec * S[kk * V + c] + (double)to_f(k[(row * G + hq) * K + kk]) * d * to_f(v[(row * H + h) * V + c]);
      for (int c = 0; c < V; c++) {
        double acc = 0;
        for (int kk = 0; kk < K; kk++) acc += (double)to_f(q[(row * G + hq) * K + kk]) * S[kk * V + c];
        long off = (row * H + h) * V + c;
        if (full) { acc += (double)Dp[h * V + c] * to_f(v[off]); double zz = to_f(z[off]); acc *= zz / (1 + std::exp(-zz)); }
        double got = to_f(o[off]);
        if (!std::isfinite(got)) { printf("%s nonfinite\n", name); return; }
        on += acc * acc; oe += (acc - got) * (acc - got);
      }
    }
    for (int i = 0; i < K * V; i++) { double got = sT[(b * H + h) * K * V + i]; sn += S[i] * S[i]; se += (S[i] - got) * (S[i] - got); }
  }
  printf("%s %.3g %.3g\n", name, std::sqrt(oe / on), std::sqrt(se / sn));
}

// GLA through chunk_state_gla_tc, chunk_state_pass, chunk_output_gla_tc against S_t = diag(exp g_t) S_{t-1} + k_t^T v_t,
// o_t = scale q_t S_t in double over the same rounded inputs (gates in [gLo, 0]).
static void gla(const char* name, int B, int T, int H, int K, int V, float scale, bool withState, float gLo) {
  int NC = ceil_div(T, CQ);
  std::uniform_real_distribution<float> ud(0, 1); std::normal_distribution<float> nd(0, 1);
  std::vector<io_t> q(B * T * H * K), k(q.size()), g(q.size()), v(B * T * H * V), o(v.size());
  std::vector<float> s0(B * H * K * V), sT(B * H * K * V, NAN), states((size_t)B * H * NC * K * V, NAN), decays((size_t)B * H * NC * K, NAN);
  for (auto& x : q) x = from_f(nd(rng));
  for (auto& x : k) x = from_f(nd(rng));
  for (auto& x : g) x = from_f(gLo * ud(rng));
  for (auto& x : v) x = from_f(nd(rng));
  for (auto& x : s0) x = nd(rng);
  for (auto& x : o) x = from_f(NAN);
  launch({ (unsigned)NC, (unsigned)(ceil_div(V, 64) * ceil_div(K, 64)), (unsigned)(B * H) }, 256, [&] {
    chunk_state_gla_tc(k.data(), v.data(), g.data(), states.data(), decays.data(), T, H, K, V);
  });
  launch({ (unsigned)ceil_div(K * V, 256), (unsigned)(B * H), 1 }, 256, [&] {
    chunk_state_pass(states.data(), decays.data(), withState ? s0.data() : nullptr, sT.data(), NC, K, V, 0);
  });
  launch({ (unsigned)NC, (unsigned)ceil_div(V, 64), (unsigned)(B * H) }, 256, [&] {
    chunk_output_gla_tc(q.data(), k.data(), v.data(), g.data(), states.data(), o.data(), T, H, K, V, scale);
  });
  double on = 0, oe = 0, sn = 0, se = 0;
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    std::vector<double> S(K * V);
    for (int i = 0; i < K * V; i++) S[i] = withState ? s0[(b * H + h) * K * V + i] : 0.0;
    for (int t = 0; t < T; t++) {
      long row = ((long)b * T + t) * H + h;
      for (int kk = 0; kk < K; kk++) for (int c = 0; c < V; c++)
        S[kk * V + c] = std::exp((double)to_f(g[row * K + kk])) * S[kk * V + c] + (double)to_f(k[row * K + kk]) * to_f(v[row * V + c]);
      for (int c = 0; c < V; c++) {
        double acc = 0;
        for (int kk = 0; kk < K; kk++) acc += (double)scale * to_f(q[row * K + kk]) * S[kk * V + c];
        double got = to_f(o[row * V + c]);
        if (!std::isfinite(got)) { printf("%s nonfinite\n", name); return; }
        on += acc * acc; oe += (acc - got) * (acc - got);
      }
    }
    for (int i = 0; i < K * V; i++) { double got = sT[(b * H + h) * K * V + i]; sn += S[i] * S[i]; se += (S[i] - got) * (S[i] - got); }
  }
  printf("%s %.3g %.3g\n", name, std::sqrt(oe / on), std::sqrt(se / sn));
}

// The second form: chunk_state_gla_tc2 (tile-major contributions), chunk_state_pass_t (entering states in the I/O
// type, [V, K]), chunk_output_gla_tc2, against the same recurrence; K and V multiples of 8. gMin < 0 adds a steep gate: every step of
// one key in [gMin, gMin / 2] (its in-chunk decays underflow).
static void gla2(const char* name, int B, int T, int H, int K, int V, float scale, bool withState, float gLo, float gMin = 0) {
  int NC = ceil_div(T, CQ);
  std::uniform_real_distribution<float> ud(0, 1); std::normal_distribution<float> nd(0, 1);
  std::vector<io_t> q(B * T * H * K), k(q.size()), g(q.size()), v(B * T * H * V), o(v.size());
  std::vector<io_t> sin((size_t)B * H * NC * K * V, from_f(NAN));
  int tiles = ceil_div(K * V, PT);
  std::vector<float> s0(B * H * K * V), sT(B * H * K * V, NAN), states((size_t)B * H * tiles * NC * PT, NAN), decays((size_t)B * H * NC * K, NAN);
  for (auto& x : q) x = from_f(nd(rng));
  for (auto& x : k) x = from_f(nd(rng));
  for (size_t i = 0; i < g.size(); i++) g[i] = from_f(gMin < 0 && i % K == 1 ? gMin * (0.5f + 0.5f * ud(rng)) : gLo * ud(rng));
  for (auto& x : v) x = from_f(nd(rng));
  for (auto& x : s0) x = nd(rng);
  for (auto& x : o) x = from_f(NAN);
  launch({ (unsigned)NC, (unsigned)(ceil_div(V, 128) * ceil_div(K, 64)), (unsigned)(B * H) }, 256, [&] {
    chunk_state_gla_tc2(k.data(), v.data(), g.data(), states.data(), decays.data(), T, H, K, V);
  });
  launch({ (unsigned)tiles, (unsigned)(B * H), 1 }, 256, [&] {
    chunk_state_pass_t(states.data(), decays.data(), withState ? s0.data() : nullptr, sT.data(), sin.data(), NC, K, V);
  });
  launch({ (unsigned)NC, (unsigned)ceil_div(V, 128), (unsigned)(B * H) }, 256, [&] {
    chunk_output_gla_tc2(q.data(), k.data(), v.data(), g.data(), sin.data(), o.data(), T, H, K, V, scale);
  });
  double on = 0, oe = 0, sn = 0, se = 0;
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    std::vector<double> S(K * V);
    for (int i = 0; i < K * V; i++) S[i] = withState ? s0[(b * H + h) * K * V + i] : 0.0;
    for (int t = 0; t < T; t++) {
      long row = ((long)b * T + t) * H + h;
      for (int kk = 0; kk < K; kk++) for (int c = 0; c < V; c++)
        S[kk * V + c] = std::exp((double)to_f(g[row * K + kk])) * S[kk * V + c] + (double)to_f(k[row * K + kk]) * to_f(v[row * V + c]);
      for (int c = 0; c < V; c++) {
        double acc = 0;
        for (int kk = 0; kk < K; kk++) acc += (double)scale * to_f(q[row * K + kk]) * S[kk * V + c];
        double got = to_f(o[row * V + c]);
        if (!std::isfinite(got)) { printf("%s nonfinite\n", name); return; }
        on += acc * acc; oe += (acc - got) * (acc - got);
      }
    }
    for (int i = 0; i < K * V; i++) { double got = sT[(b * H + h) * K * V + i]; sn += S[i] * S[i]; se += (S[i] - got) * (S[i] - got); }
  }
  printf("%s %.3g %.3g\n", name, std::sqrt(oe / on), std::sqrt(se / sn));
}

int main() {
  ssd("ssd-tc", 2, 300, 4, 2, 40, 70, true);        // 2 chunks of 256 (the last with 1 of 4 row blocks), groups, 2 value tiles, D, z, initial state
  ssd("ssd-tc-keys", 1, 150, 2, 1, 130, 16, false); // 3 key tiles, a partial chunk of 3 row blocks
  ssd("ssd-tc-mamba2", 1, 520, 1, 1, 128, 64, false); // Mamba-2's head sizes, 3 chunks
  gla("gla-tc", 2, 131, 2, 70, 33, 0.3f, true, -0.5f);  // 3 chunks, 3 key tiles of chunk_output, 2 of chunk_state, initial state
  gla("gla-tc-steep", 1, 5, 1, 8, 5, 0.5f, false, -3.0f);  // shorter than a chunk, steep gates
  gla("gla-tc-long", 1, 600, 1, 16, 16, 0.5f, true, -0.2f);  // 10 chunks: the state pass's 8-chunk batches
#if MIX_T == 2
  gla("gla-tc-lm", 1, 130, 1, 64, 128, 0.125f, false, -0.1f);  // the GLA LM's head sizes, two value tiles
  gla2("gla2-lm", 2, 131, 2, 64, 128, 0.125f, true, -0.1f);     // the GLA LM's heads, batch 2, 3 chunks (the last of 3 steps), initial state
  gla2("gla2-b1", 1, 64, 1, 64, 128, 0.125f, false, -0.5f);     // batch 1, exactly one chunk
  gla2("gla2-tiles", 1, 197, 3, 96, 136, 0.3f, true, -0.3f);    // partial key tile (96 = 3 x 32, 2 state tiles), 2 value tiles of 128 (the second of 8 columns)
  gla2("gla2-long", 1, 600, 1, 16, 16, 0.5f, true, -0.2f);      // 10 chunks: the pass's 8-chunk batches; K below one key tile
  gla2("gla2-steep", 1, 77, 1, 8, 8, 0.5f, false, -3.0f, -60.0f); // steep gates: one key's decays underflow inside a chunk
#endif
  return 0;
}
""";

    // The kernel source with emu_poison after every block-level shared declaration (each kernel declares its shared
    // arrays first, so every thread reaches the fills before any write).
    private static string Poisoned(string source)
    {
        var decl = new Regex(@"^\s*__shared__ (?:__align__\(\d+\) )?\w+ ([^;]+);");
        var lines = new List<string>();
        int arrays = 0;
        foreach (var line in source.Split('\n'))
        {
            lines.Add(line);
            var m = decl.Match(line);
            if (!m.Success) continue;
            foreach (var d in m.Groups[1].Value.Split(','))
            {
                var name = d.Trim().Split('[')[0];
                lines.Add($"  emu_poison({name}, sizeof({name}));");
                arrays++;
            }
        }
        Assert.True(arrays >= 20, $"found {arrays} shared arrays to poison");
        return string.Join("\n", lines);
    }

    [Theory]
    [InlineData(2, 6e-3, 12)]  // bfloat16
    [InlineData(1, 1e-3, 6)]   // float16
    public void TensorCoreKernelsMatchTheRecurrenceWhenEmulated(int dtype, double outputBound, int cases)
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-chunk-scan-tc-emulation").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tc.cpp"), string.Join("\n", Emulation, Poisoned(ChunkScanKernelSources.Source), Harness));
            var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, $"-std=c++20 -O1 -fno-strict-aliasing -pthread -w -DMIX_T={dtype} tc.cpp -o tc", dir);
            Assert.True(cc == 0, "the emulated kernel source does not compile:\n" + compileOutput);
            var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, "tc"), "", dir);
            Assert.True(rc == 0, output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(cases, lines.Length);
            foreach (var line in lines)
            {
                var parts = line.Split(' ');
                Assert.True(parts.Length == 3, line);
                double outErr = double.Parse(parts[1], CultureInfo.InvariantCulture), stateErr = double.Parse(parts[2], CultureInfo.InvariantCulture);
                Assert.True(outErr < outputBound, $"{parts[0]}: output relative L2 error {outErr}");
                Assert.True(stateErr < 2e-5, $"{parts[0]}: final state relative L2 error {stateErr}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
