using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>The generator reports front-end diagnostics at exact spans, once, whatever else fails; one broken file or
/// definition leaves unrelated files generated.</summary>
public class FrontEndReportingTests
{
    const string Bad = "block b(dim: int) (x: [B, dim]) -> [B, dim]\n{\n  fc = linaer(dim, dim)\n}\n";

    static ImmutableArray<Diagnostic> Report(params InMemoryText[] texts) =>
        Harness.Driver(texts).RunGenerators(Harness.Compilation("namespace User { public class A { } }"), TestContext.Current.CancellationToken)
            .GetRunResult().Diagnostics;

    [Fact]
    public void Unknown_name_is_reported_at_its_exact_span_with_help_link()
    {
        var diagnostics = Report(new InMemoryText("/p/bad.mix", Bad));
        var d = Assert.Single(diagnostics);
        Assert.Equal("MIX0101", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal("/p/bad.mix", d.Location.GetLineSpan().Path);
        Assert.Equal(Bad.IndexOf("linaer", System.StringComparison.Ordinal), d.Location.SourceSpan.Start);
        Assert.Equal("linaer".Length, d.Location.SourceSpan.Length);
        Assert.Equal((2, 7), (d.Location.GetLineSpan().StartLinePosition.Line, d.Location.GetLineSpan().StartLinePosition.Character));
        Assert.Equal((2, 13), (d.Location.GetLineSpan().EndLinePosition.Line, d.Location.GetLineSpan().EndLinePosition.Character));
        Assert.Contains("linear", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(HelpLinks.BaseUrl + "docs/language.md#mix0101-unknown-name", d.Descriptor.HelpLinkUri);
    }

    [Fact]
    public void Imports_resolve_within_the_additional_files()
    {
        var lib = new InMemoryText("/p/lib/blocks.mix", "block b(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var user = new InMemoryText("/p/net.mix", "import \"lib/blocks.mix\"\nmodel m(dim: int = 8) (x: [B, 8]) -> [B, 8] { body = b(dim) }\n");
        Assert.Empty(Report(lib, user));
        var missing = Report(user);
        Assert.Equal("MIX0104", missing.OrderBy(x => x.Location.SourceSpan.Start).First().Id);
    }

    [Fact]
    public void A_problem_inside_the_standard_library_is_reported_at_its_library_path()
    {
        const string User = "import \"mix/std/mixers.mix\"\nblock b(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n  m = sepconv(kernel_size = 5)(dim)\n  return m(x)\n}\n";
        var diagnostics = Report(new InMemoryText("/p/net.mix", User));
        var library = Assert.Single(diagnostics, d => d.Location.GetLineSpan().Path == "mix/std/sepconv.mix");
        Assert.Equal("MIX0303", library.Id);
        Assert.Equal(12, library.Location.GetLineSpan().StartLinePosition.Line);
        // The standard library itself, used as it should be, reports nothing.
        Assert.Empty(Report(new InMemoryText("/p/net.mix", User.Replace("kernel_size = 5", "kernel_size = 5, padding = 2"))));
    }

    /// <summary>The consumer of issue 11: its only C# uses the namespace the broken file would have filled. The
    /// compiler stops at that declaration error before any analyzer runs, so the generator's report must carry it.</summary>
    [Fact]
    public void A_broken_file_is_reported_although_the_csharp_that_uses_it_does_not_compile()
    {
        var driver = Harness.Driver(new[] { new InMemoryText(Harness.Root + "bad.mix", Bad) });
        driver.RunGeneratorsAndUpdateCompilation(Harness.Compilation("using Mix.Snapshots;\nclass P { object M() => new B(8); }"), out var output, out var reported,
            TestContext.Current.CancellationToken);
        var d = Assert.Single(reported);
        Assert.Equal("MIX0101", d.Id);
        Assert.Equal(Harness.Root + "bad.mix", d.Location.GetLineSpan().Path);
        Assert.Contains(output.GetDiagnostics(TestContext.Current.CancellationToken), x => x.Id == "CS0246");
    }

    [Fact]
    public void A_broken_file_is_skipped_and_reported_once_while_others_generate()
    {
        var good = new InMemoryText(Harness.Root + "good.mix", "block g(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var result = Harness.Run(new[] { new InMemoryText(Harness.Root + "bad.mix", Bad), good }, out var output);
        Assert.Equal("MIX0101", Assert.Single(result.Diagnostics).Id);
        var hints = result.Results.Single().GeneratedSources.Select(s => s.HintName).ToList();
        Assert.DoesNotContain("bad.mix.g.cs", hints);
        Assert.Contains("good.mix.g.cs", hints);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning));
    }

    /// <summary>An error in an imported file is reported once (every importer's check sees it), and an importer that
    /// does not use the broken definition is still generated; one that uses it is not.</summary>
    [Fact]
    public void A_broken_definition_removes_only_the_files_that_use_it()
    {
        var lib = new InMemoryText(Harness.Root + "lib.mix",
            "block good(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n" +
            "block broken(dim: int) (x: [B, dim]) -> [B, dim] { fc = linaer(dim, dim) }\n");
        var other = new InMemoryText(Harness.Root + "other.mix",
            "import \"lib.mix\"\nmodel uses_good(dim: int = 8) (x: [B, dim]) -> [B, dim] { body = good(dim) }\n");
        var user = new InMemoryText(Harness.Root + "user.mix",
            "import \"lib.mix\"\nmodel uses_broken(dim: int = 8) (x: [B, dim]) -> [B, dim] { body = broken(dim) }\n");
        var standalone = new InMemoryText(Harness.Root + "standalone.mix",
            "import \"lib.mix\"\nmodel alone(dim: int = 8) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n");
        var result = Harness.Run(new[] { lib, other, user, standalone }, out _);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("MIX0101", d.Id);
        Assert.Equal(Harness.Root + "lib.mix", d.Location.GetLineSpan().Path);
        var hints = result.Results.Single().GeneratedSources.Select(s => s.HintName).ToList();
        // lib.mix has an error, so none of its classes exist: other.mix, which needs Good, cannot be generated either.
        Assert.DoesNotContain("lib.mix.g.cs", hints);
        Assert.DoesNotContain("user.mix.g.cs", hints);
        Assert.DoesNotContain("other.mix.g.cs", hints);
        Assert.Contains("standalone.mix.g.cs", hints);
    }

    /// <summary>The three mistakes of issue 11 in a block used five times: one diagnostic each, at the mistake.</summary>
    [Theory]
    [InlineData("groupnrom1(dim)", "conv2d(dim, dim, kernel_size = 3, padding = 1)", "MIX0101", "groupnrom1")]
    [InlineData("groupnorm1(dim)", "conv2d(dim, dim, kernal_size = 3, padding = 1)", "MIX0201", "kernal_size")]
    [InlineData("groupnorm1(dim)", "conv2d(dim, dim, padding = 1)", "MIX0202", "conv2d(dim, dim, padding")]
    public void One_mistake_is_one_diagnostic(string norm, string conv, string id, string marked)
    {
        var text = "block blk(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {\n" +
                   $"  norm = {norm}\n  conv = {conv}\n  proj = conv2d(dim, dim, kernel_size = 1)\n" +
                   "  return x + proj(gelu(conv(norm(x))))\n}\n" +
                   "model tiny(num_classes: int = 10) (x: [B, 3, H, W]) -> [B, num_classes] {\n" +
                   "  stem = conv2d(3, 16, kernel_size = 7, stride = 4, padding = 2)\n  blocks = 5 x blk(16)\n" +
                   "  head = linear(16, num_classes)\n  return x |> stem |> blocks |> mean([2, 3]) |> head\n}\n";
        var d = Assert.Single(Report(new InMemoryText(Harness.Root + "tiny.mix", text)));
        Assert.Equal(id, d.Id);
        var start = text.IndexOf(marked, System.StringComparison.Ordinal);
        var length = id == "MIX0202" ? "conv2d".Length : marked.Length;
        Assert.Equal(new Microsoft.CodeAnalysis.Text.TextSpan(start, length), d.Location.SourceSpan);
    }

    [Fact]
    public void Every_front_end_id_has_one_descriptor()
    {
        var ids = FrontEndDescriptors.All.Select(d => d.Id).ToList();
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
        Assert.Equal(HelpLinks.BaseUrl + "docs/generator.md#" + id.ToLowerInvariant(), d.Descriptor.HelpLinkUri);
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
        Assert.Equal(HelpLinks.BaseUrl + "docs/generator.md#mix9001", d.Descriptor.HelpLinkUri);
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
