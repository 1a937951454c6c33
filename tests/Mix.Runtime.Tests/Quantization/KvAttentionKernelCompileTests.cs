using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using Xunit;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// The quantized-cache attention module compiled by NVRTC for sm_90, no GPU needed (skipped where NVRTC is not found;
/// <c>MIX_NVRTC_PATH</c> names a library): the staged module of each cache (it holds the second-generation entries
/// too) at head dimension 128, float16 I/O, VidKV also with its trit bytes decoded by arithmetic. The one-query
/// entries — the decode step's and the benchmark's, both generations, all three caches — compile with no stack frame
/// and no spills: their per-lane score and value arrays are sized at compile time, and local memory would put
/// DRAM-backed traffic into a kernel meant to be bound by the packed cache's stream (before the transposing sum was
/// unrolled per step, every one of them held its 32 partial scores in a 256-byte stack frame). The 2- and 4-query
/// entries still spill under their register bounds (168 and 255): reported in the test output, not asserted.
/// </summary>
public class KvAttentionKernelCompileTests
{
    private static readonly Regex Entry = new(@"Compiling entry function '(\w+)' for '(\w+)'");
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    private static readonly Regex Used = new(@"Used (\d+) registers");

    [Theory]
    [InlineData(nameof(KvQuantMode.VidKv), false)]
    [InlineData(nameof(KvQuantMode.VidKv), true)]
    [InlineData(nameof(KvQuantMode.Kivi4), false)]
    [InlineData(nameof(KvQuantMode.Kivi2), false)]
    public void OneQueryEntriesCompileWithoutLocalMemory(string mode, bool tritArithmetic)
    {
        var nvrtc = Nvrtc.TryLoad(out var error);
        Assert.SkipWhen(nvrtc is null, "NVRTC is not available: " + error);
        var spec = QuantizedKvAttention.StagedSpec(1, System.Enum.Parse<KvQuantMode>(mode), 128, rolled: false, tritAlu: tritArithmetic);
        Assert.Equal(tritArithmetic, spec.Options.Contains("-DKVA_TRIT_ALU=1"));
        var options = KernelRuntime.CompileOptions(spec, "sm_90").Append("--ptxas-options=-v").ToArray();
        nvrtc!.CompileToCubin(spec.Source, spec.Name, options, out var log);
        // ptxas prints, per entry: the entry's name, its frame/spill line, then its register line
        var frames = new Dictionary<string, int>();
        var report = new List<string>();
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
            Assert.True(frame is not null, $"{current}: no stack/spill line in the log");
            frames[current] = frame!.Value;
            report.Add($"{current} ({mode}, D=128, sm_90): {u.Groups[1].Value} registers, stack frame + spill bytes {frame}");
            current = null;
        }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", report));
        foreach (var entry in new[] { "kva_fast_q1", "kva_split_q1", "kva_fast_q2", "kva_fast_q4", "kva_split_q2", "kva_split_q4", "kva_combine" })
            Assert.True(frames.ContainsKey(entry), $"{entry} was not compiled: {string.Join(", ", frames.Keys)}");
        foreach (var entry in new[] { "kva_fast_q1", "kva_split_q1", "kva_combine", "kva_append", "kva_table_row" })
            Assert.True(frames[entry] == 0, $"{entry} ({mode}): stack frame + spills = {frames[entry]} bytes\n{string.Join("\n", report)}");
    }
}
