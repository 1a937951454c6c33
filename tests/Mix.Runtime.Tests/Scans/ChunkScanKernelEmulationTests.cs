using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Runtime.Fused;
using Xunit;
using Mix.Tests.Shared;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The chunked scan kernels' CUDA source (<see cref="ChunkScanKernelSources"/>: chunk_state, chunk_state_pass,
/// chunk_output), compiled as C++ with the CUDA built-ins emulated (cooperative CUDA threads: <see cref="CudaThreadEmulation"/>; <c>__syncthreads</c>
/// as a block barrier, <c>__shared__</c> as function statics shared by the block's threads), launched in sequence as
/// <see cref="CudaScanKernels"/> launches them, against the step-by-step recurrence in double precision written in the
/// harness: SSD (scalar decay, dt-weighted inputs, grouped B/C, D skip, silu(z) gate) and GLA (per-key decay, query
/// scale), odd lengths with a partial last chunk, several chunks, several key and value tiles, batch 2, with and without
/// an initial state. Needs g++ (C++20); skipped without it. Tolerance: 1e-5 relative (float32 kernels, double reference).
/// </summary>
public class ChunkScanKernelEmulationTests
{
    private const string Emulation = CudaThreadEmulation.Header + """
#include <cstring>
#include <cmath>
#include <algorithm>
#include <vector>
#include <cstdio>
#include <random>
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
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx; D3 blockIdx, blockDim, gridDim;
typedef float io_t;
inline float to_f(io_t v) { return v; }
inline io_t from_f(float v) { return v; }
inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
static mix_barrier* block_barrier;
static void __syncthreads() { block_barrier->arrive_and_wait(); }
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
static std::mt19937 rng(3);
static void fill(std::vector<float>& v, float lo, float hi) { std::uniform_real_distribution<float> u(lo, hi); for (auto& x : v) x = u(rng); }
static int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The chunked kernels against S_t = diag(decay_t) S_{t-1} + k_t^T (w_t v_t), o_t = scale q_t S_t (+ D v_t, * silu(z_t))
// in double; ssd: decay exp(dt A), w = dt. Max relative error of outputs and final state.
static double chunked(bool ssd, int B, int T, int H, int G, int K, int V, float scale, bool withState, float gLo) {
  int hpg = H / G, NC = ceil_div(T, CQ);
  std::vector<float> q(B * T * G * K), k(q.size()), v(B * T * H * V), g(B * T * H * K), dt(B * T * H), A(H), Dp(H * V),
      z(v.size()), s0(B * H * K * V), o(v.size(), NAN), sT(s0.size(), NAN), states((size_t)B * H * NC * K * V, NAN),
      decays((size_t)B * H * NC * K, NAN);
  fill(q, -1, 1); fill(k, -1, 1); fill(v, -1, 1); fill(g, gLo, 0); fill(dt, 0.01f, 0.3f); fill(A, -1.0f, -0.05f);
  fill(Dp, -1, 1); fill(z, -2, 2); fill(s0, -1, 1);
  const io_t* gp = ssd ? nullptr : g.data();
  const float* dtp = ssd ? dt.data() : nullptr; const float* Ap = ssd ? A.data() : nullptr;
  launch({ (unsigned)NC, (unsigned)(ceil_div(V, CVT) * ceil_div(K, CKA)), (unsigned)(B * H) }, 256, [&] {
    chunk_state(k.data(), v.data(), gp, dtp, Ap, states.data(), decays.data(), T, H, hpg, K, V);
  });
  launch({ (unsigned)ceil_div(K * V, 256), (unsigned)(B * H), 1 }, 256, [&] {
    chunk_state_pass(states.data(), decays.data(), withState ? s0.data() : nullptr, sT.data(), NC, K, V, ssd ? 1 : 0);
  });
  launch({ (unsigned)NC, (unsigned)ceil_div(V, CVT), (unsigned)(B * H) }, 256, [&] {
    chunk_output(q.data(), k.data(), v.data(), gp, dtp, Ap, ssd ? Dp.data() : nullptr, ssd ? z.data() : nullptr,
                 states.data(), o.data(), T, H, hpg, K, V, scale);
  });
  double err = 0;
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    int hq = h / hpg;
    std::vector<double> S(K * V);
    for (int i = 0; i < K * V; i++) S[i] = withState ? s0[(b * H + h) * K * V + i] : 0.0;
    for (int t = 0; t < T; t++) {
      long row = (long)b * T + t;
      for (int kk = 0; kk < K; kk++) for (int c = 0; c < V; c++) {
        double decay = ssd ? std::exp((double)dt[row * H + h] * A[h]) : std::exp((double)g[(row * H + h) * K + kk]);
        double w = ssd ? dt[row * H + h] : 1.0;
        S[kk * V + c] = decay * S[kk * V + c] + (double)k[(row * G + hq) * K + kk] * w * v[(row * H + h) * V + c];
      }
      for (int c = 0; c < V; c++) {
        double acc = 0;
        for (int kk = 0; kk < K; kk++) acc += (double)scale * q[(row * G + hq) * K + kk] * S[kk * V + c];
        long off = (row * H + h) * V + c;
        if (ssd) { acc += (double)Dp[h * V + c] * v[off]; acc *= z[off] / (1 + std::exp(-(double)z[off])); }
        double e = std::fabs(acc - o[off]) / (1 + std::fabs(acc));
        err = std::isnan(e) ? 1e30 : std::max(err, e);
      }
    }
    for (int i = 0; i < K * V; i++) {
      double e = std::fabs(S[i] - sT[(b * H + h) * K * V + i]) / (1 + std::fabs(S[i]));
      err = std::isnan(e) ? 1e30 : std::max(err, e);
    }
  }
  return err;
}

int main() {
  printf("ssd %.3g\n", chunked(true, 2, 150, 4, 2, 40, 70, 1.0f, true, 0));        // 3 chunks (last partial), groups, 2 value tiles
  printf("ssd-keys %.3g\n", chunked(true, 1, 64, 2, 1, 130, 16, 1.0f, false, 0));  // 3 key tiles, one full chunk
  printf("gla %.3g\n", chunked(false, 2, 131, 2, 2, 70, 33, 0.3f, true, -0.5f));   // 3 chunks, 3 key tiles of chunk_output
  printf("gla-short %.3g\n", chunked(false, 1, 5, 1, 1, 8, 5, 0.5f, false, -3.0f)); // shorter than a chunk, steep gates
  printf("gla-long %.3g\n", chunked(false, 1, 600, 1, 1, 16, 16, 0.5f, true, -0.2f)); // 10 chunks: the state pass's 8-chunk batches
  return 0;
}
""";

    [Fact]
    public void ChunkedKernelsMatchTheRecurrenceWhenEmulated()
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-chunk-scan-emulation").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "chunk.cpp"), string.Join("\n", Emulation, ChunkScanKernelSources.Source, Harness));
            var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, "-std=c++20 -O1 -fno-strict-aliasing -pthread -w chunk.cpp -o chunk", dir);
            Assert.True(cc == 0, "the emulated kernel source does not compile:\n" + compileOutput);
            var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, "chunk"), "", dir);
            Assert.True(rc == 0, output);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(5, lines.Length);
            foreach (var line in lines)
            {
                var parts = line.Split(' ');
                double err = double.Parse(parts[1], CultureInfo.InvariantCulture);
                Assert.True(err < 1e-5, $"{parts[0]}: max relative error {err}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
