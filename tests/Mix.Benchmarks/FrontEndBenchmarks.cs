using System.IO;
using System.Linq;
using System.Text;
using BenchmarkDotNet.Attributes;
using Mix.Dsl;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Benchmarks;

/// <summary>
/// The issue's target: parse + check of a 500-line .mix file in under 20 ms after warm-up. The file is the
/// MetaFormer library repeated with renamed definitions (every copy is a full model, so checking builds seven
/// complete module trees). Parsing alone is the baseline, so the ratio shows what checking costs on top.
/// </summary>
[MemoryDiagnoser]
public class FrontEndBenchmarks
{
    SourceText _large = null!;
    SourceText[] _examples = null!;

    [GlobalSetup]
    public void Setup()
    {
        _examples = Directory.GetFiles(FrontEndBenchmarksPaths.ModelsDir(), "*.mix").OrderBy(p => p, System.StringComparer.Ordinal)
            .Select(p => new SourceText(Path.GetFileName(p), File.ReadAllText(p))).ToArray();
        _large = new SourceText("large.mix", LargeFile(_examples.Single(e => e.Path == "metaformer.mix").Text, minLines: 500));
    }

    /// <summary>Copies of the library with every definition renamed, until the file has at least minLines lines.</summary>
    public static string LargeFile(string library, int minLines)
    {
        var names = new[] { "metaformer_block", "metaformer", "downsampling", "stem" };
        var sb = new StringBuilder();
        for (int k = 0; sb.ToString().Split('\n').Length < minLines; k++)
        {
            var copy = library;
            foreach (var n in names) copy = System.Text.RegularExpressions.Regex.Replace(copy, $@"\b{n}\b", $"{n}_{k}");
            sb.AppendLine(copy);
        }
        return sb.ToString();
    }

    [Benchmark(Baseline = true, Description = "parse 500+ lines")]
    public int Parse500Lines() => MixParser.Parse(_large, new DiagnosticBag()).Definitions.Count;

    [Benchmark(Description = "parse + check 500+ lines")]
    public int ParseAndCheck500Lines() => MixCompilation.Create(new[] { _large }).Definitions.Count;

    [Benchmark(Description = "parse + check all examples")]
    public int CheckAllExamples() => MixCompilation.Create(_examples).Definitions.Count;
}
