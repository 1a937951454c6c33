using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using Xunit;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// Kernel modules are assembled from several raw-string parts. A part that ends without a newline glues the next part's
/// first preprocessor line onto its last line ("}#if MIX_KV != 2"), which NVRTC rejects, while the g++ emulation (which
/// joins the parts itself) compiles fine: the third-generation KV kernel fell back to the second on the GPU host for
/// exactly this reason (run 15a). Every directive must start its line in the source NVRTC receives.
/// </summary>
public sealed class KernelSourceDirectiveTests
{
    private static readonly Regex GluedDirective = new(@"[^\s]\s*#\s*(if|ifdef|ifndef|elif|else|endif|define|include|pragma)\b",
        RegexOptions.Compiled);

    public static IEnumerable<object[]> Specs()
    {
        foreach (var mode in new[] { KvQuantMode.Kivi2, KvQuantMode.Kivi4, KvQuantMode.VidKv })
        {
            yield return new object[] { QuantizedKvAttention.Spec(0, mode, 128) };
            yield return new object[] { QuantizedKvAttention.StagedSpec(0, mode, 128) };
        }
        yield return new object[] { FusedMambaStep.Spec(0) };
        yield return new object[] { FusedKernels.Pooling(0) };
        yield return new object[] { FusedKernels.LayerNorm(0) };
        yield return new object[] { FusedKernels.Scan(0) };
        yield return new object[] { FusedKernels.QuantGemm(2, 1) };
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void EveryPreprocessorDirectiveStartsItsLine(CudaKernelSpec spec)
    {
        var glued = spec.Source.Split('\n')
            .Select((line, i) => (line, i))
            .Where(l => GluedDirective.IsMatch(StripComment(l.line)))
            .Select(l => $"line {l.i + 1}: {l.line.Trim()}")
            .ToList();
        Assert.True(glued.Count == 0, $"{spec.Name}: directives glued to code: {string.Join("; ", glued.Take(3))}");
    }

    // a '#' inside a comment ("// see #3") is not a directive
    private static string StripComment(string line)
    {
        int c = line.IndexOf("//", System.StringComparison.Ordinal);
        return c >= 0 ? line[..c] : line;
    }
}
