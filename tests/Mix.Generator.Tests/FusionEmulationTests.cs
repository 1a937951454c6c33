using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Mix.Generated.Models;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The generated regions end to end without a GPU: each region's kernel (the generator's CUDA inside the runtime's
/// launch skeleton) is compiled as C++ with the CUDA built-ins emulated (one OS thread per CUDA thread, block barriers
/// for <c>__syncthreads</c> and shuffles), launched with the argument block the runtime's host code prepares, and
/// plugged into the generated forward through <see cref="FusedRegion"/>'s test hook. Whole forwards with every region
/// emulated must match the same forwards on the reference lambdas: float32, 1e-5 relative. Needs g++ (C++20).
/// </summary>
public class FusionEmulationTests
{
    const string Emulation = """
#include <cmath>
#include <cstring>
#include <barrier>
#include <thread>
#include <vector>
#include <fstream>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define asm(...) ((void)0)
struct mix_dim3 { unsigned x, y, z; };
thread_local mix_dim3 threadIdx;
mix_dim3 blockIdx, blockDim, gridDim;
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{ a, b, c, d }; }
template <class T> T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static std::barrier<>* block_barrier;
static float shuffle_slots[1024];
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static float __shfl_xor_sync(unsigned, float v, int o) {
  shuffle_slots[threadIdx.x] = v; block_barrier->arrive_and_wait();
  float r = shuffle_slots[threadIdx.x ^ o]; block_barrier->arrive_and_wait(); return r;
}
template <class F> static void launch(unsigned grid, unsigned threads, F body) {
  blockDim = { threads, 1, 1 };
  gridDim = { grid, 1, 1 };
  for (unsigned x = 0; x < grid; x++) {
    blockIdx = { x, 0, 0 };
    std::barrier<> b((std::ptrdiff_t)threads); block_barrier = &b;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; t++) ts.emplace_back([&, t] { threadIdx = { t, 0, 0 }; body(); });
    for (auto& t : ts) t.join();
  }
}
""";

    const string Main = """
int main(int argc, char** argv) {
  std::ifstream f(argv[1], std::ios::binary);
  int entry; unsigned grid, block;
  f.read((char*)&entry, 4); f.read((char*)&grid, 4); f.read((char*)&block, 4);
  mix_args a;
  f.read((char*)&a, sizeof(a));
  int n; f.read((char*)&n, 4);
  std::vector<std::vector<float>> ins(n);
  for (int i = 0; i < n; i++) {
    long long c; f.read((char*)&c, 8);
    ins[i].resize(c);
    f.read((char*)ins[i].data(), c * 4);
    a.in[i] = ins[i].data();
  }
  long long oc; f.read((char*)&oc, 8);
  std::vector<float> out(oc, std::nanf(""));
  a.out = out.data();
  launch(grid, block, [&] {
#if MIX_ROW
    mix_region_row(a);
#else
    if (entry == 1) mix_region_flat(a); else mix_region_strided(a);
#endif
  });
  std::ofstream o(argv[2], std::ios::binary);
  o.write((const char*)out.data(), oc * 4);
  return 0;
}
""";

    sealed class Emulator : IDisposable
    {
        readonly string _gxx;
        readonly string _dir = Directory.CreateTempSubdirectory("mix-region-emulation").FullName;
        readonly Dictionary<FusedRegionKernel, string> _programs = new();
        public int Calls;
        /// <summary>Tensors the emulation itself created (reading inputs back, wrapping outputs): not the forward's ops.</summary>
        public long OwnTensors;
        public readonly HashSet<string> Regions = new();

        public Emulator(string gxx) => _gxx = gxx;

        public Tensor? Run(FusedRegionKernel kernel, Tensor[] xs, float[] scalars)
        {
            var before = Mix.Runtime.Cuda.ForwardCost.Now;
            try { return RunEmulated(kernel, xs, scalars); }
            finally { OwnTensors += (Mix.Runtime.Cuda.ForwardCost.Now - before).TorchOps; }
        }

