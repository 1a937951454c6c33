using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>The example models are real architectures; the checker must accept them and build timm's exact modules.</summary>
public class ExampleModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void AllExamplesCheckWithoutDiagnostics()
    {
        Assert.Empty(Examples.Diagnostics.Select(d => d.ToString()));
    }

    [Theory]
    [InlineData("poolformer_s12", "[B, 3, H, W]", "[B, 1000]", 11_915_176)]
    [InlineData("poolformer_s24", "[B, 3, H, W]", "[B, 1000]", 21_388_968)]
    [InlineData("poolformer_s36", "[B, 3, H, W]", "[B, 1000]", 30_862_760)]
    [InlineData("convformer_s18", "[B, 3, H, W]", "[B, 1000]", 26_774_448)]
    [InlineData("caformer_s18", "[B, 3, H, W]", "[B, 1000]", 26_341_656)]
    [InlineData("identityformer_s12", "[B, 3, H, W]", "[B, 1000]", 11_891_712)]
    [InlineData("randformer_s12", "[B, 3, 224, 224]", "[B, 1000]", 12_127_010)]
    [InlineData("mixer_s16_224", "[B, 3, 224, 224]", "[B, 1000]", 18_528_264)]
    [InlineData("tsmixer", "[B, 96, 7]", "[B, 24, 7]", 28_262)]
    [InlineData("mamba_130m", "long[B, L]", "[B, L, 50280]", 129_135_360)]
    [InlineData("hybrid_lm", "long[B, L]", "[B, L, 32000]", 57_662_464)]
    public void ModelShapesAndParameterCounts(string model, string input, string output, long parameters)
    {
        var def = Examples.Find(model);
        Assert.NotNull(def);
        Assert.Equal(input, Assert.Single(def!.Inputs).ToString());
        Assert.Equal(output, def.Output?.ToString());
        Assert.Equal(parameters, def.Root!.ParameterCount());
    }

    [Fact]
    public void PublishedParameterCountsAreMetWithinHalfAPercent()
    {
        // timm's model cards: poolformer_s12 11.9 M, convformer_s18 26.8 M, caformer_s18 26.3 M;
        // mixer_s16_224 18.5 M; mamba-130m ≈ 129 M with the LM head tied to the embeddings.
        AssertNear(11.9e6, Examples.Find("poolformer_s12")!.Root!.ParameterCount()!.Value);
        AssertNear(26.8e6, Examples.Find("convformer_s18")!.Root!.ParameterCount()!.Value);
        AssertNear(26.3e6, Examples.Find("caformer_s18")!.Root!.ParameterCount()!.Value);
        AssertNear(18.5e6, Examples.Find("mixer_s16_224")!.Root!.ParameterCount()!.Value);
        // The head is @tied, so the count is the tied one (HF's num_parameters) without subtracting anything.
        var mamba = Examples.Find("mamba_130m")!.Root!;
        Assert.Equal("backbone.embeddings.weight", mamba.AllWeights().Single(w => w.Key == "lm_head.weight").Weight.TiedTo);
        AssertNear(129.1e6, mamba.ParameterCount()!.Value);

        static void AssertNear(double expected, long actual) =>
            Assert.True(System.Math.Abs(actual - expected) / expected < 0.005, $"{actual:N0} is not within 0.5 % of {expected:N0}");
    }

    /// <summary>
    /// The key lists in tests/Mix.Runtime.Tests/Expected were derived from timm's source independently of this
    /// front end; the .mix models must produce the same keys and shapes, in the same order.
    /// </summary>
    [Theory]
    [InlineData("poolformer_s12")]
    [InlineData("convformer_s18")]
    [InlineData("caformer_s18")]
    [InlineData("identityformer_s12")]
    [InlineData("randformer_s12")]
    public void StateDictKeysEqualTimms(string model)
    {
        var expected = File.ReadAllLines(Path.Combine(Repo.Root, "tests", "Mix.Runtime.Tests", "Expected", model + ".keys.txt"))
            .Where(l => l.Trim().Length > 0).ToList();
        var actual = Examples.Find(model)!.Root!.AllWeights()
            .Select(w => w.Key + " " + w.Weight.ShapeText.Replace(", ", ",")).ToList();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void MambaKeysAreHuggingFaces()
    {
        var keys = Examples.Find("mamba_130m")!.Root!.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[50280, 768]", keys["backbone.embeddings.weight"]);
        Assert.Equal("[768]", keys["backbone.layers.23.norm.weight"]);
        Assert.Equal("[3072, 768]", keys["backbone.layers.0.mixer.in_proj.weight"]);
        Assert.Equal("[1536, 1, 4]", keys["backbone.layers.0.mixer.conv1d.weight"]);
        Assert.Equal("[1536]", keys["backbone.layers.0.mixer.conv1d.bias"]);
        Assert.Equal("[80, 1536]", keys["backbone.layers.0.mixer.x_proj.weight"]);   // dt_rank 48 + 2·16
        Assert.Equal("[1536, 48]", keys["backbone.layers.0.mixer.dt_proj.weight"]);
        Assert.Equal("[1536, 16]", keys["backbone.layers.0.mixer.A_log"]);
        Assert.Equal("[1536]", keys["backbone.layers.0.mixer.D"]);
        Assert.Equal("[768, 1536]", keys["backbone.layers.0.mixer.out_proj.weight"]);
        Assert.Equal("[768]", keys["backbone.norm_f.weight"]);
        Assert.Equal("[50280, 768]", keys["lm_head.weight"]);
        Assert.Equal(24 * 10 + 3, keys.Count); // per layer: norm, A_log, D, conv1d ×2, in_proj, x_proj, dt_proj ×2, out_proj
    }

    [Fact]
    public void HybridPlacesAttentionEveryFourthLayer()
    {
        var layers = Examples.Find("hybrid_lm")!.Root!.Children.Single(c => c.Name == "backbone").Children.Single(c => c.Name == "layers");
        Assert.Equal(12, layers.Children.Count);
        var kinds = layers.Children.Select(c => c.Kind).ToList();
        Assert.Equal(new[] { "mamba_block", "mamba_block", "mamba_block", "attention_block" }, kinds.Take(4));
        Assert.Equal(3, kinds.Count(k => k == "attention_block"));
    }

    [Fact]
    public void CacheFootprintsAreAccountedPerLayer()
    {
        // hybrid_lm: 9 Mamba layers (inner 1024, d_conv 4, d_state 16) and 3 causal attention layers (512 wide). The
        // library mamba's cache is its declared states: the last d_conv - 1 conv inputs and the SSM state.
        var caches = Examples.Find("hybrid_lm")!.Root!.AllCaches().ToList();
        Assert.Equal(12, caches.Count);
        var mamba = caches.First(c => c.Cache.Kind == "state");
        Assert.Equal("backbone.layers.0.mixer", mamba.Path);
        Assert.Equal((1024L * 3 + 1024 * 16) * 4, mamba.Cache.Bytes(tokens: 1000));
        var kv = caches.First(c => c.Cache.Kind == "kv");
        Assert.Equal("backbone.layers.3.mixer", kv.Path);
        Assert.Equal(2L * 512 * 4 * 1000, kv.Cache.Bytes(tokens: 1000));
        Assert.Empty(Examples.Find("caformer_s18")!.Root!.AllCaches()); // its attention is not causal
    }

    [Fact]
    public void StageOutputShapesFollowTheStrides()
    {
        var stages = Examples.Find("caformer_s18")!.Root!.Children.Single(c => c.Name == "stages");
        Assert.Equal(new[] { "[B, 64, H/4, W/4]", "[B, 128, H/8, W/8]", "[B, 320, H/16, W/16]", "[B, 512, H/32, W/32]" },
            stages.Children.Select(s => s.OutputShape?.ToString()));
    }
}
