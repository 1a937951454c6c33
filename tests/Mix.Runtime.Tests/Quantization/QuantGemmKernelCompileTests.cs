using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Xunit;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// The tensor-core quantized linear compiled by NVRTC for real targets, no GPU needed (skipped where NVRTC is not found;
/// <c>MIX_NVRTC_PATH</c> names a library): every entry point compiles for sm_80 and sm_90, and ptxas
/// reports no stack frame and no spills (the opt-in builds too) (run 15a's build held 112–160 bytes of local memory per thread at M ≤ 16, and
/// local memory is slow DRAM-backed traffic in a kernel that is meant to be bound by the weight stream), with at most
/// 168 registers (three blocks of 128 threads per SM).
/// </summary>
public class QuantGemmKernelCompileTests
{
    private static readonly Regex Entry = new(@"Compiling entry function '(\w+)' for '(\w+)'");
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    private static readonly Regex Used = new(@"Used (\d+) registers");

    [Theory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void EveryEntryCompilesWithoutLocalMemory(string arch)
    {
        var nvrtc = Nvrtc.TryLoad(out var error);
        Assert.SkipWhen(nvrtc is null, "NVRTC is not available: " + error);
        var problems = new List<string>();
        int entries = 0;
        var report = new List<string>();
        foreach (var dt in new[] { 1, 2 })
            foreach (var (mode, fscale, ring) in new[] { (0, 0, 2), (1, 0, 2), (1, 2, 2), (0, 0, 3), (1, 0, 3) })
                {
                    // the kernel and the opt-in fp32-group-scale build (the benchmark probes compile from the same source;
                    // not checked, for time)
                    var spec = FusedKernels.QuantGemm(dt, mode, 0, fscale, ring);
                    var options = KernelRuntime.CompileOptions(spec, arch).Append("--ptxas-options=-v").ToArray();
                    nvrtc!.CompileToCubin(spec.Source, spec.Name, options, out var log);
                    // ptxas prints, per entry: the entry's name, its frame/spill line, then its register line
                    string? current = null;
                    int? frame = null;
                    foreach (var line in log.Split('\n'))
                    {
                        var e = Entry.Match(line);
                        if (e.Success) { current = e.Groups[1].Value; frame = null; entries++; continue; }
                        var f = Frame.Match(line);
                        if (f.Success && current is not null)
                        {
                            frame = int.Parse(f.Groups[1].Value) + int.Parse(f.Groups[2].Value) + int.Parse(f.Groups[3].Value);
                            continue;
                        }
                        var u = Used.Match(line);
                        if (!u.Success || current is null) continue;
                        int regs = int.Parse(u.Groups[1].Value);
                        string where = $"{current} (MIX_T={dt}, MIX_QMODE={mode}, MIX_QM_FSCALE={fscale}, MIX_QM_RING={ring}, {arch})";
                        report.Add($"{where}: {regs} registers, frame + spills {frame}");
                        if (frame is null) problems.Add($"{where}: no stack/spill line in the log");
                        else if (frame != 0) problems.Add($"{where}: stack frame + spills = {frame} bytes");
                        // the register cap is the default build's occupancy promise; the opt-in deeper ring may trade it
                        if (regs > 168 && ring == 2) problems.Add($"{where}: {regs} registers");
                        current = null;
                    }
                }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", report));
        // int4: 3 row tilings × 3 group layouts (default, fp32 group scale, deeper ring), int8: 3 (default, deeper ring), per dtype
        Assert.Equal(2 * (9 + 9 + 9 + 3 + 3), entries);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
