using System.Linq;
using Mix.Dsl.Semantics;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The zoo's iFormer and FFNet models have the official state-dict keys, shapes and parameter counts at their smallest
/// published configurations: sail-sg/iFormer's <c>iformer_small</c> (19,866,344 parameters as its
/// <c>InceptionTransformer</c> builds it; the count tests/parity/make_catalog3c_fixtures.py prints and stores in the
/// iformer fixture) and ysj9909/FFNet's <c>ffnet_1</c> (13,775,656 parameters in the training form, 13,660,152 in the
/// official re-parameterised form, as its <c>FFNet</c> and export_model.py's <c>replace_batchnorm</c> give them; the
/// script prints both). Numerical parity: Mix.Generator.Tests' Catalog3cParityTests.
/// </summary>
public class Catalog3cModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void Iformer_small_keys_and_count_are_the_officials()
    {
        var root = Examples.Find("iformer_small")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[48, 3, 3, 3]", keys["patch_embed.proj1.weight"]);
        Assert.Equal("[48]", keys["patch_embed.norm1.running_var"]);
        Assert.Equal("[96, 48, 3, 3]", keys["patch_embed.proj2.weight"]);
        Assert.Equal("[1, 56, 56, 96]", keys["pos_embed1"]);
        Assert.Equal("[1, 28, 28, 192]", keys["pos_embed2"]);
        Assert.Equal("[1, 14, 14, 320]", keys["pos_embed3"]);
        Assert.Equal("[1, 7, 7, 384]", keys["pos_embed4"]);
        // Stage 1, one low-frequency head of 32: high 64 = two halves of 32, each doubled.
        Assert.Equal("[64, 32, 1, 1]", keys["blocks1.0.attn.high_mixer.conv1.weight"]);
        Assert.Equal("[64, 1, 3, 3]", keys["blocks1.0.attn.high_mixer.proj1.weight"]);
        Assert.Equal("[64, 32, 1, 1]", keys["blocks1.0.attn.high_mixer.proj2.weight"]);
        Assert.Equal("[64]", keys["blocks1.0.attn.high_mixer.proj2.bias"]);
        Assert.False(keys.ContainsKey("blocks1.0.attn.high_mixer.conv1.bias"));
        Assert.Equal("[96, 32]", keys["blocks1.0.attn.low_mixer.qkv.weight"]);
        Assert.Equal("[96]", keys["blocks1.0.attn.low_mixer.qkv.bias"]);
        Assert.Equal("[160, 1, 3, 3]", keys["blocks1.0.attn.conv_fuse.weight"]);   // 32 + 2 · 64
        Assert.Equal("[96, 160, 1, 1]", keys["blocks1.0.attn.proj.weight"]);
        Assert.Equal("[384, 96]", keys["blocks1.2.mlp.fc1.weight"]);
        // The frequency ramp over the global block index: blocks3.3 is block 9 (9 heads of 32 = 288 low channels).
        Assert.Equal("[672, 224]", keys["blocks3.3.attn.low_mixer.qkv.weight"]);   // block 9: 7 heads
        Assert.Equal("[864, 288]", keys["blocks3.4.attn.low_mixer.qkv.weight"]);   // block 10: 9 heads
        Assert.Equal("[32, 1, 3, 3]", keys["blocks3.4.attn.high_mixer.proj1.weight"]);  // high 32: halves of 16, doubled
        Assert.Equal("[1056, 352]", keys["blocks4.2.attn.low_mixer.qkv.weight"]);  // 11 heads
        // Layer scale only in stages 3-4.
        Assert.False(keys.ContainsKey("blocks1.0.layer_scale_1"));
        Assert.False(keys.ContainsKey("blocks2.2.layer_scale_2"));
        Assert.Equal("[320]", keys["blocks3.0.layer_scale_1"]);
        Assert.Equal("[384]", keys["blocks4.2.layer_scale_2"]);
        Assert.Equal("[192, 96, 3, 3]", keys["patch_embed2.proj.weight"]);
        Assert.Equal("[384]", keys["patch_embed4.norm.running_mean"]);
        Assert.Equal("[384]", keys["norm.weight"]);
        Assert.Equal("[1000, 384]", keys["head.weight"]);
        // The official iformer_small: 373 state-dict entries, 19,866,344 parameters.
        Assert.Equal(373, keys.Count);
        Assert.Equal(19_866_344, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("iformer_small")!.Output!.ToString());
    }

    [Fact]
    public void Ffnet_1_keys_and_count_are_the_officials()
    {
        var root = Examples.Find("ffnet_1")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[64, 3, 3, 3]", keys["patch_embed.0.c.weight"]);
        Assert.Equal("[80]", keys["patch_embed.2.bn.running_var"]);
        Assert.Equal("[80, 80, 1, 1]", keys["stages.0.0.token_mixer.0.main.fc.c.weight"]);
        Assert.Equal("[80, 1, 3, 3]", keys["stages.0.0.token_mixer.0.main.conv1.weight"]);   // ks1 = 3: a plain conv
        Assert.Equal("[80]", keys["stages.0.0.token_mixer.0.main.conv1.bias"]);
        Assert.Equal("[80, 1, 3, 3]", keys["stages.0.0.channel_mixer.main.conv.c.weight"]);
        Assert.Equal("[240, 80, 1, 1]", keys["stages.0.0.channel_mixer.main.fc1.weight"]);
        Assert.Equal("[160, 1, 7, 7]", keys["stages.1.0.proj.0.conv.c.weight"]);             // PatchMerging
        Assert.Equal("[160, 1, 3, 3]", keys["stages.1.0.proj.0.conv1.c.weight"]);
        Assert.Equal("[160]", keys["stages.1.0.proj.1.conv.bn.weight"]);
        Assert.Equal("[160, 160, 1, 1]", keys["stages.1.0.proj.1.conv.c.weight"]);
        Assert.Equal("[320, 1, 7, 7]", keys["stages.2.1.token_mixer.0.main.conv1.conv.c.weight"]);   // ks1 = 7: RepVGG
        Assert.Equal("[]", keys["stages.2.1.token_mixer.0.main.conv1.conv1.bn.num_batches_tracked"]);
        Assert.Equal("[640, 1, 7, 7]", keys["stages.3.2.token_mixer.0.main.conv2.conv.c.weight"]);
        Assert.False(keys.ContainsKey("stages.0.0.token_mixer.0.layer_scale"));               // ffnet_1: no layer scale
        Assert.Equal("[640]", keys["norm.running_mean"]);
        Assert.Equal("[1000, 640]", keys["head.weight"]);
        // The official ffnet_1: 553 state-dict entries, 13,775,656 parameters.
        Assert.Equal(553, keys.Count);
        Assert.Equal(13_775_656, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("ffnet_1")!.Output!.ToString());
    }

    [Fact]
    public void Ffnet_1_deploy_form_keys_and_count_are_the_officials()
    {
        var c = MixCompilation.Create(Repo.ExampleSources().Append(new SourceText("deploy.mix",
            "import \"ffnet.mix\"\nmodel ffnet_1_deploy(num_classes: int = 1000) = ffnet(num_classes = num_classes, deploy = true)\n")));
        var root = c.Find("ffnet_1_deploy")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[64, 3, 3, 3]", keys["patch_embed.0.weight"]);
        Assert.Equal("[64]", keys["patch_embed.0.bias"]);
        Assert.Equal("[160, 1, 7, 7]", keys["stages.1.0.proj.0.weight"]);
        Assert.Equal("[160, 160, 1, 1]", keys["stages.1.0.proj.1.weight"]);
        Assert.Equal("[160]", keys["stages.1.0.proj.1.bias"]);
        Assert.Equal("[320, 1, 7, 7]", keys["stages.2.1.token_mixer.0.main.conv1.weight"]);
        Assert.Equal("[320]", keys["stages.2.1.token_mixer.0.main.fc.bias"]);
        Assert.Equal("[80]", keys["stages.0.0.channel_mixer.main.conv.bias"]);
        Assert.DoesNotContain(keys.Keys, k => k.Contains(".bn.") || k.EndsWith(".c.weight"));
        // export_model.py's replace_batchnorm on ffnet_1: 191 state-dict entries, 13,660,152 parameters.
        Assert.Equal(191, keys.Count);
        Assert.Equal(13_660_152, root.ParameterCount());
    }
}
