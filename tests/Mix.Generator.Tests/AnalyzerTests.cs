using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>The analyzer reports front-end diagnostics at exact spans; the generator skips the file without reporting again.</summary>
public class AnalyzerTests
{
    const string Bad = "block b(dim: int) (x: [B, dim]) -> [B, dim]\n{\n  fc = linaer(dim, dim)\n}\n";

    static ImmutableArray<Diagnostic> Analyze(params InMemoryText[] texts)
    {
        var compilation = Harness.Compilation("namespace User { public class A { } }");
        var options = new AnalyzerOptions(texts.Cast<AdditionalText>().ToImmutableArray());
        return compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new MixAnalyzer()), options)
            .GetAnalyzerDiagnosticsAsync(TestContext.Current.CancellationToken).Result;
    }

    [Fact]
    public void Unknown_name_is_reported_at_its_exact_span_with_help_link()
    {
        var diagnostics = Analyze(new InMemoryText("/p/bad.mix", Bad));
        var d = Assert.Single(diagnostics, x => x.Id == "MIX0101");
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal("/p/bad.mix", d.Location.GetLineSpan().Path);
        Assert.Equal(Bad.IndexOf("linaer", System.StringComparison.Ordinal), d.Location.SourceSpan.Start);
        Assert.Equal("linaer".Length, d.Location.SourceSpan.Length);
        Assert.Equal((2, 7), (d.Location.GetLineSpan().StartLinePosition.Line, d.Location.GetLineSpan().StartLinePosition.Character));
        Assert.Equal((2, 13), (d.Location.GetLineSpan().EndLinePosition.Line, d.Location.GetLineSpan().EndLinePosition.Character));
        Assert.Contains("linear", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("docs/language.md#mix0101", d.Descriptor.HelpLinkUri);
    }

    [Fact]
    public void Imports_resolve_within_the_additional_files()
    {
        var lib = new InMemoryText("/p/lib/blocks.mix", "block b(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var user = new InMemoryText("/p/net.mix", "import \"lib/blocks.mix\"\nmodel m(dim: int = 8) (x: [B, 8]) -> [B, 8] { body = b(dim) }\n");
        Assert.Empty(Analyze(lib, user));
        var missing = Analyze(user);
        Assert.Equal("MIX0104", missing.OrderBy(x => x.Location.SourceSpan.Start).First().Id);
    }

    [Fact]
    public void A_problem_inside_the_standard_library_is_reported_at_its_library_path()
    {
        const string User = "import \"mix/std/mixers.mix\"\nblock b(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n  m = sepconv(kernel_size = 5)(dim)\n  return m(x)\n}\n";
        var diagnostics = Analyze(new InMemoryText("/p/net.mix", User));
        var library = Assert.Single(diagnostics, d => d.Location.GetLineSpan().Path == "mix/std/sepconv.mix");
        Assert.Equal("MIX0303", library.Id);
        Assert.Equal(12, library.Location.GetLineSpan().StartLinePosition.Line);
        // The standard library itself, used as it should be, reports nothing.
        Assert.Empty(Analyze(new InMemoryText("/p/net.mix", User.Replace("kernel_size = 5", "kernel_size = 5, padding = 2"))));
    }

    [Fact]
    public void Generator_skips_invalid_files_without_reporting_twice()
    {
        var good = new InMemoryText(Harness.Root + "good.mix", "block g(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var result = Harness.Run(new[] { new InMemoryText(Harness.Root + "bad.mix", Bad), good }, out var output);
        Assert.Empty(result.Diagnostics);
        var hints = result.Results.Single().GeneratedSources.Select(s => s.HintName).ToList();
        Assert.DoesNotContain("bad.mix.g.cs", hints);
        Assert.Contains("good.mix.g.cs", hints);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning));
    }

    [Fact]
    public void Every_front_end_id_has_one_descriptor()
    {
        var ids = new MixAnalyzer().SupportedDiagnostics.Select(d => d.Id).ToList();
        Assert.Equal(Mix.Dsl.Diagnostics.DiagnosticIds.All.Select(d => d.Id).OrderBy(i => i), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }
}

