using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The zoo's catalog-3 models have the official state-dict keys, shapes and parameter counts at their published
/// configurations: timm's <c>mambaout_femto</c> and <c>mambaout_tiny</c> (counts as timm's <c>MambaOut</c> builds them)
/// and CAS-ViT's <c>rcvit_xs</c> (as Tianfang-Zhang/CAS-ViT's <c>RCViT</c> builds it).
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

    [Fact]
    public void Rcvit_xs_keys_and_count_are_CAS_ViTs()
    {
        var root = Examples.Find("rcvit_xs")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[24, 3, 3, 3]", keys["patch_embed.0.weight"]);
        Assert.Equal("[24]", keys["patch_embed.1.running_var"]);
        Assert.Equal("[48, 24, 3, 3]", keys["patch_embed.3.weight"]);
        Assert.Equal("[48, 48, 1, 1]", keys["network.0.0.local_perception.network.0.weight"]);
        Assert.Equal("[48]", keys["network.0.0.local_perception.network.1.running_mean"]);
        Assert.Equal("[48, 1, 3, 3]", keys["network.0.1.local_perception.network.2.weight"]);
        Assert.Equal("[48, 48, 1, 1]", keys["network.0.1.local_perception.network.4.weight"]);
        Assert.Equal("[144, 48, 1, 1]", keys["network.0.0.attn.qkv.weight"]);
        Assert.False(keys.ContainsKey("network.0.0.attn.qkv.bias"));
        Assert.Equal("[48, 1, 3, 3]", keys["network.0.0.attn.oper_q.0.block.0.weight"]);
        Assert.Equal("[48]", keys["network.0.0.attn.oper_q.0.block.1.running_var"]);
        Assert.Equal("[1, 48, 1, 1]", keys["network.0.0.attn.oper_q.0.block.3.weight"]);
        Assert.Equal("[48, 48, 1, 1]", keys["network.0.0.attn.oper_k.1.block.1.weight"]);
        Assert.Equal("[48]", keys["network.0.0.attn.proj.bias"]);
        Assert.Equal("[192, 48, 1, 1]", keys["network.0.0.mlp.fc1.weight"]);
        Assert.Equal("[56, 48, 3, 3]", keys["network.1.proj.weight"]);
        Assert.Equal("[56]", keys["network.1.norm.bias"]);
        Assert.Equal("[112]", keys["network.4.3.norm2.weight"]);
        Assert.Equal("[220, 112, 3, 3]", keys["network.5.proj.weight"]);
        Assert.Equal("[220]", keys["network.6.1.norm1.weight"]);
        Assert.Equal("[1000, 220]", keys["head.weight"]);
        Assert.Equal("[1000, 220]", keys["dist_head.weight"]);
        Assert.Equal("[220]", keys["norm.running_mean"]);
        // The official RCViT (rcvit_xs): 524 state-dict entries, 3,200,700 parameters.
        Assert.Equal(524, keys.Count);
        Assert.Equal(3_200_700, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("rcvit_xs")!.Output!.ToString());
    }
}

