using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Reflection;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;
using Microsoft.CodeAnalysis.Text;
using Mix.Dsl.Diagnostics;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// Where every diagnostic of the catalog lands in the Error List. Each ID has a minimal bad input whose markup
/// (<c>{|MIX0101:nrom1|}</c>) marks exactly the text it must underline; Microsoft.CodeAnalysis.Testing then checks
/// the ID, the severity, the file and the start and end line/column of every diagnostic, and that there are no others.
/// Both the front-end IDs (MIX0xxx, on <c>.mix</c> AdditionalFiles) and the generator's own (MIX9xxx) are reported by
/// <see cref="MixGenerator"/>, as in a build. A new ID fails <see cref="Every_catalog_id_has_a_span_case"/>
/// until it has a row in <see cref="DiagnosticCases"/>, a markup test method named after it (<c>MIX9110_...</c>, as the
/// C# attribute tests have), or an entry in <see cref="DiagnosticCases.NotTriggerable"/> with a reason.
/// </summary>
public class DiagnosticCatalogTests
{
    public static TheoryData<string> FrontEndCases() => new(DiagnosticCases.All.Where(c => c.Tool == Tool.FrontEnd).Select(c => c.Name));
    public static TheoryData<string> GeneratorCases() => new(DiagnosticCases.All.Where(c => c.Tool == Tool.Generator).Select(c => c.Name));

    /// <summary>The generator with the references its output compiles against; the generated sources themselves
    /// are the snapshot tests' business.</summary>
    sealed class GeneratorTest : CSharpSourceGeneratorTest<MixGenerator, DefaultVerifier>
    {
        public GeneratorTest()
        {
            ReferenceAssemblies = Harness.LocalNet80.Value;
            TestBehaviors = TestBehaviors.SkipGeneratedSourcesCheck;
            TestState.MarkupHandling = MarkupMode.None;
            TestState.AdditionalReferences.AddRange(RuntimeReferences.Value);
            TestState.AnalyzerConfigFiles.Add(("/.globalconfig",
                $"is_global = true\nbuild_property.ProjectDir = {Harness.Root}\nbuild_property.MixNamespace = {Harness.Namespace}\n"));
        }
    }

    /// <summary>What generated models compile against, read once (TorchSharp's metadata is large).</summary>
    static readonly Lazy<MetadataReference[]> RuntimeReferences = new(() => new[] { typeof(TorchSharp.torch), typeof(Mix.Runtime.Builtins.Builtin) }
        .Select(t => (MetadataReference)MetadataReference.CreateFromFile(t.Assembly.Location)).ToArray());

    [Theory]
    [MemberData(nameof(FrontEndCases))]
    public async Task Front_end_id_is_reported_at_its_exact_span(string name)
    {
        var c = DiagnosticCases.Find(name);
        var test = new GeneratorTest();
        Fill(test.TestState, c);
        await test.RunAsync(TestContext.Current.CancellationToken);
    }

    [Theory]
    [MemberData(nameof(GeneratorCases))]
    public async Task Generator_reports_the_id_at_its_exact_span(string name)
    {
        var c = DiagnosticCases.Find(name);
        var test = new GeneratorTest();
        Fill(test.TestState, c);
        await test.RunAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Adds the case's files without markup and one expected result per marked span (ID, severity, span).</summary>
    static void Fill(SolutionState state, DiagnosticCase c)
    {
        var csharp = Markup.Parse("/0/Test0.cs", c.CSharp ?? "namespace User { public class A { } }");
        state.Sources.Add((csharp.Path, csharp.Text));
        state.ExpectedDiagnostics.AddRange(csharp.Expected);
        foreach (var (path, text) in c.Mix)
        {
            var file = Markup.Parse(path, text);
            state.AdditionalFiles.Add((file.Path, file.Text));
            state.ExpectedDiagnostics.AddRange(file.Expected);
        }
    }

    /// <summary>
    /// The IDE places a squiggle by the offsets and the Error List by the line/column: the generator creates both
    /// from the front end's diagnostic, so they must describe the same text (the testing library compares only lines).
    /// </summary>
    [Fact]
    public void Front_end_offsets_and_line_positions_agree()
    {
        // MIX0406 is left out: its input costs the checker's whole step budget (about a second), its span takes the
        // same path as every other evaluator diagnostic, and the theory above checks it already.
        foreach (var c in DiagnosticCases.All.Where(c => c.Tool == Tool.FrontEnd && c.Id != "MIX0406"))
        {
            var files = c.Mix.Select(m => Markup.Parse(m.Path, m.Text)).ToList();
            var diagnostics = Harness.Driver(files.Select(f => (AdditionalText)new InMemoryText(f.Path, f.Text)))
                .RunGenerators(Harness.Compilation("namespace User { }"), TestContext.Current.CancellationToken)
                .GetRunResult().Diagnostics;
            Assert.NotEmpty(diagnostics);
            foreach (var d in diagnostics)
            {
                var file = files.Single(f => f.Path == d.Location.GetLineSpan().Path);
                Assert.Equal(SourceText.From(file.Text).Lines.GetLinePositionSpan(d.Location.SourceSpan), d.Location.GetLineSpan().Span);
                Assert.False(string.IsNullOrWhiteSpace(d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)), $"{c.Name}: {d.Id} has no message");
            }
        }
    }

