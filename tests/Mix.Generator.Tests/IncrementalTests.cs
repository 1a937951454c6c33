using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>Step tracking: what each kind of edit reruns.</summary>
public class IncrementalTests
{
    static (GeneratorDriver Driver, CSharpCompilation Compilation, List<InMemoryText> Texts) FirstRun()
    {
        var texts = Harness.Examples();
        var compilation = Harness.Compilation("namespace User { public class A { } }");
        var driver = Harness.Driver(texts).RunGenerators(compilation, TestContext.Current.CancellationToken);
        return (driver, compilation, texts);
    }

    static List<(FileSpec Spec, IncrementalStepRunReason Reason)> FileSpecOutputs(GeneratorDriver driver)
    {
        var steps = driver.GetRunResult().Results.Single().TrackedSteps[MixGenerator.Steps.FileSpecs];
        return steps.SelectMany(s => s.Outputs).Select(o => ((FileSpec)o.Value, o.Reason)).ToList();
    }

    static GeneratorDriver Edit(GeneratorDriver driver, CSharpCompilation compilation, List<InMemoryText> texts, string file, Func<string, string> edit)
    {
        var old = texts.Single(t => t.Path.EndsWith("/" + file, StringComparison.Ordinal));
        var updated = new InMemoryText(old.Path, edit(old.GetText(TestContext.Current.CancellationToken).ToString()));
        return driver.ReplaceAdditionalText(old, updated).RunGenerators(compilation, TestContext.Current.CancellationToken);
    }

