using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using Mix.Tests.Shared;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Runs a fused region's kernel (the generator's CUDA inside the runtime's launch skeleton) on CPU tensors: the
/// translation unit compiled as C++ by g++ with the CUDA built-ins emulated (cooperative CUDA threads: <see cref="CudaThreadEmulation"/>; block
/// barriers for <c>__syncthreads</c> and for warp shuffles, so a kernel must call them the same number of times in every
/// thread of a block, as the skeleton's loops do), launched with the argument block and the entry that the runtime's
/// host code chooses (<see cref="FusedRegionKernel.Prepare"/>) and compiled with its -D options. Float32, float16
/// and bfloat16 tensors (passed in their own dtype). Plugs into generated forwards through
/// <see cref="FusedRegion.Emulator"/>.
/// </summary>
internal sealed class RegionEmulator : IDisposable
{
    const string Prelude = CudaThreadEmulation.Header + """
#include <cmath>
#include <cstring>
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
struct uint4 { unsigned x, y, z, w; };
#define MIX_HOST_F16 1
inline float mix_f16_to_f(unsigned short h) { _Float16 v; std::memcpy(&v, &h, 2); return (float)v; }
inline unsigned short mix_f_to_f16(float f) { _Float16 v = (_Float16)f; unsigned short h; std::memcpy(&h, &v, 2); return h; }
inline float4 make_float4(float a, float b, float c, float d) { return float4{ a, b, c, d }; }
template <class T> T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static mix_barrier* block_barrier;
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
    mix_barrier b((std::ptrdiff_t)threads); block_barrier = &b;
    mix_fibers fs;
    for (unsigned t = 0; t < threads; t++) fs.spawn([t] { threadIdx = { t, 0, 0 }; }, body);
    fs.run();
  }
}
""";

    // Entry codes: the order of Entries.
    static readonly string[] Entries =
    {
        "mix_region_strided", "mix_region_vec", "mix_region_row", "mix_region_row4", "mix_region_warp", "mix_region_warp4", "mix_region_cols",
    };

    const string Main = """
int main(int argc, char** argv) {
  std::ifstream f(argv[1], std::ios::binary);
  int entry; unsigned grid, block;
  f.read((char*)&entry, 4); f.read((char*)&grid, 4); f.read((char*)&block, 4);
  mix_args a;
  f.read((char*)&a, sizeof(a));
  int n; f.read((char*)&n, 4);
  // raw bytes of each tensor's dtype, 16-byte aligned as the runtime's vector entries require
  std::vector<std::vector<float4>> ins(n);
  for (int i = 0; i < n; i++) {
    long long bytes; f.read((char*)&bytes, 8);
    ins[i].resize(bytes / 16 + 1);
    f.read((char*)ins[i].data(), bytes);
    a.in[i] = ins[i].data();
  }
  long long ob; f.read((char*)&ob, 8);
  std::vector<unsigned char> out(ob, 0xff);
  a.out = out.data();
  launch(grid, block, [&] {
#if MIX_ROW
    switch (entry) {
      case 2: mix_region_row(a); break;
      case 3: mix_region_row4(a); break;
      case 4: mix_region_warp(a); break;
      case 5: mix_region_warp4(a); break;
      default: mix_region_cols(a); break;
    }
#else
    if (entry == 1) mix_region_vec(a); else mix_region_strided(a);
#endif
  });
  std::ofstream o(argv[2], std::ios::binary);
  o.write((const char*)out.data(), ob);
  return 0;
}
""";

    readonly string _gxx;
    readonly string _dir = Directory.CreateTempSubdirectory("mix-region-emulation").FullName;
    readonly Dictionary<(FusedRegionKernel, string), string> _programs = new();

    public RegionEmulator(string gxx) => _gxx = gxx;

    /// <summary>Regions run.</summary>
    public int Calls;

    /// <summary>Tensors the emulation itself created (reading inputs back, wrapping outputs): not the forward's ops.</summary>
    public long OwnTensors;

    /// <summary>The regions that ran, by name.</summary>
    public readonly HashSet<string> Regions = new();

    /// <summary>The entries that ran.</summary>
    public readonly HashSet<string> EntriesRun = new();

    /// <summary>Whether to take the vector entries where the runtime would (pointers are 16-byte aligned here).</summary>
    public bool Aligned { get; set; } = true;

