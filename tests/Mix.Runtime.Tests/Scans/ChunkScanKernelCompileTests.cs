using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Xunit;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The chunked scan kernels (<see cref="ChunkScanKernelSources"/>) compiled by NVRTC for sm_80 and sm_90, no GPU needed
/// (skipped where NVRTC is not found; <c>MIX_NVRTC_PATH</c> names a library): every entry of every dtype build compiles
/// with no stack frame and no spills, except two that already had them under NVRTC 11.8 (listed in
/// <see cref="KnownLocalMemory"/>: the first form's <c>chunk_output_gla_tc</c>, kept as it was for comparison, which the
/// second form replaces, and <c>chunk_output_ssd_tc</c> for sm_80 only). The second form's
/// register counts are what docs/gpu.md's occupancy figures rest on: <c>chunk_output_gla_tc2</c> ≤ 128 (two blocks of 256
/// per SM), <c>chunk_state_gla_tc2</c> ≤ 64 (four), <c>chunk_state_pass_t</c> ≤ 64 (four: the 384 blocks of a b4 · 16K
/// pass in one wave).
/// </summary>
public class ChunkScanKernelCompileTests
{
    private static readonly Regex Entry = new(@"Compiling entry function '(\w+)' for '(\w+)'");
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    private static readonly Regex Used = new(@"Used (\d+) registers");

    // (entry, arch or null for any), as measured when this test was written: chunk_output_gla_tc a 24-byte frame and 20
    // bytes of spill stores and loads (sm_80 and sm_90), chunk_output_ssd_tc on sm_80 an 8-byte frame, 4 / 8 bytes of spills
    private static readonly HashSet<(string, string?)> KnownLocalMemory = new() { ("chunk_output_gla_tc", null), ("chunk_output_ssd_tc", "sm_80") };

    private static readonly Dictionary<string, int> RegisterCaps = new()
    {
        ["chunk_output_gla_tc2"] = 128,
        ["chunk_state_gla_tc2"] = 64,
        ["chunk_state_pass_t"] = 64,
    };

    [Theory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void EveryEntryCompilesWithoutLocalMemory(string arch)
    {
        var nvrtc = Nvrtc.TryLoad(out var error);
        Assert.SkipWhen(nvrtc is null, "NVRTC is not available: " + error);
        var problems = new List<string>();
        var report = new List<string>();
        var seen = new HashSet<string>();
        foreach (var spec in CudaScanKernels.All(new[] { 0, 1, 2 }).Where(s => s.Name == "mix_chunk_scan"))
        {
            var options = KernelRuntime.CompileOptions(spec, arch).Append("--ptxas-options=-v").ToArray();
            nvrtc!.CompileToCubin(spec.Source, spec.Name, options, out var log);
            string build = string.Join(" ", spec.Options);
            string? current = null;
            int? frame = null;
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
                int regs = int.Parse(u.Groups[1].Value);
                string where = $"{current} ({build}, {arch})";
                seen.Add(current);
                report.Add($"{where}: {regs} registers, frame + spills {frame}");
                if (frame is null) problems.Add($"{where}: no stack/spill line in the log");
                else if (frame != 0 && !KnownLocalMemory.Contains((current, null)) && !KnownLocalMemory.Contains((current, arch))) problems.Add($"{where}: stack frame + spills = {frame} bytes");
                if (RegisterCaps.TryGetValue(current, out int cap) && regs > cap) problems.Add($"{where}: {regs} registers > {cap}");
                current = null;
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", report));
        foreach (var name in new[] { "chunk_state", "chunk_state_pass", "chunk_output", "chunk_state_gla_tc", "chunk_output_gla_tc",
                     "chunk_state_gla_tc2", "chunk_state_pass_t", "chunk_output_gla_tc2", "chunk_state_ssd_tc", "chunk_output_ssd_tc" })
            Assert.Contains(name, seen);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
