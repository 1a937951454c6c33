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
/// The scan kernels' CUDA source, compiled as C++ with the CUDA built-ins emulated (cooperative CUDA threads: <see cref="CudaThreadEmulation"/>;
/// <c>__syncthreads</c> and warp shuffles as block barriers), against plain-loop recurrences written in the harness:
/// checks the kernels' indexing and logic on machines without a GPU. Needs g++ (C++20); skipped without it.
/// Tolerance: 1e-5 relative (float32 kernel, double reference).
/// </summary>
public class ScanKernelEmulationTests
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
#define __launch_bounds__(x)
#define __expf expf
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx; D3 blockIdx, blockDim;
typedef float io_t;
inline float to_f(io_t v) { return v; }
inline io_t from_f(float v) { return v; }
inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
static mix_barrier* block_barrier;
static float shuffle_slots[1024];
static float smem_buf[1 << 16];
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static float __shfl_xor_sync(unsigned, float v, int o) {
  shuffle_slots[threadIdx.x] = v; block_barrier->arrive_and_wait();
  float r = shuffle_slots[threadIdx.x ^ o]; block_barrier->arrive_and_wait(); return r;
}
template <class T> static T __ldg(const T* p) { return *p; }
template <class F> static void launch(D3 grid, unsigned threads, F body) {
  blockDim = { threads, 1, 1 };
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
static std::mt19937 rng(1);
static void fill(std::vector<float>& v, float lo, float hi) { std::uniform_real_distribution<float> u(lo, hi); for (auto& x : v) x = u(rng); }

// S_t = diag(decay_t) S_{t-1} + k_t^T (w_t v_t), o_t = scale q_t S_t (+ D v_t, * silu(z_t)); ssd: decay exp(dt A), w = dt.
static double gated(bool ssd, int B, int T, int H, int G, int K, int V, int TC, float scale) {
  int hpg = H / G;
  std::vector<float> q(B * T * G * K), k(q.size()), v(B * T * H * V), g(B * T * H * K), dt(B * T * H), A(H), Dp(H * V),
      z(v.size()), s0(B * H * K * V), o(v.size()), sT(s0.size());
  fill(q, -1, 1); fill(k, -1, 1); fill(v, -1, 1); fill(g, -0.5f, 0); fill(dt, 0.01f, 0.5f); fill(A, -1.5f, -0.1f);
  fill(Dp, -1, 1); fill(z, -2, 2); fill(s0, -1, 1);
  int kpt = 1; while (kpt * 8 < K) kpt <<= 1;
  launch({ (unsigned)((V + 31) / 32), (unsigned)H, (unsigned)B }, 256, [&] {
    gated_scan(q.data(), k.data(), v.data(), ssd ? nullptr : g.data(), ssd ? dt.data() : nullptr, ssd ? A.data() : nullptr,
               ssd ? Dp.data() : nullptr, ssd ? z.data() : nullptr, s0.data(), o.data(), sT.data(), T, H, hpg, K, V, TC, scale, kpt);
  });
  double err = 0;
  for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) {
    int hq = h / hpg;
    std::vector<double> S(K * V);
    for (int i = 0; i < K * V; i++) S[i] = s0[(b * H + h) * K * V + i];
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
        err = std::max(err, std::fabs(acc - o[off]) / (1 + std::fabs(acc)));
      }
    }
    for (int i = 0; i < K * V; i++) err = std::max(err, std::fabs(S[i] - sT[(b * H + h) * K * V + i]) / (1 + std::fabs(S[i])));
  }
  return err;
}

// y = act(bias + sum_j w[j] x[t - (W-1) + j]), inputs before t = 0 from the state.
static double conv(int B, int D, int L, int W, bool withState, bool silu) {
  std::vector<float> x(B * D * L), w(D * W), bias(D), s0(B * D * (W - 1) + 1), y(x.size());
  fill(x, -1, 1); fill(w, -1, 1); fill(bias, -1, 1); fill(s0, -1, 1);
  launch({ (unsigned)((L + 255) / 256), (unsigned)D, (unsigned)B }, 256, [&] {
    causal_conv1d_fwd(x.data(), w.data(), bias.data(), withState ? s0.data() : nullptr, y.data(), D, L, W, silu ? 1 : 0);
  });
  double err = 0;
  for (int b = 0; b < B; b++) for (int d = 0; d < D; d++) for (int t = 0; t < L; t++) {
    double acc = bias[d];
    for (int j = 0; j < W; j++) {
      int i = t - (W - 1) + j;
      double xv = i >= 0 ? x[(b * D + d) * L + i] : (withState ? s0[(b * D + d) * (W - 1) + (W - 1) + i] : 0.0);
      acc += (double)w[d * W + j] * xv;
    }
    if (silu) acc = acc / (1 + std::exp(-acc));
    err = std::max(err, std::fabs(acc - y[(b * D + d) * L + t]) / (1 + std::fabs(acc)));
  }
  return err;
}

int main() {
  printf("gla %.3g\n", gated(false, 1, 13, 2, 2, 12, 37, 5, 0.3f));   // two value blocks, chunks not dividing T
  printf("gla-wide %.3g\n", gated(false, 1, 11, 1, 1, 200, 5, 9, 0.07f)); // 32 keys per lane
  printf("ssd %.3g\n", gated(true, 2, 9, 4, 2, 5, 7, 4, 1.0f));      // groups, D, z
  printf("conv %.3g\n", conv(2, 3, 300, 4, true, true));
  printf("conv-plain %.3g\n", conv(1, 2, 7, 1, false, false));
  return 0;
}
""";

    [Fact]
    public void KernelSourcesMatchTheRecurrencesWhenEmulated()
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-scan-emulation").FullName;
        try
        {
            var source = string.Join("\n", Emulation,
                ScanKernelSources.GatedScan.Replace("extern __shared__ float smem[];", "float* smem = smem_buf;"),
                ScanKernelSources.CausalConv, Harness);
            File.WriteAllText(Path.Combine(dir, "scan.cpp"), source);
            var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, "-std=c++20 -O1 -pthread -w scan.cpp -o scan", dir);
            Assert.True(cc == 0, "the emulated kernel source does not compile:\n" + compileOutput);
            var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, "scan"), "", dir);
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
