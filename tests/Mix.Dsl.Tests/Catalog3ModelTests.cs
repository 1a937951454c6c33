using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The zoo's catalog-3 models have the official state-dict keys, shapes and parameter counts at their published
/// configurations: timm's <c>mambaout_femto</c> and <c>mambaout_tiny</c> (counts as timm's <c>MambaOut</c> builds them).
/// Numerical parity: Mix.Generator.Tests' Catalog3ParityTests.
/// </summary>
public class Catalog3ModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void Mambaout_femto_keys_and_count_are_timms()
    {
        var root = Examples.Find("mambaout_femto")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[24, 3, 3, 3]", keys["stem.conv1.weight"]);
        Assert.Equal("[24]", keys["stem.norm1.weight"]);
        Assert.Equal("[48, 24, 3, 3]", keys["stem.conv2.weight"]);
        Assert.Equal("[48]", keys["stem.norm2.bias"]);
        Assert.Equal("[256, 48]", keys["stages.0.blocks.0.fc1.weight"]);    // 2 · int(8/3 · 48)
        Assert.Equal("[48, 1, 7, 7]", keys["stages.0.blocks.2.conv.weight"]);
        Assert.Equal("[48, 128]", keys["stages.0.blocks.2.fc2.weight"]);
        Assert.Equal("[96, 48, 3, 3]", keys["stages.1.downsample.conv.weight"]);
        Assert.Equal("[96]", keys["stages.1.downsample.norm.weight"]);
        Assert.Equal("[192]", keys["stages.2.blocks.8.norm.weight"]);
        Assert.Equal("[288]", keys["head.norm.weight"]);
        Assert.Equal("[1152, 288]", keys["head.pre_logits.fc.weight"]);
        Assert.Equal("[1152]", keys["head.pre_logits.norm.bias"]);
        Assert.Equal("[1000, 1152]", keys["head.fc.weight"]);
        Assert.False(keys.ContainsKey("stages.0.downsample.conv.weight"));   // stage 0 keeps the stem's resolution
        // timm: stem 8 + 3 downsamples × 4 + 18 blocks × 8 + head 8 = 172 tensors, 7,304,536 parameters.
        Assert.Equal(172, keys.Count);
        Assert.Equal(7_304_536, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("mambaout_femto")!.Output!.ToString());
    }

    [Fact]
    public void Mambaout_tiny_count_is_timms() =>
        Assert.Equal(26_545_096, Examples.Find("mambaout_tiny")!.Root!.ParameterCount());
}
