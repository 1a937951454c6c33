using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// MS-MLP, RaftMLP and WaveMix in the zoo: official state-dict keys, shapes and parameter counts at the published
/// configurations (counted on the official code), and the shape contracts that stand for the official asserts.
/// Numerical parity: Mix.Generator.Tests' Catalog3dParityTests.
/// </summary>
public class Catalog3dModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    static Diagnostic Single(string text, string id)
    {
        var c = Repo.Compile(text, "net.mix");
        var errors = c.Diagnostics.Where(d => d.Severity == Severity.Error).ToList();
        Assert.True(errors.Count == 1, string.Join("\n", errors.Select(e => e.ToString())));
        Assert.Equal(id, errors[0].Id);
        return errors[0];
    }

    [Fact]
    public void Ms_mlp_tiny_keys_and_count_are_MS_MLPs()
    {
        var root = Examples.Find("ms_mlp_tiny")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[96, 3, 4, 4]", keys["patch_embed.proj.weight"]);
        Assert.Equal("[96]", keys["patch_embed.norm.bias"]);
        Assert.Equal("[96]", keys["layers.0.blocks.0.gamma"]);
        // torch.chunk(96 channels, 5): groups of ceil(96 / 5) = 20, the last 16.
        Assert.Equal("[20, 1, 1, 1]", keys["layers.0.blocks.0.dwconv_lr.0.weight"]);
        Assert.Equal("[20, 1, 5, 5]", keys["layers.0.blocks.2.dwconv_td.3.weight"]);
        Assert.Equal("[16, 1, 7, 7]", keys["layers.0.blocks.0.dwconv_lr.4.weight"]);
        Assert.Equal("[16]", keys["layers.0.blocks.0.dwconv_td.4.bias"]);
        Assert.Equal("[39, 1, 3, 3]", keys["layers.1.blocks.0.dwconv_lr.1.weight"]);   // 192: 39 × 4 + 36
        Assert.Equal("[36, 1, 7, 7]", keys["layers.1.blocks.0.dwconv_lr.4.weight"]);
        Assert.Equal("[77, 1, 5, 5]", keys["layers.2.blocks.8.dwconv_td.1.weight"]);   // 384: 77 × 4 + 76
        Assert.Equal("[76, 1, 7, 7]", keys["layers.2.blocks.8.dwconv_td.4.weight"]);
        Assert.Equal("[768, 384, 2, 2]", keys["layers.2.downsample.proj.weight"]);
        Assert.Equal("[96]", keys["layers.0.blocks.1.norm.weight"]);
        Assert.Equal("[384, 96]", keys["layers.0.blocks.0.pwconv1.weight"]);
        Assert.Equal("[96, 384]", keys["layers.0.blocks.0.pwconv2.weight"]);
        Assert.Equal("[192, 96, 2, 2]", keys["layers.0.downsample.proj.weight"]);
        Assert.Equal("[192]", keys["layers.0.downsample.norm.weight"]);
        Assert.False(keys.ContainsKey("layers.3.downsample.proj.weight"));
        Assert.Equal("[154, 1, 7, 7]", keys["layers.3.blocks.0.dwconv_lr.1.weight"]);     // 768: 154 × 4 + 152
        Assert.Equal("[152, 1, 7, 7]", keys["layers.3.blocks.2.dwconv_lr.4.weight"]);
        Assert.Equal("[768]", keys["norm.weight"]);
        Assert.Equal("[1000, 768]", keys["head.weight"]);
        // The official MS_MLP (configs/msmlp_tiny_patch4_shift5_224.yaml): 506 state-dict entries, 28,656,232 parameters.
        Assert.Equal(506, keys.Count);
        Assert.Equal(28_656_232, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("ms_mlp_tiny")!.Output!.ToString());
    }

    [Theory]
    [InlineData("[B, 3, 256, 256]")]   // another size
    [InlineData("[B, 3, 224, 192]")]   // not square
    [InlineData("[B, 3, H, W]")]       // any size
    public void Ms_mlp_input_is_the_size_it_was_built_for(string input)
    {
        // The official PatchEmbed asserts H == img_size and W == img_size (and each stage's size after it).
        var text = $"import \"mix/models/ms_mlp.mix\"\nmodel net() (x: {input}) -> [B, 1000] {{\n  m = ms_mlp()\n  return m(x)\n}}\n";
        var d = Single(text, "MIX0302");
        Assert.Equal("net.mix", d.Path);
        Assert.Equal("m(x)", text.Substring(d.Span.Start, d.Span.Length));
        Assert.Contains("ms_mlp expects x: [B, in_chans, img_size, img_size]", d.Message);
        // Through the alias ms_mlp_tiny the checker reports at the alias's definition in the zoo file (as for every
        // alias model), with the same message.
        var alias = Single(text.Replace("ms_mlp()", "ms_mlp_tiny()"), "MIX0302");
        Assert.Equal("mix/models/ms_mlp.mix", alias.Path);
        Assert.Equal(d.Message, alias.Message);
    }

    [Fact]
    public void Ms_mlp_accepts_its_own_size_and_floors_odd_stage_sizes()
    {
        // img_size 60: 15, 7, 3 and 1 positions per side, as the official's stride-2 patch embeddings floor.
        var c = Repo.Compile("import \"mix/models/ms_mlp.mix\"\nmodel net() (x: [B, 3, 60, 60]) -> [B, 10] {\n" +
            "  m = ms_mlp(num_classes = 10, img_size = 60, embed_dim = 10, depths = [1, 1, 1, 1])\n  return m(x)\n}\n", "net.mix");
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        var layers = c.Find("net")!.Root!.Children.Single().Children.ToDictionary(l => l.Name, l => l);
        Assert.Equal("[B, 80, 1, 1]", layers["layers"].Children.Last().OutputShape!.ToString());
    }

    [Fact]
    public void Mix_shift_with_fewer_chunks_than_shift_size_is_located_in_the_library()
    {
        // torch.chunk(8 channels, 5) makes four groups of 2: the official block fails with an IndexError; here the
        // fifth group has no channels.
        var c = Repo.Compile("import \"mix/std/mix_shift.mix\"\nblock b() (x: [B, 8, H, W]) -> [B, 8, H, W] {\n  m = mix_shift(dim = 8)\n  return m(x)\n}\n", "net.mix");
        var errors = c.Diagnostics.Where(d => d.Severity == Severity.Error).ToList();
        Assert.Equal(2, errors.Count);   // dwconv_lr and dwconv_td
        Assert.All(errors, d =>
        {
            Assert.Equal("MIX0205", d.Id);
            Assert.Equal("mix/std/mix_shift.mix", d.Path);
            Assert.Contains("in_channels must be positive; got 0", d.Message);
        });
    }

    [Fact]
    public void Raft_mlp_s_keys_and_count_are_RaftMLPs()
    {
        var root = Examples.Find("raft_mlp_s")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[64, 240]", keys["levels.0.fn.0.fc.weight"]);            // 3 · (4² + 8²) window values
        Assert.Equal("[128, 1280]", keys["levels.1.fn.0.fc.weight"]);          // 64 · (2² + 4²)
        Assert.Equal("[512, 1024]", keys["levels.3.fn.0.fc.weight"]);          // 256 · 2²
        Assert.Equal("[64]", keys["levels.0.fn.2.1.norm.1.weight"]);
        Assert.Equal("[224, 112]", keys["levels.0.fn.2.1.fn.0.weight"]);       // raft 2 × 56 rows, expansion 2
        Assert.Equal("[112, 224]", keys["levels.0.fn.3.3.fn.3.weight"]);
        Assert.Equal("[64]", keys["levels.0.fn.3.5.norm.bias"]);
        Assert.Equal("[256, 64]", keys["levels.0.fn.2.5.fn.0.weight"]);
        Assert.Equal("[56, 28]", keys["levels.2.fn.7.1.fn.0.weight"]);
        Assert.Equal("[256]", keys["levels.2.fn.7.3.norm.1.weight"]);
        Assert.Equal("[14, 28]", keys["levels.3.fn.3.3.fn.3.weight"]);
        Assert.Equal("[2048, 512]", keys["levels.3.fn.3.5.fn.0.weight"]);
        Assert.DoesNotContain(keys.Keys, k => k.StartsWith("levels.0.fn.1.") || k.StartsWith("levels.3.fn.4."));
        Assert.Equal("[512]", keys["heads.0.1.weight"]);
        Assert.Equal("[1000, 512]", keys["classifier.weight"]);
        // The official RaftMLP (configs/settings/imagenet-raft-mlp-cross-mlp-emb-s.yaml): 228 entries, 9,868,768 parameters.
        Assert.Equal(228, keys.Count);
        Assert.Equal(9_868_768, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("raft_mlp_s")!.Output!.ToString());
    }

    [Theory]
    [InlineData("[B, 3, 256, 256]")]
    [InlineData("[B, 3, 224, 160]")]
    public void Raft_mlp_input_is_the_size_it_was_built_for(string input)
    {
        // The official interpolates other sizes (bicubic) to pretrained_image_size; here they are an error at the call.
        var text = $"import \"mix/models/raft_mlp.mix\"\nmodel net() (x: {input}) -> [B, 1000] {{\n  m = raft_mlp()\n  return m(x)\n}}\n";
        var d = Single(text, "MIX0302");
        Assert.Equal("net.mix", d.Path);
        Assert.Equal("m(x)", text.Substring(d.Span.Start, d.Span.Length));
        Assert.Contains("raft_mlp expects x: [B, in_channels, pretrained_image_size, pretrained_image_size]", d.Message);
    }

    [Fact]
    public void Raft_mlp_sizes_that_a_level_cannot_divide_are_located()
    {
        // 36 / 4 = 9 positions per side, which the next level's 2 × 2 patches cannot divide (the official would
        // interpolate); a raft size that does not divide the level's channels (the official asserts it) cannot reshape.
        var c = Repo.Compile("import \"mix/models/raft_mlp.mix\"\nmodel net() (x: [B, 3, 36, 36]) -> [B, 1000] {\n" +
            "  m = raft_mlp(pretrained_image_size = 36)\n  return m(x)\n}\n", "net.mix");
        var d = Assert.Single(c.Diagnostics, d => d.Severity == Severity.Error);
        Assert.Equal("MIX0305", d.Id);
        Assert.Equal("mix/models/raft_mlp.mix", d.Path);
        Assert.Contains("9/2", d.Message);
        var r = Repo.Compile("import \"mix/models/raft_mlp.mix\"\nmodel net() (x: [B, 3, 224, 224]) -> [B, 1000] {\n" +
            "  m = raft_mlp(raft_sizes = [2, 3, 2, 2])\n  return m(x)\n}\n", "net.mix");
        Assert.NotEmpty(r.Diagnostics);
        Assert.All(r.Diagnostics, e =>
        {
            Assert.Equal("MIX0306", e.Id);
            Assert.Equal("mix/std/raft_permuted_block.mix", e.Path);
        });
    }
}
