using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Mix.Fuzz;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// The worst input of every hostile family (issue 19), through <c>CSharpGeneratorDriver</c> as the compiler and the
/// IDE run it (the generator reports the .mix errors), on a thread with a 1 MB stack: only MIX diagnostics come out
/// (no CS8785 from a crashed generator), and whatever is generated compiles. Also the generator's
/// own cases that produced code that did not compile: a static [MixModel] class, a .mix path with a quote, a
/// namespace that is not one.
/// </summary>
public class HostileInputGeneratorTests
{
    public static TheoryData<string> Families() => new(HostileFamilies.All.Select(f => f.Name));

    static T OnSmallStack<T>(Func<T> work)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { error = e; }
        }, 1024 * 1024);
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromMinutes(3)), "the generator did not finish in three minutes");
        Assert.Null(error);
        return result;
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void The_largest_member_gives_only_MIX_diagnostics_through_the_generator(string family)
    {
        var f = HostileFamilies.Get(family);
        var texts = f.Largest.Select(s => new InMemoryText(Harness.Root + s.Path, s.Text)).ToList();
        var generating = TimeSpan.Zero;
        var (run, output) = OnSmallStack(() =>
        {
            // As the compiler runs it: without step tracking (which records every step's inputs, and is slow here).
            var sw = Stopwatch.StartNew();
            var driver = CSharpGeneratorDriver.Create(new[] { new MixGenerator().AsSourceGenerator() }, texts,
                    new CSharpParseOptions(LanguageVersion.Latest), Harness.DefaultOptions())
                .RunGeneratorsAndUpdateCompilation(Harness.Compilation("namespace User { public class A { } }"), out var compiled, out _, TestContext.Current.CancellationToken);
            generating = sw.Elapsed;
            return (driver.GetRunResult(), compiled);
        });
        var result = run.Results.Single();
        Assert.Null(result.Exception);
        var all = run.Diagnostics.Concat(output.GetDiagnostics(TestContext.Current.CancellationToken)).ToList();
        Assert.All(all.Where(d => d.Severity >= DiagnosticSeverity.Warning), d => Assert.StartsWith("MIX", d.Id));
        Assert.DoesNotContain(all, d => d.Id is "CS8785" or "MIX0999");
        if (f.IsError) Assert.Contains(run.Diagnostics, d => f.Expect.Contains(d.Id));
        else Assert.DoesNotContain(run.Diagnostics, d => d.Severity == DiagnosticSeverity.Error);
        // Generated code (the valid families generate classes) compiles.
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
        // The generator alone (compiling 800 generated classes is Roslyn's work). Generous: the machine is shared, and
        // what this catches (exponential or cubic work) takes far longer.
        Assert.True(generating < TimeSpan.FromSeconds(120), $"{family}: {generating.TotalSeconds:F1} s");
    }

    [Theory]
    [InlineData("plus-chain", 250)]
    [InlineData("pipe-chain", 250)]
    [InlineData("if-chain", 120)]
    public void Expressions_just_inside_the_depth_budget_generate_code_that_compiles_on_a_small_stack(string family, int size)
    {
        // The translator and the printer recurse over the tree: the front end's depth budget is what keeps them safe.
        var texts = HostileFamilies.Get(family).Build(size).Select(s => new InMemoryText(Harness.Root + s.Path, s.Text)).ToList();
        var (run, output) = OnSmallStack(() =>
        {
            var driver = CSharpGeneratorDriver.Create(new[] { new MixGenerator().AsSourceGenerator() }, texts,
                    new CSharpParseOptions(LanguageVersion.Latest), Harness.DefaultOptions())
                .RunGeneratorsAndUpdateCompilation(Harness.Compilation(), out var compiled, out _, TestContext.Current.CancellationToken);
            return (driver.GetRunResult(), compiled);
        });
        Assert.Null(run.Results.Single().Exception);
        Assert.Empty(run.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
        Assert.NotEmpty(run.Results.Single().GeneratedSources.Where(g => g.HintName.EndsWith("hostile.mix.g.cs", StringComparison.Ordinal)));
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
    }

    const string Model = "model m(dim: int = 8) (x: [B, dim]) -> [B, dim] {\n  fc = linear(dim, dim)\n  return fc(x)\n}\n";

    [Fact]
    public void A_mix_path_with_a_quote_generates_code_that_compiles()
    {
        // C# takes a #line file name verbatim, so no escaping can write a quote: the file is emitted unmapped.
        var run = Harness.Run(new[] { new InMemoryText(Harness.Root + "we\"ird.mix", Model) }, out var output);
        Assert.Empty(run.Diagnostics);
        var source = Assert.Single(run.Results.Single().GeneratedSources, s => s.HintName.Contains("ird", StringComparison.Ordinal));
        Assert.DoesNotContain("#line 1", source.SourceText.ToString(), StringComparison.Ordinal);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
    }

    [Fact]
    public void A_mix_path_with_backslashes_maps_to_the_path_as_written()
    {
        var path = "C:\\repo\\examples\\m.mix";
        var options = new Options(new Dictionary<string, string> { ["build_property.MixNamespace"] = Harness.Namespace, ["build_property.ProjectDir"] = "C:\\repo\\examples\\" });
        var driver = Harness.Driver(new[] { new InMemoryText(path, Model) }, options).RunGeneratorsAndUpdateCompilation(Harness.Compilation(), out var output, out _, TestContext.Current.CancellationToken);
        Assert.Empty(driver.GetRunResult().Diagnostics);
        Assert.Contains($"#line 3 \"{path}\"", driver.GetRunResult().Results.Single().GeneratedSources.Single(s => s.HintName.EndsWith("m.mix.g.cs", StringComparison.Ordinal)).SourceText.ToString(), StringComparison.Ordinal);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
    }

    [Theory]
    [InlineData("1models")]
    [InlineData("My-Models")]
    [InlineData("My.class")]
    [InlineData("My..Models")]
    public void MIX9002_an_invalid_namespace_is_reported_at_the_file_and_nothing_is_generated(string ns)
    {
        var options = new Options(new Dictionary<string, string> { ["build_property.MixNamespace"] = ns, ["build_property.ProjectDir"] = Harness.Root });
        var file = new InMemoryText(Harness.Root + "models/m.mix", Model);
        var driver = Harness.Driver(new[] { file }, options).RunGeneratorsAndUpdateCompilation(Harness.Compilation(), out var output, out _, TestContext.Current.CancellationToken);
        var run = driver.GetRunResult();
        var d = Assert.Single(run.Diagnostics);
        Assert.Equal("MIX9002", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal(file.Path, d.Location.GetLineSpan().Path);
        Assert.Contains(ns, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        Assert.DoesNotContain(run.Results.Single().GeneratedSources, s => s.HintName.Contains("m.mix", StringComparison.Ordinal));
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(x => x.Severity == DiagnosticSeverity.Error).Select(x => x.ToString()));
    }

    [Fact]
    public void MIX9002_per_file_metadata_is_checked_too_and_a_keyword_with_at_is_a_namespace()
    {
        var bad = new InMemoryText(Harness.Root + "a.mix", Model);
        var good = new InMemoryText(Harness.Root + "b.mix", Model.Replace("model m", "model n", StringComparison.Ordinal));
        var options = new Options(new Dictionary<string, string> { ["build_property.MixNamespace"] = Harness.Namespace, ["build_property.ProjectDir"] = Harness.Root },
            new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                [bad.Path] = new Dictionary<string, string> { ["build_metadata.AdditionalFiles.MixNamespace"] = "Models For Me" },
                [good.Path] = new Dictionary<string, string> { ["build_metadata.AdditionalFiles.MixNamespace"] = "My.@class" },
            });
        var driver = Harness.Driver(new[] { bad, good }, options).RunGeneratorsAndUpdateCompilation(Harness.Compilation(), out var output, out _, TestContext.Current.CancellationToken);
        var d = Assert.Single(driver.GetRunResult().Diagnostics);
        Assert.Equal(("MIX9002", bad.Path), (d.Id, d.Location.GetLineSpan().Path));
        Assert.Contains(driver.GetRunResult().Results.Single().GeneratedSources, s => s.HintName == "b.mix.g.cs");
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(x => x.Severity == DiagnosticSeverity.Error).Select(x => x.ToString()));
    }
}
