using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Mix.Tests.Shared;
using Xunit;

namespace Mix.Runtime.Tests;

/// <summary>
/// The cooperative CUDA threads under every kernel emulation test (<see cref="CudaThreadEmulation"/>): barriers order
/// the writes before them against the reads after them, a read of a neighbour's write without a barrier is caught
/// (the property that makes an emulation test fail on a missing <c>__syncthreads</c>), a spin-wait on another block
/// finishes, and a fiber's floating-point state and stack survive its switches. Needs g++; skipped without it.
/// </summary>
public class CudaThreadEmulationTests
{
    private const string Harness = """
#include <cmath>
struct D3 { unsigned x, y, z; };
thread_local D3 threadIdx, blockIdx;
static mix_barrier* bar;
static void sync() { bar->arrive_and_wait(); }
static void block(unsigned n, void (*body)()) {
  mix_barrier b((std::ptrdiff_t)n); bar = &b;
  mix_fibers fs;
  for (unsigned t = 0; t < n; t++) fs.spawn([t] { threadIdx = { t, 0, 0 }; }, body);
  fs.run();
}
static double s[256];
static double out[256];
// a tree sum over shared memory, a barrier between the levels: every thread reads the total
static void tree_sum() {
  const unsigned t = threadIdx.x;
  s[t] = t + 1.0;
  sync();
  for (unsigned h = 128; h > 0; h >>= 1) { if (t < h) s[t] += s[t + h]; sync(); }
  out[t] = s[0];
}
// the neighbour sums without the barrier between the writes and the reads (a kernel bug): round 1 writes, round 2
// reads both neighbours' writes of round 2
static void racy_neighbours() {
  const unsigned t = threadIdx.x, n = 256;
  s[t] = 1.0; sync();
  s[t] = t + 10.0;               // every thread overwrites its slot ...
  out[t] = s[(t + 1) % n] + s[(t + n - 1) % n];   // ... and reads its neighbours' without waiting for them
  sync();
}
// two blocks resident at once: block 1 spins until block 0 has published
static volatile int flag;
static double published;
static void spin_pair() {
  if (blockIdx.x == 0 && threadIdx.x == 0) { for (int i = 0; i < 50; i++) mix_fiber_yield(); published = 42.0; flag = 1; }
  if (blockIdx.x == 1) { while (!flag) mix_fiber_yield(); out[threadIdx.x] = published; }
}
// stack arrays and float state across many switches
static void locals() {
  const unsigned t = threadIdx.x;
  double a[64];
  for (int i = 0; i < 64; i++) { a[i] = std::sqrt((double)(t * 64 + i)); sync(); }
  double sum = 0; for (int i = 0; i < 64; i++) sum += a[i];
  out[t] = sum;
}
int main() {
  block(256, tree_sum);
  int bad = 0;
  for (unsigned t = 0; t < 256; t++) bad += out[t] != 256.0 * 257.0 / 2;
  printf("tree %d\n", bad);
  block(256, racy_neighbours);
  int stale = 0;
  for (unsigned t = 0; t < 256; t++) stale += out[t] != ((t + 1) % 256 + 10.0) + ((t + 255) % 256 + 10.0);
  printf("race %d\n", stale);
  {
    flag = 0;
    mix_fibers fs;
    for (unsigned b = 0; b < 2; b++) for (unsigned t = 0; t < 32; t++) fs.spawn([b, t] { threadIdx = { t, 0, 0 }; blockIdx = { b, 0, 0 }; }, spin_pair);
    for (unsigned t = 0; t < 32; t++) out[t] = 0;
    fs.run();
    int wrong = 0; for (unsigned t = 0; t < 32; t++) wrong += out[t] != 42.0;
    printf("spin %d\n", wrong);
  }
  block(128, locals);
  int off = 0;
  for (unsigned t = 0; t < 128; t++) { double e = 0; for (int i = 0; i < 64; i++) e += std::sqrt((double)(t * 64 + i)); off += out[t] != e; }
  printf("locals %d\n", off);
  return 0;
}
""";

    [Fact]
    public void Barriers_order_memory_a_missing_barrier_is_caught_and_spin_waits_finish()
    {
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-fibers").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "f.cpp"), CudaThreadEmulation.Header + Harness);
            var (cc, compileOutput) = CudaThreadEmulation.Run(gxx!, "-std=c++20 -O1 -w f.cpp -o f", dir);
            Assert.True(cc == 0, compileOutput);
            var (rc, output) = CudaThreadEmulation.Run(Path.Combine(dir, "f"), "", dir);
            Assert.Equal(0, rc);
            var counts = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => int.Parse(p[1]));
            Assert.Equal(0, counts["tree"]);
            Assert.Equal(0, counts["spin"]);
            Assert.Equal(0, counts["locals"]);
            // without the barrier, threads that run before a neighbour in the round read its old value (1.0)
            Assert.True(counts["race"] > 100, $"only {counts["race"]} of 256 threads read a stale neighbour");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

}
