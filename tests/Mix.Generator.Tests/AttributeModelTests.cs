using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Mix.Generator.Tests.AttributeModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// MetaFormer models declared with <c>[MetaFormerModel]</c> and <c>[MetaFormerStage]</c> alone (AttributeModels/): built
/// by this project's generator, they construct, run, and have exactly timm's keys and shapes (the key lists in
/// tests/Mix.Runtime.Tests/Expected, derived from timm's source independently of this code).
/// </summary>
public class AttributeModelTests
{
    static List<string> TimmKeys(string model) =>
        File.ReadAllLines(Path.Combine(Harness.RepoRoot(), "tests", "Mix.Runtime.Tests", "Expected", model + ".keys.txt"))
            .Where(l => l.Trim().Length > 0).ToList();

    static List<string> Keys(nn.Module model) =>
        model.state_dict().Select(kv => kv.Key + " [" + string.Join(",", kv.Value.shape) + "]").ToList();

    static void AssertForward(nn.Module<Tensor, Tensor> model, long size, long classes)
    {
        using var _ = torch.no_grad();
        model.eval();
        using var scope = torch.NewDisposeScope();
        var y = model.call(torch.randn(2, 3, size, size));
        Assert.Equal(new long[] { 2, classes }, y.shape);
        Assert.False(y.isnan().any().item<bool>());
    }

    [Fact]
    public void PoolFormer_s12_by_attributes_has_timms_keys_and_runs()
    {
        using var model = new PoolFormerS12();
        Assert.Equal(TimmKeys("poolformer_s12"), Keys(model));
        Assert.Equal(11_915_176, model.parameters().Sum(p => p.numel()));
        AssertForward(model, 64, 1000);
    }

    [Fact]
    public void ConvFormer_s18_by_attributes_has_timms_keys_and_runs()
    {
        using var model = new ConvFormerS18();
        Assert.Equal(TimmKeys("convformer_s18"), Keys(model));
        Assert.Equal(26_774_448, model.parameters().Sum(p => p.numel()));
        AssertForward(model, 32, 1000);
    }

    [Fact]
    public void CaFormer_s18_by_attributes_mixes_stages_and_has_timms_keys()
    {
        using var model = new CaFormerS18();
        Assert.Equal(TimmKeys("caformer_s18"), Keys(model));
        AssertForward(model, 64, 1000);
    }

    [Fact]
    public void Options_come_from_the_attribute_and_can_be_changed()
    {
        Assert.Equal(1000, new PoolFormerS12.Options().NumClasses);
        Assert.Equal(3, new PoolFormerS12.Options().InChannels);
        using var model = new PoolFormerS12(new PoolFormerS12.Options { NumClasses = 10, InChannels = 1 });
        Assert.Equal(new long[] { 10, 512 }, model.state_dict()["head.fc.weight"].shape);
        Assert.Equal(new long[] { 64, 1, 7, 7 }, model.state_dict()["stem.conv.weight"].shape);
        using var _ = torch.no_grad();
        using var y = model.call(torch.randn(1, 1, 32, 32));
        Assert.Equal(new long[] { 1, 10 }, y.shape);
    }

    [Fact]
    public void The_generated_part_matches_its_snapshot_and_compiles_cleanly()
    {
        // The same declarations in another namespace (this test assembly, which the compilation references, has them).
        var source = File.ReadAllText(Path.Combine(Harness.TestDir(), "AttributeModels", "TimmModels.cs"))
            .Replace("namespace Mix.Generator.Tests.AttributeModels;", "namespace User;", StringComparison.Ordinal);
        var result = Harness.Run(Array.Empty<InMemoryText>(), out var output, source);
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var problems = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems.Take(20)));
        var generated = result.Results.Single().GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        Assert.Contains("Mix.MetaFormerParts.g.cs", generated.Keys);
        Assert.Contains("internal sealed partial class Metaformer ", generated["Mix.MetaFormerParts.g.cs"]);
        Assert.Contains("internal sealed partial class CaFormerS18 ", generated["User.CaFormerS18.MetaFormer.g.cs"]);
        const string hint = "User.PoolFormerS12.MetaFormer.g.cs";
        var snapshot = Path.Combine(Harness.SnapshotDir, "AttributeModels", hint);
        if (Environment.GetEnvironmentVariable("MIX_UPDATE_SNAPSHOTS") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(snapshot)!);
            File.WriteAllText(snapshot, generated[hint]);
        }
        Assert.Equal(File.ReadAllText(snapshot), generated[hint]);
    }
}

/// <summary>A [Mixer] C# class of the project as a stage mixer of an attribute-only model.</summary>
public class AttributeModelWithCsharpMixerTests
{
    [Fact]
    public void The_csharp_mixer_is_built_with_its_argument_and_runs()
    {
        using var model = new TinyGatedFormer();
        var mixer = model.named_modules().Single(m => m.name == "stages.0.blocks.0.token_mixer").module;
        Assert.Equal(0.25, Assert.IsType<GatedChannels>(mixer).Gate);
        Assert.Equal(new long[] { 16 }, model.state_dict()["stages.0.blocks.0.token_mixer.weight"].shape);
        Assert.DoesNotContain(model.state_dict().Keys, k => k.StartsWith("stages.1.blocks.0.token_mixer.", StringComparison.Ordinal)); // pooling
        using var _ = torch.no_grad();
        using var y = model.call(torch.randn(2, 3, 32, 32));
        Assert.Equal(new long[] { 2, 10 }, y.shape);
    }
}
