using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Mix.Generator;

namespace Mix.Cli;

/// <summary>Runs the Mix source generator over .mix texts in memory (no project, no TorchSharp needed: the
/// generator reads only the .mix files and the MSBuild settings).</summary>
public static class GeneratorRunner
{
    /// <summary>The generated sources (hint name, text) and the generator's diagnostics in compiler format.</summary>
    public sealed record Result(IReadOnlyList<(string HintName, string Text)> Sources, IReadOnlyList<string> Diagnostics);

    /// <summary>Generates C# for <paramref name="sources"/> in namespace <paramref name="ns"/>; hint names are relative
    /// to <paramref name="projectDir"/>.</summary>
    public static Result Run(IEnumerable<Mix.Dsl.Text.SourceText> sources, string ns, string projectDir)
    {
        var texts = sources.Select(s => (AdditionalText)new Text(System.IO.Path.GetFullPath(s.Path), s.Text)).ToImmutableArray();
        var options = new Options(new Dictionary<string, string>
        {
            ["build_property.MixNamespace"] = ns,
            ["build_property.ProjectDir"] = projectDir.TrimEnd('/') + "/",
        });
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new[] { new MixGenerator().AsSourceGenerator() }, texts, parse, options);
        var compilation = CSharpCompilation.Create("MixEmit", Array.Empty<SyntaxTree>(), Array.Empty<MetadataReference>(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        driver = driver.RunGenerators(compilation);
        var run = driver.GetRunResult();
        var generated = run.Results.SelectMany(r => r.GeneratedSources)
            .Where(g => !g.HintName.StartsWith("Mix.Attributes", StringComparison.Ordinal) && !g.HintName.StartsWith("Mix.Settings", StringComparison.Ordinal))
            .OrderBy(g => g.HintName, StringComparer.Ordinal)
            .Select(g => (g.HintName, g.SourceText.ToString())).ToList();
        var diagnostics = run.Diagnostics.Select(Format).ToList();
        return new Result(generated, diagnostics);
    }

    static string Format(Diagnostic d)
    {
        var span = d.Location.GetLineSpan();
        var sev = d.Severity switch { DiagnosticSeverity.Error => "error", DiagnosticSeverity.Warning => "warning", _ => "info" };
        return $"{span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}): {sev} {d.Id}: {d.GetMessage()}";
    }

    sealed class Text : AdditionalText
    {
        readonly Microsoft.CodeAnalysis.Text.SourceText _text;
        public Text(string path, string text) { Path = path; _text = Microsoft.CodeAnalysis.Text.SourceText.From(text); }
        public override string Path { get; }
        public override Microsoft.CodeAnalysis.Text.SourceText GetText(CancellationToken cancellationToken = default) => _text;
    }

    sealed class Options : AnalyzerConfigOptionsProvider
    {
        sealed class Values : AnalyzerConfigOptions
        {
            readonly IReadOnlyDictionary<string, string> _values;
            public Values(IReadOnlyDictionary<string, string> values) => _values = values;
            public override bool TryGetValue(string key, out string value)
            {
                if (_values.TryGetValue(key, out var v)) { value = v; return true; }
                value = "";
                return false;
            }
        }

        static readonly Values s_empty = new(new Dictionary<string, string>());
        readonly Values _global;
        public Options(IReadOnlyDictionary<string, string> global) => _global = new Values(global);
        public override AnalyzerConfigOptions GlobalOptions => _global;
        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => s_empty;
        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => s_empty;
    }
}
