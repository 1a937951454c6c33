using System;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// A binding whose value is a list of tensors (a comprehension, an array literal, split's parts) becomes one local of
/// the forward, computed where it is bound. It used to be substituted at every use, so each <c>bands[j]</c> re-ran the
/// whole list: WaveMix's level-3 blocks made 108 Haar transforms instead of 3, which ran the GPU out of memory at
/// batch 32 (every intermediate lives until the caller's dispose scope ends).
/// </summary>
public class TensorListBindingTests
{
    const string Source = """
        block listed(n: int = 3) (x: [B, C, H, W]) -> [B, C, H, W]
        {
          ys = for j in 0..n: avg_pool2d(x, 1) * j
          pair = [sigmoid(x), tanh(x)]
          halves = split(x, [2, C - 2], 1)
          return ys[0] + ys[1] + ys[n - 1] + pair[0] * pair[1] + concat([halves[1], halves[0]], 1)
        }
        """;

    static string Generate()
    {
        var texts = new[] { new InMemoryText(Harness.Root + "listed.mix", Source) };
        var run = Harness.Run(texts, out var output);
        Assert.Empty(run.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning));
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error));
        return run.Results.Single().GeneratedSources.Single(s => s.HintName == "listed.mix.g.cs").SourceText.ToString();
    }

    static int Count(string code, string what) => Regex.Matches(code, Regex.Escape(what)).Count;

    [Fact]
    public void Each_list_of_tensors_is_computed_once_and_read_by_index()
    {
        var code = Generate();
        // the comprehension, the array literal and the split each appear once, bound to their names
        Assert.Equal(1, Count(code, "Fn.AvgPool2d("));
        Assert.Equal(1, Count(code, "Fn.Split("));
        Assert.Equal(1, Count(code, "Fn.Sigmoid("));
        Assert.Matches(@"var ys = Fn\.Range\(", code);
        Assert.Matches(@"var halves = Fn\.Split\(", code);
        Assert.Contains("ys[0]", code);
        Assert.Contains("halves[1]", code);
    }
}
