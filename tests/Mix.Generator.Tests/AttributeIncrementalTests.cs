using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>Step tracking of the attribute pipelines: what each kind of C# edit reruns.</summary>
public class AttributeIncrementalTests
{
    const string Model = """
        namespace User
        {
            [Mix.MetaFormerModel(NumClasses = 10)]
            [Mix.MetaFormerStage(1, 16, Mixer = "scaled")]
            [Mix.MetaFormerStage(1, 32)]
            public partial class Net { }
        }
        """;

    const string Mixer = """
        using TorchSharp;
        using static TorchSharp.torch;
        namespace User
        {
            [Mix.Mixer("scaled", "scale: float = 1.0", "(x: [B, dim, H, W]) -> [B, dim, H, W]")]
            public sealed class Scaled : nn.Module<Tensor, Tensor>
            {
                readonly double _scale;
                public Scaled(long dim, double scale = 1.0) : base(nameof(Scaled)) => _scale = scale;
                public override Tensor forward(Tensor x) => x * _scale;
            }
        }
        """;

    const string Unrelated = "namespace User { public class A { } }";

    static CSharpSyntaxTree Parse(string text) =>
        (CSharpSyntaxTree)CSharpSyntaxTree.ParseText(text, new CSharpParseOptions(LanguageVersion.Latest), cancellationToken: TestContext.Current.CancellationToken);

    static (GeneratorDriver Driver, CSharpCompilation Compilation) FirstRun()
    {
        var compilation = Harness.Compilation(Model, Mixer, Unrelated);
        var driver = Harness.Driver(Array.Empty<InMemoryText>()).RunGenerators(compilation, TestContext.Current.CancellationToken);
        var run = driver.GetRunResult().Results.Single();
        Assert.Empty(run.Diagnostics);
        Assert.Contains(run.GeneratedSources, s => s.HintName == "User.Net.MetaFormer.g.cs");
        return (driver, compilation);
    }

    static List<IncrementalStepRunReason> Reasons(GeneratorDriver driver, string step) =>
        driver.GetRunResult().Results.Single().TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();

    static GeneratorDriver Rerun(GeneratorDriver driver, CSharpCompilation compilation, int tree, string text) =>
        driver.RunGenerators(compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.ElementAt(tree), Parse(text)), TestContext.Current.CancellationToken);

    [Fact]
    public void Unrelated_csharp_edit_leaves_the_attribute_model_cached()
    {
        var (driver, compilation) = FirstRun();
        driver = Rerun(driver, compilation, 2, "namespace User { public class A { int x; } }");
        // Reading attributes reruns with every compilation (Roslyn reruns ForAttributeWithMetadataName transforms, which
        // may depend on other files' symbols) and gives equal records; checking and translating do not rerun.
        Assert.Equal(new[] { IncrementalStepRunReason.Unchanged }, Reasons(driver, MixGenerator.Steps.MixerDeclarations));
        foreach (var step in new[] { MixGenerator.Steps.MetaFormerDeclarations, MixGenerator.Steps.MetaFormerModels, MixGenerator.Steps.MetaFormerBuilds, MixGenerator.Steps.MetaFormerParts })
        {
            var reasons = Reasons(driver, step);
            Assert.NotEmpty(reasons);
            Assert.True(reasons.All(r => r == IncrementalStepRunReason.Cached), step + ": " + string.Join(", ", reasons));
        }
    }

    [Fact]
    public void Moving_the_attributes_rereads_them_but_does_not_recheck_the_model()
    {
        var (driver, compilation) = FirstRun();
        driver = Rerun(driver, compilation, 0, "// a comment above shifts every position\n" + Model);
        Assert.Equal(new[] { IncrementalStepRunReason.Modified }, Reasons(driver, MixGenerator.Steps.MetaFormerDeclarations));
        Assert.Equal(new[] { IncrementalStepRunReason.Unchanged }, Reasons(driver, MixGenerator.Steps.MetaFormerModels));
        Assert.Equal(new[] { IncrementalStepRunReason.Cached }, Reasons(driver, MixGenerator.Steps.MetaFormerBuilds));
    }

    [Fact]
    public void Changing_a_stage_rebuilds_only_that_model()
    {
        var (driver, compilation) = FirstRun();
        driver = Rerun(driver, compilation, 0, Model.Replace("MetaFormerStage(1, 32)", "MetaFormerStage(2, 32)", StringComparison.Ordinal));
        Assert.Equal(new[] { IncrementalStepRunReason.Modified }, Reasons(driver, MixGenerator.Steps.MetaFormerBuilds));
        var source = driver.GetRunResult().Results.Single().GeneratedSources.Single(s => s.HintName == "User.Net.MetaFormer.g.cs").SourceText.ToString();
        Assert.Contains("Depths = new long[] { 1, 2 },", source, StringComparison.Ordinal);
    }

    [Fact]
    public void Editing_the_mixers_body_keeps_its_declaration_and_the_model_cached()
    {
        var (driver, compilation) = FirstRun();
        driver = Rerun(driver, compilation, 1, Mixer.Replace("x * _scale", "_scale * x", StringComparison.Ordinal));
        Assert.Equal(new[] { IncrementalStepRunReason.Unchanged }, Reasons(driver, MixGenerator.Steps.MixerDeclarations));
        Assert.All(Reasons(driver, MixGenerator.Steps.MetaFormerBuilds), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void Every_attribute_step_has_a_tracking_name()
    {
        var (driver, _) = FirstRun();
        var steps = driver.GetRunResult().Results.Single().TrackedSteps.Keys.ToHashSet();
        foreach (var name in new[]
        {
            MixGenerator.Steps.MixerDeclarations, MixGenerator.Steps.Mixers, MixGenerator.Steps.MetaFormerDeclarations,
            MixGenerator.Steps.MetaFormerModels, MixGenerator.Steps.MetaFormerBuilds, MixGenerator.Steps.MetaFormerParts,
        })
            Assert.Contains(name, steps);
        // Stray stages: the step runs (and outputs nothing) when every stage has its model.
        var stray = Harness.Driver(Array.Empty<InMemoryText>()).RunGenerators(Harness.Compilation("[Mix.MetaFormerStage(1, 8)] public partial class S { }"),
            TestContext.Current.CancellationToken);
        Assert.Contains(MixGenerator.Steps.StrayStages, stray.GetRunResult().Results.Single().TrackedSteps.Keys);
    }
}
