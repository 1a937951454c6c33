using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Xunit;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The persistent Mamba kernel (<see cref="MambaStackKernelSources"/>, with the step's device functions) compiled by NVRTC
/// for sm_90 in every build the runtime asks for — float32, float16, bfloat16, each with the default grid barrier or the
/// one-atomic one (<see cref="FusedMambaStack.PersistentFastBarrier"/>), with or without x_proj folded into the in_proj
/// phase (<see cref="FusedMambaStack.PersistentFoldXProj"/>) — no GPU needed (skipped where NVRTC is not
/// found; <c>MIX_NVRTC_PATH</c> names a library). <c>mamba_stack_persistent</c> must have no stack frame and no spills
/// (a spill is a local-memory round trip inside a phase whose whole budget is a few of them), and at most 128 registers a
/// thread, so that two 256-thread blocks stay resident per multiprocessor (<see cref="FusedMambaStack.PersistentBlocksPerSm"/>'s
/// default; the grid is sized from the occupancy query, so more registers would silently halve it).
/// </summary>
public class MambaStackKernelCompileTests
{
    private static readonly Regex Entry = new(@"Compiling entry function '(\w+)' for '(\w+)'");
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    private static readonly Regex Used = new(@"Used (\d+) registers");

    [Fact]
    public void PersistentKernelCompilesWithoutLocalMemoryInEveryBuild()
    {
        var nvrtc = Nvrtc.TryLoad(out var error);
        Assert.SkipWhen(nvrtc is null, "NVRTC is not available: " + error);
        var problems = new List<string>();
        var report = new List<string>();
        int builds = 0;
        foreach (int dtype in new[] { 0, 1, 2 })
            foreach (bool fast in new[] { false, true })
            foreach (bool fold in new[] { false, true })
            {
                var spec = PersistentMambaSegment.Spec(dtype, fast, fold);
                var options = KernelRuntime.CompileOptions(spec, "sm_90").Append("--ptxas-options=-v").ToArray();
                nvrtc!.CompileToCubin(spec.Source, spec.Name, options, out var log);
                string build = string.Join(" ", spec.Options);
                bool inEntry = false, found = false;
                int? frame = null;
                foreach (var line in log.Split('\n'))
                {
                    var e = Entry.Match(line);
                    if (e.Success) { inEntry = e.Groups[1].Value == "mamba_stack_persistent"; frame = null; continue; }
                    if (!inEntry) continue;
                    var f = Frame.Match(line);
                    if (f.Success)
                    {
                        frame = int.Parse(f.Groups[1].Value) + int.Parse(f.Groups[2].Value) + int.Parse(f.Groups[3].Value);
                        continue;
                    }
                    var u = Used.Match(line);
                    if (!u.Success) continue;
                    int regs = int.Parse(u.Groups[1].Value);
                    found = true;
                    report.Add($"mamba_stack_persistent ({build}): {regs} registers, frame + spills {frame}");
                    if (frame is null) problems.Add($"{build}: no stack/spill line in the log");
                    else if (frame != 0) problems.Add($"{build}: stack frame + spills = {frame} bytes");
                    if (regs > 128) problems.Add($"{build}: {regs} registers > 128 (fewer than two blocks per SM)");
                    inEntry = false;
                }
                if (!found) problems.Add($"{build}: mamba_stack_persistent not in the ptxas log:\n{log}");
                builds++;
            }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", report));
        Assert.Equal(12, builds);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