    /// <summary>Front-end IDs from <see cref="DiagnosticIds.All"/>, generator IDs from every static
    /// <see cref="Microsoft.CodeAnalysis.DiagnosticDescriptor"/> field of the generator assembly (so a descriptor added anywhere counts).</summary>
    static SortedSet<string> CatalogIds()
    {
        var ids = new SortedSet<string>(DiagnosticIds.All.Select(d => d.Id), StringComparer.Ordinal);
        foreach (var d in FrontEndDescriptors.All) ids.Add(d.Id);
        foreach (var type in typeof(MixGenerator).Assembly.GetTypes())
            foreach (var field in type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
                if (field.FieldType == typeof(Microsoft.CodeAnalysis.DiagnosticDescriptor) && field.GetValue(null) is Microsoft.CodeAnalysis.DiagnosticDescriptor d) ids.Add(d.Id);
        return ids;
    }

    [Fact]
    public void Every_catalog_id_has_a_span_case()
    {
        var catalog = CatalogIds();
        Assert.Contains("MIX9001", catalog); // the reflection above sees the generator's descriptors
        var covered = DiagnosticCases.All.Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        // C# attribute misuse (MIX911x, MIX912x) has its own markup span tests, one method per case, named after the ID.
        foreach (var id in DedicatedSpanTests()) covered.Add(id);
        var missing = catalog.Where(id => !covered.Contains(id) && !DiagnosticCases.NotTriggerable.ContainsKey(id)).ToList();
        Assert.True(missing.Count == 0, $"no span case in DiagnosticCases for: {string.Join(", ", missing)}");
        var contradictions = DiagnosticCases.NotTriggerable.Keys.Where(covered.Contains).ToList();
        Assert.True(contradictions.Count == 0, $"both a case and a reason why it cannot happen: {string.Join(", ", contradictions)}");
        var stale = DiagnosticCases.NotTriggerable.Keys.Concat(covered).Where(id => !catalog.Contains(id)).ToList();
        Assert.True(stale.Count == 0, $"rows for IDs the catalog does not have: {string.Join(", ", stale)}");
    }

    /// <summary>IDs with a test method named <c>MIXnnnn_...</c> that runs the generator on markup (exact spans).</summary>
    static IEnumerable<string> DedicatedSpanTests() =>
        typeof(DiagnosticCatalogTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Static))
            .Where(m => m.GetCustomAttributes(typeof(FactAttribute), true).Length > 0
                        && System.Text.RegularExpressions.Regex.IsMatch(m.Name, @"^MIX\d{4}_"))
            .Select(m => m.Name.Substring(0, 7))
            .Distinct();

    [Fact]
    public void Each_case_marks_its_own_id_and_names_are_unique()
    {
        Assert.Equal(DiagnosticCases.All.Count, DiagnosticCases.All.Select(c => c.Name).Distinct().Count());
        foreach (var c in DiagnosticCases.All)
        {
            var marked = c.Mix.Select(m => m.Text).Append(c.CSharp ?? "").Sum(t => CountOf(t, "{|" + c.Id + ":"));
            Assert.True(marked >= 1, $"case '{c.Name}' does not mark {c.Id}");
            Assert.True(DiagnosticCases.SeverityOf(c.Id) == c.Severity, $"case '{c.Name}' disagrees with the first case of {c.Id} on its severity");
            Assert.True(c.Id.StartsWith("MIX9", StringComparison.Ordinal) == (c.Tool == Tool.Generator), $"case '{c.Name}': MIX9xxx are the generator's own, the rest the front end's");
        }
    }

    static int CountOf(string text, string part)
    {
        int n = 0;
        for (int i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
