using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using Mix.Generated.Models;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The fusion planner (a pure function over <see cref="FusionGraph"/>) and what it makes of real forwards: the test-only
/// gated mixer and norm (Models/fusion.mix), the standard library's gated RMSNorm, the zoo. The generated regions'
/// CUDA is checked with g++ -fsyntax-only against a shim of the CUDA built-ins (skipped without g++); their reference
/// lambdas are what runs on the CPU.
/// </summary>
public class FusionPlannerTests
{
    // ---- the planner on hand-built graphs ----

    sealed class G
    {
        public readonly List<FusionNode> Nodes = new();
        int Add(FusionNode n) { Nodes.Add(n); return Nodes.Count - 1; }
        public int In() => Add(new FusionNode("input", "", EquatableArray<int>.Empty));
        public int Scalar() => Add(new FusionNode("scalar", "", EquatableArray<int>.Empty));
        public int Const(string v) => Add(new FusionNode("const", "", EquatableArray<int>.Empty, Value: v));
        public int U(string op, int a) => Add(new FusionNode("unary", op, new[] { a }.ToEquatableArray()));
        public int B(string op, int a, int b) => Add(new FusionNode("binary", op, new[] { a, b }.ToEquatableArray()));
        public int Reduce(string op, int a, int axis, bool keep = true) => Add(new FusionNode("reduce", op, new[] { a }.ToEquatableArray(), axis, keep));
        public int Softmax(int a, int axis) => Add(new FusionNode("softmax", "softmax", new[] { a }.ToEquatableArray(), axis));
        public FusionGraph Graph => new(Nodes.ToEquatableArray());
    }

    [Fact]
    public void A_pointwise_chain_is_one_region_and_one_op_is_none()
    {
        var g = new G();
        int a = g.In(), b = g.In();
        int s = g.U("silu", a);
        g.B("mul", s, b);
        var plan = FusionPlanner.Plan(g.Graph);
        var r = Assert.Single(plan);
        Assert.Equal("pointwise", r.Kind);
        Assert.Equal(new[] { a, b }, r.Inputs);
        Assert.Equal(new[] { s, s + 1 }, r.Nodes);

        var single = new G();
        single.B("add", single.In(), single.In());
        Assert.Empty(FusionPlanner.Plan(single.Graph));
    }

    [Fact]
    public void An_rms_norm_is_one_row_region_with_its_scalar()
    {
        var g = new G();
        int x = g.In(), eps = g.Scalar(), w = g.In();
        int sq = g.B("mul", x, x);
        int mean = g.Reduce("mean", sq, -1);
        int y = g.B("mul", g.B("mul", x, g.U("rsqrt", g.B("add", mean, eps))), w);
        var r = Assert.Single(FusionPlanner.Plan(g.Graph));
        Assert.Equal("row", r.Kind);
        Assert.Equal(-1, r.Axis);
        Assert.False(r.Reduced);
        Assert.Equal(y, r.Root);
        Assert.Equal(new[] { x, w }, r.Inputs);
        Assert.Equal(new[] { eps }, r.Scalars);
        Assert.Equal(new[] { 0b01 }, r.Reductions); // the mean reads x, not w
    }

    [Fact]
    public void Reductions_over_another_axis_or_dropping_theirs_start_regions_of_their_own()
    {
        var g = new G();
        int x = g.In();
        int inner = g.Reduce("sum", g.U("exp", x), 2);                 // axis 2: its own region (exp + sum)
        int outer = g.Softmax(g.B("mul", g.B("add", x, inner), g.Const("0.5")), -1);
        var plan = FusionPlanner.Plan(g.Graph);
        Assert.Equal(2, plan.Count);
        Assert.Equal(outer, plan[0].Root);
        Assert.Equal(-1, plan[0].Axis);
        Assert.Equal(new[] { x, inner }, plan[0].Inputs);
        Assert.Equal(inner, plan[1].Root);
        Assert.Equal(2, plan[1].Axis);

        var h = new G();
        int y = h.In();
        int dropped = h.Reduce("sum", h.B("mul", y, y), 1, keep: false);
        h.B("add", h.B("mul", dropped, h.Const("2")), h.Const("1"));
        var cut = FusionPlanner.Plan(h.Graph);
        Assert.Equal(2, cut.Count);
        Assert.Equal("pointwise", cut[0].Kind);
        Assert.Equal(new[] { dropped }, cut[0].Inputs);
        Assert.True(cut[1].Reduced);
    }

    [Fact]
    public void A_region_reads_at_most_six_tensors()
    {
        var g = new G();
        int acc = g.In();
        for (int i = 0; i < 7; i++) acc = g.B("add", acc, g.In());
        var plan = FusionPlanner.Plan(g.Graph);
        Assert.All(plan, r => Assert.True(r.Inputs.Count <= FusionPlanner.MaxInputs));
        Assert.NotEmpty(plan); // the outer chain is too wide; a chain below it is not
    }

    // ---- what the generator made of real forwards (compiled into this project) ----