    /// <summary>The region's result, or null where the runtime would decline (then the reference runs).</summary>
    public Tensor? Run(FusedRegionKernel kernel, Tensor[] xs, float[] scalars)
    {
        var before = Mix.Runtime.Cuda.ForwardCost.Now;
        try { return RunEmulated(kernel, xs, scalars); }
        finally { OwnTensors += (Mix.Runtime.Cuda.ForwardCost.Now - before).TorchOps; }
    }

    Tensor? RunEmulated(FusedRegionKernel kernel, Tensor[] xs, float[] scalars)
    {
        if (xs.Any(x => x.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))) return null;
        var plan = kernel.Prepare(xs.Select(x => (x.shape, x.stride(), x.dtype)).ToArray(), scalars);
        if (plan is null) return null;
        if (MaxBlocks is int cap) plan.MaxBlocks = cap;
        var defines = plan.Defines();
        var key = (kernel, string.Join(" ", defines));
        if (!_programs.TryGetValue(key, out var exe))
        {
            exe = Path.Combine(_dir, "r" + _programs.Count);
            File.WriteAllText(exe + ".cpp", Prelude + "\n" + kernel.FullSource + "\n" + Main);
            var (cc, output) = Exec(_gxx, $"-std=c++20 -O1 -pthread -w {string.Join(" ", defines)} {exe}.cpp -o {exe}");
            Assert.True(cc == 0, $"{kernel.Name} does not compile:\n{output}");
            _programs[key] = exe;
        }
        var entry = plan.Entry(Aligned);
        var (grid, block) = plan.Dims(entry);
        var input = exe + ".in";
        using (var w = new BinaryWriter(File.Create(input)))
        {
            w.Write(Array.IndexOf(Entries, entry));
            w.Write(grid);
            w.Write(block);
            w.Write(MemoryMarshal.AsBytes(new ReadOnlySpan<RegionArgs>(ref plan.Args)));
            w.Write(xs.Length);
            foreach (var x in xs)
            {
                // the memory the strides walk, from the tensor's first element, in its dtype
                long extent = 1 + x.shape.Zip(x.stride(), (s, st) => (s - 1) * st).Sum();
                var flat = x.as_strided(new[] { extent }, new[] { 1L }, x.storage_offset()).contiguous();
                var bytes = Bytes(flat);
                w.Write((long)bytes.Length);
                w.Write(bytes);
            }
            long count = 1 + plan.OutShape.Zip(plan.OutStrides, (s, st) => (s - 1) * st).Sum();
            w.Write(count * ElementSize(plan.OutType));
        }
        var (rc, log) = Exec(exe, $"{input} {exe}.out");
        Assert.True(rc == 0, $"{kernel.Name} ({entry}) failed: {log}");
        var values = Floats(File.ReadAllBytes(exe + ".out"), plan.OutType);
        Calls++;
        Regions.Add(kernel.Name);
        EntriesRun.Add(entry);
        // the kernel writes the output's memory (plan.OutStrides: the layout the region keeps)
        long extentOut = 1 + plan.OutShape.Zip(plan.OutStrides, (s, st) => (s - 1) * st).Sum();
        Assert.Equal(values.LongLength, extentOut);
        return torch.tensor(values).to_type(plan.OutType).as_strided(plan.OutShape, plan.OutStrides);
    }

    /// <summary>Most blocks of a pointwise grid-stride launch (null: the runtime's default), to make the loops go round.</summary>
    public int? MaxBlocks { get; set; }

    static int ElementSize(ScalarType t) => t == ScalarType.Float32 ? 4 : 2;

    /// <summary>A contiguous tensor's memory in its own dtype (half types as their bit patterns).</summary>
    static byte[] Bytes(Tensor flat)
    {
        var f = flat.to_type(ScalarType.Float32).data<float>().ToArray(); // exact: every half value is a float
        switch (flat.dtype)
        {
            case ScalarType.Float32:
                return MemoryMarshal.AsBytes(f.AsSpan()).ToArray();
            case ScalarType.BFloat16:
                return MemoryMarshal.AsBytes(f.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray();
            default:
                return MemoryMarshal.AsBytes(f.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()).ToArray();
        }
    }

    static float[] Floats(byte[] bytes, ScalarType t) => t switch
    {
        ScalarType.Float32 => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
        ScalarType.BFloat16 => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray().Select(h => BitConverter.UInt32BitsToSingle((uint)h << 16)).ToArray(),
        _ => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray().Select(h => (float)BitConverter.UInt16BitsToHalf(h)).ToArray(),
    };

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static (int Code, string Output) Exec(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>g++ on the PATH, or null.</summary>
    public static string? Gxx() => CudaThreadEmulation.FindGxx();
}