    [Fact]
    public void Unrelated_csharp_edit_leaves_every_mix_output_cached()
    {
        var (driver, compilation, _) = FirstRun();
        var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(),
            CSharpSyntaxTree.ParseText("namespace User { public class A { int x; } }", new CSharpParseOptions(LanguageVersion.Latest), cancellationToken: TestContext.Current.CancellationToken));
        driver = driver.RunGenerators(edited, TestContext.Current.CancellationToken);
        var outputs = FileSpecOutputs(driver);
        Assert.NotEmpty(outputs);
        Assert.All(outputs, o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
        var run = driver.GetRunResult().Results.Single();
        Assert.All(run.TrackedSteps[MixGenerator.Steps.Specs].SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Theory]
    [InlineData("trailing spaces")]
    [InlineData("comment text")]
    public void Whitespace_or_comment_edit_leaves_every_spec_unchanged(string kind)
    {
        var (driver, compilation, texts) = FirstRun();
        driver = Edit(driver, compilation, texts, "poolformer.mix", text => kind == "trailing spaces"
            ? text.Replace("model poolformer_s12(num_classes: int = 1000) = metaformer(", "model   poolformer_s12(num_classes: int = 1000)   =   metaformer(")
            : text.Replace("// PoolFormer", "// The PoolFormer family"));
        var outputs = FileSpecOutputs(driver);
        Assert.Contains(outputs, o => o.Spec.HintName == "models.poolformer.mix.g.cs");
        Assert.All(outputs, o => Assert.Contains(o.Reason, new[] { IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached }));
    }

    [Fact]
    public void Real_edit_regenerates_only_that_file()
    {
        var (driver, compilation, texts) = FirstRun();
        driver = Edit(driver, compilation, texts, "poolformer.mix", text => text.Replace("model poolformer_s24(num_classes: int = 1000)", "model poolformer_s24(num_classes: int = 100)"));
        var outputs = FileSpecOutputs(driver);
        var modified = outputs.Where(o => o.Reason == IncrementalStepRunReason.Modified).Select(o => o.Spec.HintName).ToList();
        Assert.Equal(new[] { "models.poolformer.mix.g.cs" }, modified);
        var source = driver.GetRunResult().Results.Single().GeneratedSources.Single(s => s.HintName == "models.poolformer.mix.g.cs");
        Assert.Contains("public long NumClasses { get; init; } = 100;", source.SourceText.ToString());
    }

    static List<(UnitSpec Spec, IncrementalStepRunReason Reason)> UnitOutputs(GeneratorDriver driver) =>
        driver.GetRunResult().Results.Single().TrackedSteps[MixGenerator.Steps.UnitSpecs]
            .SelectMany(s => s.Outputs).Select(o => ((UnitSpec)o.Value, o.Reason)).ToList();

    [Fact]
    public void An_edit_rechecks_only_the_file_and_the_files_that_import_it()
    {
        var (driver, compilation, texts) = FirstRun();
        driver = Edit(driver, compilation, texts, "poolformer.mix", text => text.Replace("model poolformer_s24(num_classes: int = 1000)", "model poolformer_s24(num_classes: int = 100)"));
        var rechecked = UnitOutputs(driver).Where(o => o.Reason != IncrementalStepRunReason.Cached).Select(o => System.IO.Path.GetFileName(o.Spec.MixPath)).ToList();
        Assert.Equal(new[] { "poolformer.mix" }, rechecked); // metaformer.mix, which it imports, stays cached

        driver = Edit(driver, compilation, texts, "metaformer.mix", text => text.Replace("num_classes: int = 1000,", "num_classes: int = 10,"));
        rechecked = UnitOutputs(driver).Where(o => o.Reason != IncrementalStepRunReason.Cached).Select(o => System.IO.Path.GetFileName(o.Spec.MixPath)).OrderBy(n => n).ToList();
        Assert.Contains("metaformer.mix", rechecked);
        Assert.Contains("poolformer.mix", rechecked);
        Assert.DoesNotContain("mamba.mix", rechecked);
    }

    [Fact]
    public void An_error_in_an_imported_definition_the_file_does_not_use_still_skips_the_file()
    {
        var texts = new[]
        {
            new InMemoryText(Harness.Root + "lib.mix", "block good(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n" +
                                                     "block bad(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, 2 * dim) }\n"),
            new InMemoryText(Harness.Root + "net.mix", "import \"lib.mix\"\nmodel net(d: int = 8) (x: [B, d]) -> [B, d] { body = good(d) }\n"),
            new InMemoryText(Harness.Root + "other.mix", "block fine(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n"),
        };
        var driver = Harness.Driver(texts).RunGenerators(Harness.Compilation(), TestContext.Current.CancellationToken);
        var files = FileSpecOutputs(driver).Select(o => o.Spec).ToDictionary(f => System.IO.Path.GetFileName(f.MixPath));
        Assert.True(files["lib.mix"].Skipped);
        Assert.True(files["net.mix"].Skipped);
        Assert.False(files["other.mix"].Skipped);
    }

    [Fact]
    public void Hint_names_come_from_relative_paths_and_do_not_collide()
    {
        var texts = new[]
        {
            new InMemoryText(Harness.Root + "a/net.mix", "block b(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }"),
            new InMemoryText(Harness.Root + "c/net.mix", "block d(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }"),
        };
        var driver = Harness.Driver(texts).RunGenerators(Harness.Compilation(), TestContext.Current.CancellationToken);
        var hints = driver.GetRunResult().Results.Single().GeneratedSources.Select(s => s.HintName).Where(h => h.EndsWith(".mix.g.cs", StringComparison.Ordinal)).OrderBy(h => h).ToList();
        Assert.Equal(new[] { "a.net.mix.g.cs", "c.net.mix.g.cs" }, hints);
    }

    [Fact]
    public void Every_step_has_a_tracking_name()
    {
        var (driver, _, _) = FirstRun();
        var steps = driver.GetRunResult().Results.Single().TrackedSteps.Keys.ToHashSet();
        foreach (var name in new[] { MixGenerator.Steps.Inputs, MixGenerator.Steps.Settings, MixGenerator.Steps.Parsed, MixGenerator.Steps.Units, MixGenerator.Steps.UnitSpecs, MixGenerator.Steps.Specs, MixGenerator.Steps.FileSpecs })
            Assert.Contains(name, steps);
    }

    [Fact]
    public void No_roslyn_type_is_reachable_from_the_spec_model()
    {
        var seen = new HashSet<Type>();
        var queue = new Queue<Type>(new[] { typeof(FileSpec), typeof(ModelBinding), typeof(GeneratorSettings), typeof(MixInput), typeof(UnitSpec) });
        while (queue.Count > 0)
        {
            var t = queue.Dequeue();
            if (!seen.Add(t)) continue;
            Assert.False(t.Namespace?.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal) == true, $"{t} is a Roslyn type");
            Assert.False(t.Namespace?.StartsWith("Mix.Dsl", StringComparison.Ordinal) == true, $"{t} is a front-end type (spans, nodes)");
            if (t.IsPrimitive || t == typeof(string) || t.IsEnum) continue;
            if (t.Namespace?.StartsWith("Mix.Generator", StringComparison.Ordinal) == true && !t.IsGenericTypeDefinition)
                Assert.True(typeof(IEquatable<>).MakeGenericType(t).IsAssignableFrom(t), $"{t} is not equatable");
            foreach (var g in t.GetGenericArguments()) queue.Enqueue(g);
            if (t.IsArray) queue.Enqueue(t.GetElementType()!);
            if (t.Namespace?.StartsWith("Mix.Generator", StringComparison.Ordinal) != true) continue;
            foreach (var p in t.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
                if (p.GetIndexParameters().Length == 0) queue.Enqueue(p.PropertyType);
        }
        Assert.Contains(typeof(ClassSpec), seen);
        Assert.Contains(typeof(CodeLine), seen);
    }

    [Fact]
    public void A_check_unit_is_equal_for_equal_texts_whatever_its_syntax_trees()
    {
        // The parse stage carries front-end syntax trees (so an unchanged file is not parsed again); the unit that
        // leads to the spec model compares by the texts alone, so a re-parse of the same text keeps the check cached.
        var inputs = System.Collections.Immutable.ImmutableArray.Create(
            new MixInput(Harness.Root + "lib.mix", "block b(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n"),
            new MixInput(Harness.Root + "net.mix", "import \"lib.mix\"\nmodel n(d: int = 4) (x: [B, d]) -> [B, d] { body = b(d) }\n"));
        var first = inputs.Select(SpecBuilder.Parse).ToImmutableArray();
        var second = inputs.Select(SpecBuilder.Parse).ToImmutableArray();
        var a = SpecBuilder.Unit(first[1], first);
        var b = SpecBuilder.Unit(second[1], second);
        Assert.NotSame(a.Trees[0], b.Trees[0]);
        Assert.Equal(a, b);
        Assert.Equal(2, a.Closure.Count);
        var edited = inputs.SetItem(0, inputs[0] with { Text = inputs[0].Text.Replace("linear(dim, dim)", "linear(dim, dim, bias = false)") });
        var third = edited.Select(SpecBuilder.Parse).ToImmutableArray();
        Assert.NotEqual(a, SpecBuilder.Unit(third[1], third));
    }
}
