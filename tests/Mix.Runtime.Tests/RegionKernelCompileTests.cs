using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The planner's regions at the shapes where run 17a compared them with the hand kernels (ConvFormer-S18, bfloat16:
/// StarReLU NCHW C128 56×56, the residual <c>x * rs + o</c> NCHW C64 56×56, the channel LayerNorm of channels-last C64
/// 56×56), compiled by NVRTC for sm_90 next to the hand kernels they are compared with (no GPU needed; skipped where
/// NVRTC is not found, <c>MIX_NVRTC_PATH</c> names a library). Each region entry, with one vector a thread and with
/// <see cref="FusedRegionKernel.PointwiseUnroll"/> 2, the norm with four and with eight halves a load
/// (<see cref="FusedRegionKernel.RowVector16"/>) and with its row in registers (<see cref="FusedRegionKernel.RowInRegisters"/>,
/// C64 and C512), must compile without stack frame or spills, and the unrolled
/// pointwise builds must stay within 64 registers (four blocks of 256 an SM, what the one-pass grid is sized for). The
/// register counts are printed: docs/gpu.md's "Regions against the hand kernels" table quotes them.
/// </summary>
public class RegionKernelCompileTests
{
    private static readonly Regex Entry = new(@"Compiling entry function '(\w+)' for '(\w+)'");
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    private static readonly Regex Used = new(@"Used (\d+) registers");

    private static (long[], long[], ScalarType) Nchw(long b, long c, long hw) =>
        (new[] { b, c, hw, hw }, new[] { c * hw * hw, hw * hw, hw, 1 }, ScalarType.BFloat16);

    private static (long[], long[], ScalarType) ChannelsLast(long b, long c, long hw) =>
        (new[] { b, c, hw, hw }, new[] { c * hw * hw, 1, hw * c, c }, ScalarType.BFloat16);

    private static (long[], long[], ScalarType) PerChannel(long c) => (new[] { c, 1, 1 }, new long[] { 1, 1, 1 }, ScalarType.BFloat16);

    private static (long[], long[], ScalarType) One() => (new long[] { 1 }, new long[] { 1 }, ScalarType.BFloat16);

    /// <summary>(what, spec, entries to report) for every kernel compared.</summary>
    private static IEnumerable<(string What, CudaKernelSpec Spec, string[] Entries, bool Region)> Kernels()
    {
        yield return ("hand StarReLU", FusedKernels.Epilogue(2, FusedActivation.StarReLU), new[] { "bias_act_vec" }, false);
        yield return ("hand residual", FusedKernels.Epilogue(2, FusedActivation.None), new[] { "scale_res_vec" }, false);
        yield return ("hand LayerNorm", FusedKernels.LayerNorm(2), new[] { "layer_norm_rows" }, false);
        var star = EpilogueRegions.BiasActivation(FusedActivation.StarReLU, bias: false)!;
        var res = EpilogueRegions.Residual(bias: false, layerScale: false, resScale: true)!;
        foreach (int u in new[] { 1, 2 })
        {
            FusedRegionKernel.ForcePointwiseUnroll = u;
            try
            {
                // the kernel's input order: starrelu (s, h, t), residual_rs (x, rs, o)
                var sp = star.Kernel.Prepare(new[] { One(), Nchw(128, 128, 56), One() }, new float[0])!;
                yield return ($"region {star.Name} U={u}", star.Kernel.Spec(sp), new[] { "mix_region_vec" }, true);
                var rp = res.Kernel.Prepare(new[] { Nchw(128, 64, 56), PerChannel(64), Nchw(128, 64, 56) }, new float[0])!;
                yield return ($"region {res.Name} U={u}", res.Kernel.Spec(rp), new[] { "mix_region_vec" }, true);
            }
            finally
            {
                FusedRegionKernel.ForcePointwiseUnroll = null;
            }
        }
        var ln = NormRegions.LayerNorm2dWeight;
        foreach (var (c, hw, wide, regs) in new (long, long, bool, bool)[] { (64, 56, false, false), (64, 56, true, false), (64, 56, true, true), (512, 7, true, true) })
        {
            FusedRegionKernel.ForceRowVector16 = wide;
            FusedRegionKernel.ForceRowInRegisters = regs;
            try
            {
                var lp = ln.Prepare(new[] { ChannelsLast(128, c, hw), PerChannel(c) }, new float[] { 1e-6f })!;
                Assert.Equal("mix_region_warp4", lp.Entry(aligned: true));
                Assert.Equal(wide ? 8 : 4, lp.RowVector);
                Assert.Equal(regs, lp.RowRegisters > 0);
                yield return ($"region layernorm2d_nobias C{c}, channels-last, {lp.RowVector} a load, {lp.RowRegisters} vectors in registers",
                    ln.Spec(lp), new[] { "mix_region_warp4" }, true);
            }
            finally
            {
                FusedRegionKernel.ForceRowVector16 = null;
                FusedRegionKernel.ForceRowInRegisters = null;
            }
        }
    }

    [Fact]
    public void Regions_at_the_benchmark_shapes_compile_without_local_memory()
    {
        var nvrtc = Nvrtc.TryLoad(out var error);
        Assert.SkipWhen(nvrtc is null, "NVRTC is not available: " + error);
        var problems = new List<string>();
        var report = new List<string>();
        foreach (var (what, spec, entries, region) in Kernels())
        {
            var options = KernelRuntime.CompileOptions(spec, "sm_90").Append("--ptxas-options=-v").ToArray();
            nvrtc!.CompileToCubin(spec.Source, spec.Name, options, out var log);
            string? current = null;
            int? frame = null;
            var seen = new HashSet<string>();
            foreach (var line in log.Split('\n'))
            {
                var e = Entry.Match(line);
                if (e.Success) { current = e.Groups[1].Value; frame = null; continue; }
                var f = Frame.Match(line);
                if (f.Success && current is not null)
                {
                    frame = int.Parse(f.Groups[1].Value) + int.Parse(f.Groups[2].Value) + int.Parse(f.Groups[3].Value);
                    continue;
                }
                var u = Used.Match(line);
                if (!u.Success || current is null) continue;
                if (entries.Contains(current))
                {
                    int regs = int.Parse(u.Groups[1].Value);
                    seen.Add(current);
                    report.Add($"{what}: {current} {regs} registers, frame + spills {frame} [{string.Join(" ", spec.Options)}]");
                    if (region && frame != 0) problems.Add($"{what} {current}: stack frame + spills = {frame} bytes");
                    if (region && what.Contains("U=2") && regs > 64) problems.Add($"{what} {current}: {regs} registers > 64");
                }
                current = null;
            }
            foreach (var name in entries) if (!seen.Contains(name)) problems.Add($"{what}: no register line for {name}");
        }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", report));
        // MIX_REGION_REGISTERS=<file>: the report, for docs/gpu.md
        if (System.Environment.GetEnvironmentVariable("MIX_REGION_REGISTERS") is { Length: > 0 } file) System.IO.File.WriteAllLines(file, report);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