    static IEnumerable<(Type Owner, string Field, FusedRegionKernel Kernel)> Regions(Assembly assembly) =>
        assembly.GetTypes().Where(t => t.Name == "MixRegions" && t.DeclaringType is not null)
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
                .Where(f => f.FieldType == typeof(FusedRegionKernel))
                .Select(f => (t.DeclaringType!, f.Name, (FusedRegionKernel)f.GetValue(null)!)));

    static List<FusedRegionKernel> RegionsOf(Type t) => Regions(t.Assembly).Where(r => r.Owner == t).Select(r => r.Kernel).ToList();

    [Fact]
    public void The_gated_mixer_and_the_test_norm_get_their_regions()
    {
        var norm = Assert.Single(RegionsOf(typeof(ChanRmsnorm)));
        Assert.True(norm.IsRow);
        Assert.Equal(1, norm.Axis);
        Assert.Equal(2, norm.Inputs);   // x and weight
        Assert.Equal(1, norm.Scalars);  // eps
        Assert.Contains("rsqrtf(", norm.Source);

        var gated = Assert.Single(RegionsOf(typeof(GatedDwconv)));
        Assert.False(gated.IsRow);
        Assert.Equal(2, gated.Inputs);  // a and dwconv(b)
        Assert.Contains("expf(", gated.Source);

        var pool = RegionsOf(typeof(TokenSoftmaxPool));
        Assert.Equal(3, pool.Count);
        Assert.Contains(pool, r => r.IsRow && !r.Reduced && r.Source.Contains("expf("));  // softmax(score * 0.5, 1)
        Assert.Contains(pool, r => r.IsRow && r.Reduced);                                 // sum(x * w, [1])
        Assert.Contains(pool, r => !r.IsRow);                                             // * 2.0 + 1.0
    }

    [Fact]
    public void The_generated_lines_call_the_region_with_the_reference_lambda()
    {
        var text = File.ReadAllText(Path.Combine(Harness.SnapshotDir, "Mix.Std.gated_rmsnorm.g.cs"));
        Assert.Contains("fused1.Run(g, g => g * Fn.Rsqrt(Fn.Mean(g * g, new long[] { -1 }, true) + options.Eps))", text);
        Assert.Contains("fused1 = MixRegions.Region1.Bind(options.Eps);", text);
    }

    [Fact]
    public void Without_cuda_the_regions_run_their_reference_expressions()
    {
        torch.manual_seed(3);
        using var model = new FusionGated(new FusionGated.Options { Dim = 8, Depth = 1 });
        var x = torch.randn(2, 8, 5, 7);
        var y = model.call(x);

        // The same forward written out in TorchSharp.
        var blocks = (TorchSharp.Modules.ModuleList<nn.Module<Tensor, Tensor>>)model.named_children().Single().module;
        var block = blocks[0];
        var children = block.named_children().ToDictionary(c => c.name, c => c.module);
        var weight = children["norm"].named_parameters().Single().parameter;
        var n = x * (x * x).mean(new long[] { 1 }, keepdim: true).add(1e-6).rsqrt() * weight;
        var mixer = children["mixer"].named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var ab = mixer["pw"].call(n).chunk(2, 1);
        var expected = mixer["proj"].call(nn.functional.silu(ab[0]) * mixer["dwconv"].call(ab[1]));
        Assert.True(expected.allclose(y, rtol: 1e-5, atol: 1e-6));

        // Under autograd the same path runs and gradients flow.
        x.requires_grad_(true);
        model.call(x).sum().backward();
        Assert.NotNull(x.grad);
    }

    // ---- the emitted CUDA is C++ ----

    const string Shim = """
#include <cmath>
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define asm(...) ((void)0)
struct mix_dim3 { unsigned x, y, z; };
extern mix_dim3 threadIdx, blockIdx, blockDim, gridDim;
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return float4{ a, b, c, d }; }
template <class T> T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __shfl_xor_sync(unsigned, float v, int) { return v; }
inline void __syncthreads() {}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
""";

    [Fact]
    public void Every_generated_region_compiles_as_cpp_for_each_dtype()
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var regions = Regions(typeof(FusionGated).Assembly).ToList();
        Assert.True(regions.Count >= 10, $"only {regions.Count} regions found");
        var dir = Directory.CreateTempSubdirectory("mix-regions").FullName;
        try
        {
            var failures = new List<string>();
            int i = 0;
            foreach (var (owner, field, kernel) in regions)
            {
                var file = Path.Combine(dir, $"r{i++}.cu.cpp");
                File.WriteAllText(file, Shim + "\n" + kernel.FullSource);
                // float32 for every region; the dtype-specific code is the skeleton's, so one row and one pointwise region also
                // compile with bfloat16 and with mixed dtypes (float32 first input, float16 output), and with the pointwise
                // access classes of mix_region_vec other than the default.
                bool all = kernel == regions.First(r => r.Kernel.IsRow).Kernel || kernel == regions.First(r => !r.Kernel.IsRow).Kernel;
                foreach (var defines in all ? new[] { "-DMIX_TO=0", "-DMIX_TO=2 -DMIX_T0=2 -DMIX_T1=2", "-DMIX_TO=1 -DMIX_T0=0", "-DMIX_TO=2 -DMIX_A0=1 -DMIX_A1=4 -DMIX_A2=5 -DMIX_IX32=1", "-DMIX_A0=2 -DMIX_A1=3 -DMIX_V=1" } : new[] { "-DMIX_TO=0" })
                {
                    var psi = new ProcessStartInfo(gxx!, $"-std=c++17 -fsyntax-only -Wall -Wno-unused-variable -Wno-unused-but-set-variable -Wno-unknown-pragmas -Werror {defines} {file}")
                    { RedirectStandardError = true, RedirectStandardOutput = true };
                    using var p = Process.Start(psi)!;
                    var err = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
                    p.WaitForExit();
                    if (p.ExitCode != 0) failures.Add($"{owner.Name}.{field} ({defines}):\n{err}");
                }
            }
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
