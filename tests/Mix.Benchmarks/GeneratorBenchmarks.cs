using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using BenchmarkDotNet.Attributes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using Mix.Generator;

namespace Mix.Benchmarks;

/// <summary>
/// The target: generator time per .mix edit under 5 ms for a PoolFormer-sized file. The project holds
/// poolformer.mix and the library it imports (metaformer.mix), or every example. "edit" replaces poolformer.mix with a
/// text whose spec differs (num_classes default 1000 ↔ 100, alternating) and reruns the driver: the incremental
/// path (all files re-checked together, only poolformer.mix re-emitted). "comment edit" changes only a comment (spec
/// equal, nothing re-emitted). "full first run" makes a new driver each time (nothing cached).
/// </summary>
[MemoryDiagnoser, MinColumn, MedianColumn]
public class GeneratorBenchmarks
{
    sealed class Text : AdditionalText
    {
        readonly SourceText _text;
        public Text(string path, string text) { Path = path; _text = SourceText.From(text); }
        public override string Path { get; }
        public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
    }

    sealed class Options : AnalyzerConfigOptionsProvider
    {
        sealed class Dict : AnalyzerConfigOptions
        {
            readonly Dictionary<string, string> _values;
            public Dict(Dictionary<string, string> values) => _values = values;
            public override bool TryGetValue(string key, out string value) => _values.TryGetValue(key, out value!);
        }

        static readonly Dict s_empty = new(new Dictionary<string, string>());
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Dict(new Dictionary<string, string>
        {
            ["build_property.ProjectDir"] = "/bench/",
            ["build_property.MixNamespace"] = "Bench",
        });
        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => s_empty;
        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => s_empty;
    }

    /// <summary>poolformer: poolformer.mix + metaformer.mix (what it imports). all: every example.</summary>
    [Params("poolformer", "all")]
    public string Files { get; set; } = "poolformer";

    CSharpCompilation _compilation = null!;
    List<Text> _texts = null!;
    Text[] _edits = null!;
    Text[] _commentEdits = null!;
    GeneratorDriver _driver = null!;
    GeneratorDriver _commentDriver = null!;
    int _next, _nextComment;
    AdditionalText _current = null!, _currentComment = null!;

    [GlobalSetup]
    public void Setup()
    {
        var dir = FrontEndBenchmarksPaths.ModelsDir();
        var names = Files == "poolformer" ? new[] { "metaformer.mix", "poolformer.mix" }
            : Directory.GetFiles(dir, "*.mix").Select(Path.GetFileName).OrderBy(n => n, System.StringComparer.Ordinal).ToArray()!;
        _texts = names.Select(n => new Text("/bench/models/" + n, File.ReadAllText(Path.Combine(dir, n!)))).ToList();
        var pool = _texts.Single(t => t.Path.EndsWith("/poolformer.mix", System.StringComparison.Ordinal));
        var source = pool.GetText().ToString();
        const string from = "model poolformer_s24(num_classes: int = 1000)";
        if (!source.Contains(from)) throw new System.InvalidOperationException("poolformer.mix changed; update the benchmark edit");
        _edits = new[] { new Text(pool.Path, source.Replace(from, "model poolformer_s24(num_classes: int = 100)")), new Text(pool.Path, source) };
        _commentEdits = new[] { new Text(pool.Path, source.Replace("// PoolFormer", "// The PoolFormer family")), new Text(pool.Path, source) };
        _compilation = CSharpCompilation.Create("Bench", new[] { CSharpSyntaxTree.ParseText("namespace User { public class A { } }") },
            new[] { MetadataReference.CreateFromFile(typeof(object).Assembly.Location) },
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        _driver = NewDriver().RunGenerators(_compilation);
        _commentDriver = NewDriver().RunGenerators(_compilation);
        _current = _currentComment = pool;
        Check(_driver);
    }

    GeneratorDriver NewDriver() => CSharpGeneratorDriver.Create(new[] { new MixGenerator().AsSourceGenerator() }, _texts,
        new CSharpParseOptions(LanguageVersion.Latest), new Options(), new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, false));

    static void Check(GeneratorDriver driver)
    {
        var run = driver.GetRunResult();
        if (run.Diagnostics.Length > 0 || !run.GeneratedTrees.Any(t => t.FilePath.EndsWith("poolformer.mix.g.cs", System.StringComparison.Ordinal)))
            throw new System.InvalidOperationException("the generator did not produce poolformer.mix.g.cs cleanly: " + string.Join("; ", run.Diagnostics) + " / " + string.Join(", ", run.GeneratedTrees.Select(t => t.FilePath)) + " / " + string.Join("; ", run.Results.Select(r => r.Exception?.ToString())));
    }

    [Benchmark(Baseline = true, Description = "full first run")]
    public GeneratorDriver FullFirstRun() => NewDriver().RunGenerators(_compilation);

    [Benchmark(Description = "edit (spec changes) + incremental run")]
    public GeneratorDriver EditAndRun()
    {
        var edit = _edits[_next++ & 1];
        _driver = _driver.ReplaceAdditionalText(_current, edit).RunGenerators(_compilation);
        _current = edit;
        return _driver;
    }

    /// <summary>What the front end alone takes to parse and check all the files together (what the analyzer does, and
    /// what an edit cost before the generator checked each file with its imports).</summary>
    [Benchmark(Description = "front end only: parse + check")]
    public int FrontEndOnly() => Mix.Dsl.MixCompilation.Create(_texts.Select(t => new Mix.Dsl.Text.SourceText(t.Path, t.GetText().ToString()))).Definitions.Count;

    /// <summary>Parsing alone (no check) of the same files.</summary>
    public int ParseOnly() => _texts.Sum(t => Mix.Dsl.Syntax.MixParser.Parse(new Mix.Dsl.Text.SourceText(t.Path, t.GetText().ToString()), new Mix.Dsl.Diagnostics.DiagnosticBag()).Definitions.Count);

    /// <summary>SpecBuilder is internal to the generator: found once, not inside the measured call.</summary>
    static readonly System.Reflection.MethodInfo SpecBuild = typeof(MixGenerator).Assembly.GetType("Mix.Generator.SpecBuilder")!.GetMethods()
        .Single(m => m.Name == "Build" && m.GetParameters().Length == 2);

    /// <summary>The generator's spec step alone (front end + translation of every definition), no Roslyn driver.</summary>
    public object SpecsOnly()
    {
        var build = SpecBuild;
        var inputs = System.Collections.Immutable.ImmutableArray.CreateRange(_texts.Select(t => new MixInput(t.Path, t.GetText().ToString())));
        return build.Invoke(null, new object[] { inputs, new GeneratorSettings("Bench", "/bench/", true) })!;
    }

    [Benchmark(Description = "comment edit + incremental run")]
    public GeneratorDriver CommentEditAndRun()
    {
        var edit = _commentEdits[_nextComment++ & 1];
        _commentDriver = _commentDriver.ReplaceAdditionalText(_currentComment, edit).RunGenerators(_compilation);
        _currentComment = edit;
        return _commentDriver;
    }
}

static class FrontEndBenchmarksPaths
{
    public static string ModelsDir([System.Runtime.CompilerServices.CallerFilePath] string here = "")
    {
        if (System.Environment.GetEnvironmentVariable("MIX_MODELS_DIR") is { Length: > 0 } models) return models; // a copied build elsewhere
        var dir = Path.GetDirectoryName(here)!;
        while (!File.Exists(Path.Combine(dir, "Dsl.sln"))) dir = Path.GetDirectoryName(dir)!;
        return Path.Combine(dir, "models");
    }
}