        Tensor? RunEmulated(FusedRegionKernel kernel, Tensor[] xs, float[] scalars)
        {
            if (xs.Any(x => x.dtype != ScalarType.Float32)) return null; // the emulation reads float32 only
            var plan = kernel.Prepare(xs.Select(x => (x.shape, x.stride(), x.dtype)).ToArray(), scalars);
            if (plan is null) return null;
            if (!_programs.TryGetValue(kernel, out var exe))
            {
                exe = Path.Combine(_dir, "r" + _programs.Count);
                File.WriteAllText(exe + ".cpp", Emulation + "\n" + kernel.FullSource + "\n" + Main);
                var (cc, output) = Exec(_gxx, $"-std=c++20 -O1 -pthread -w {exe}.cpp -o {exe}");
                Assert.True(cc == 0, $"{kernel.Name} does not compile:\n{output}");
                _programs[kernel] = exe;
            }
            var entry = plan.Entry(aligned: true);
            var (grid, block) = plan.Dims(entry);
            var input = exe + ".in";
            using (var w = new BinaryWriter(File.Create(input)))
            {
                w.Write(entry switch { "mix_region_flat" => 1, "mix_region_row" => 2, _ => 0 });
                w.Write(grid);
                w.Write(block);
                w.Write(MemoryMarshal.AsBytes(new ReadOnlySpan<RegionArgs>(ref plan.Args)));
                w.Write(xs.Length);
                foreach (var x in xs)
                {
                    // the memory the strides walk, from the tensor's first element
                    long extent = 1 + x.shape.Zip(x.stride(), (s, st) => (s - 1) * st).Sum();
                    var data = x.as_strided(new[] { extent }, new[] { 1L }, x.storage_offset()).contiguous().data<float>().ToArray();
                    w.Write((long)data.Length);
                    w.Write(MemoryMarshal.AsBytes(data.AsSpan()));
                }
                w.Write(plan.OutShape.Aggregate(1L, (a, b) => a * b));
            }
            var (rc, log) = Exec(exe, $"{input} {exe}.out");
            Assert.True(rc == 0, $"{kernel.Name} failed: {log}");
            var bytes = File.ReadAllBytes(exe + ".out");
            var values = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            Calls++;
            Regions.Add(kernel.Name);
            return torch.tensor(values).reshape(plan.OutShape);
        }

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }

    static (int Code, string Output) Exec(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    static string? Gxx() => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Select(d => Path.Combine(d, "g++")).FirstOrDefault(File.Exists);

    public static IEnumerable<object[]> Cases() => new[]
    {
        new object[] { "fusion_gated" }, new object[] { "fusion_pool" }, new object[] { "mamba2_lm" }, new object[] { "gla_lm" },
        new object[] { "softs" }, new object[] { "patchtsmixer" }, new object[] { "hybrid_lm" },
    };

    static (nn.Module<Tensor, Tensor>, Tensor) Model(string name) => name switch
    {
        "fusion_gated" => (new FusionGated(new FusionGated.Options { Dim = 8, Depth = 2 }), torch.randn(2, 8, 5, 7)),
        "fusion_pool" => (new FusionPool(new FusionPool.Options { Dim = 12 }), torch.randn(2, 7, 12)),
        "mamba2_lm" => (new Mamba2Lm(new Mamba2Lm.Options { VocabSize = 31, DModel = 64, NLayer = 1, DState = 8, ChunkSize = 8 }), torch.randint(0, 31, new long[] { 1, 9 })),
        "gla_lm" => (new GlaLm(new GlaLm.Options { VocabSize = 31, DModel = 32, NLayer = 1 }), torch.randint(0, 31, new long[] { 1, 9 })),
        "softs" => (new Softs(new Softs.Options { SeqLen = 12, PredLen = 5, EncIn = 3, DModel = 16, DCore = 8, DFf = 24, ELayers = 1 }), torch.randn(2, 12, 3)),
        "patchtsmixer" => (new Patchtsmixer(), torch.randn(1, 32, 3)),
        "hybrid_lm" => (new HybridLm(new HybridLm.Options { VocabSize = 31, DModel = 64, NLayer = 2, AttnEvery = 2 }), torch.randint(0, 31, new long[] { 1, 9 })),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Emulated_regions_match_the_reference_forward(string name)
    {
        var gxx = Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(11);
        var (model, x) = Model(name);
        model.eval();
        using var _ = torch.no_grad();
        var reference = model.call(x);
        using var emulator = new Emulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Tensor fused;
        try { fused = model.call(x); }
        finally { FusedRegion.Emulator = null; }
        Assert.True(emulator.Calls > 0, $"{name}: no region ran");
        Assert.Equal(reference.shape, fused.shape);
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"{name}: relative error {err} over regions {string.Join(", ", emulator.Regions)}");
    }

    [Fact]
    public void Forward_cost_counts_each_emulated_region_as_one_launch_and_fewer_torch_ops()
    {
        var gxx = Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(11);
        var (model, x) = Model("fusion_gated");
        model.eval();
        using var _ = torch.no_grad();
        var reference = Mix.Runtime.Cuda.ForwardCost.Measure(() => { using var s = torch.NewDisposeScope(); model.call(x); });
        using var emulator = new Emulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Mix.Runtime.Cuda.ForwardCost fused;
        try { fused = Mix.Runtime.Cuda.ForwardCost.Measure(() => { using var s = torch.NewDisposeScope(); model.call(x); }); }
        finally { FusedRegion.Emulator = null; }
        Assert.Equal(0, reference.Launches);
        Assert.Equal(emulator.Calls, fused.Launches);
        Assert.True(fused.Launches >= 4, $"{fused.Launches} launches for 2 blocks of norm + gate");
        // on the GPU a region creates one tensor (its output); the emulation's own reads and writes are not the forward's
        long fusedOps = fused.TorchOps - emulator.OwnTensors + emulator.Calls;
        Assert.True(fusedOps < reference.TorchOps, $"{fusedOps} torch ops with regions, {reference.TorchOps} without");
    }
}