/// <summary>[MixModel] binds a user partial class to a .mix model; misuse is reported at the attribute.</summary>
public class MixModelTests
{
    static GeneratorDriverRunResult Run(string csharp, out Compilation output) => Harness.Run(Harness.Examples(), out output, csharp);

    [Fact]
    public void Partial_class_becomes_the_model()
    {
        var result = Run("namespace User { [Mix.MixModel(\"models/poolformer.mix\", \"poolformer_s12\")] public partial class MyNet { } }", out var output);
        Assert.Empty(result.Diagnostics);
        Assert.Contains(result.Results.Single().GeneratedSources, s => s.HintName == "User.MyNet.MixModel.g.cs");
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()));
        var type = output.GetTypeByMetadataName("User.MyNet")!;
        Assert.Equal("Module", type.BaseType!.Name);
        Assert.NotNull(type.GetTypeMembers("Options").SingleOrDefault());
    }

    [Theory]
    [InlineData("[Mix.MixModel(\"models/poolformer.mix\", \"poolformer_s99\")] public partial class MyNet { }", "MIX9102")]
    [InlineData("[Mix.MixModel(\"models/nope.mix\", \"poolformer_s12\")] public partial class MyNet { }", "MIX9101")]
    [InlineData("[Mix.MixModel(\"models/poolformer.mix\", \"poolformer_s12\")] public class MyNet { }", "MIX9103")]
    public void Misuse_is_reported_at_the_attribute(string declaration, string id)
    {
        var source = "namespace User { " + declaration + " }";
        var result = Run(source, out _);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal(id, d.Id);
        Assert.Equal("docs/generator.md#" + id.ToLowerInvariant(), d.Descriptor.HelpLinkUri);
        Assert.Contains("\n### " + id + "\n", GeneratorDocs.Text);
        var attribute = source.IndexOf("Mix.MixModel", System.StringComparison.Ordinal);
        Assert.Equal(attribute, d.Location.SourceSpan.Start);
    }
}

/// <summary>docs/generator.md: a section per generator diagnostic, the help links point there.</summary>
public class GeneratorDocs
{
    public static string Text => File.ReadAllText(Path.Combine(Harness.RepoRoot(), "docs", "generator.md")).Replace("\r\n", "\n");

    [Fact]
    public void Unsupported_construct_is_MIX9001_with_its_help_link()
    {
        var text = new InMemoryText(Harness.Root + "u.mix",
            "block b(dim: int, hidden: int = dim) (x: [B, dim]) -> [B, dim] { fc = linear(dim, hidden)\n  fc2 = linear(hidden, dim) }\n" +
            "block ok(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var result = Harness.Run(new[] { text }, out _);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("MIX9001", d.Id);
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Equal("docs/generator.md#mix9001", d.Descriptor.HelpLinkUri);
        Assert.Equal(Harness.Root + "u.mix", d.Location.GetLineSpan().Path);
        var source = result.Results.Single().GeneratedSources.Single(s => s.HintName == "u.mix.g.cs").SourceText.ToString();
        Assert.Contains("class Ok ", source);
        Assert.DoesNotContain("class B ", source);
    }

    [Fact]
    public void Per_file_namespace_metadata_applies()
    {
        var a = new InMemoryText(Harness.Root + "a.mix", "block a(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var b = new InMemoryText(Harness.Root + "b.mix", "block b(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var options = new Options(new Dictionary<string, string> { ["build_property.ProjectDir"] = Harness.Root, ["build_property.MixNamespace"] = "Global.Ns" },
            new Dictionary<string, IReadOnlyDictionary<string, string>> { [a.Path] = new Dictionary<string, string> { ["build_metadata.AdditionalFiles.MixNamespace"] = "Per.File" } });
        var driver = Harness.Driver(new[] { a, b }, options).RunGenerators(Harness.Compilation(), TestContext.Current.CancellationToken);
        var sources = driver.GetRunResult().Results.Single().GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        Assert.Contains("namespace Per.File", sources["a.mix.g.cs"]);
        Assert.Contains("namespace Global.Ns", sources["b.mix.g.cs"]);
    }
}
