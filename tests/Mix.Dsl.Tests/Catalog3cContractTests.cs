using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The shape contracts of iFormer's and FFNet's library definitions and zoo models: what the official code asserts or
/// crashes on (non-square maps in iFormer's low-frequency attention, a side the pooling does not divide, an odd
/// high-frequency part, a non-square image, a patch merging whose output channels are not a
/// multiple of its input's) is a located MIX diagnostic; what the official accepts checks clean.
/// </summary>
public class Catalog3cContractTests
{
    static MixCompilation Check(string body, string imports = "import \"mix/std/mixers.mix\"\n") =>
        MixCompilation.Create(Repo.ExampleSources().Append(new SourceText("/project/net.mix", imports + body)));

    static string[] Errors(MixCompilation c) => c.Diagnostics.Select(d => d.ToString()).ToArray();

    const string Mixer = "block b() (x: [B, {0}, {1}, {2}]) -> [B, {0}, {1}, {2}] {{\n  m = inception_mixer(dim = {2}, num_heads = 4, attention_head = 2{3})\n  return m(x)\n}}\n";

    [Theory]
    [InlineData(8, 8, 16, "")]                    // square, even: pooled attention on 4 × 4
    [InlineData(1, 1, 16, ", pool_size = 1")]     // batch of one token, no pooling (stages 3-4)
    [InlineData(7, 7, 16, ", pool_size = 1")]     // odd sides are fine without pooling
    [InlineData(6, 6, 24, ", pool_size = 3")]
    public void Inception_mixer_accepts_what_the_official_accepts(int h, int w, int dim, string extra)
    {
        var c = Check(string.Format(Mixer, h, w, dim, extra));
        Assert.Empty(Errors(c));
    }

    [Fact]
    public void Inception_mixer_on_a_non_square_map_is_an_error_at_the_call()
    {
        var c = Check(string.Format(Mixer, 8, 6, 16, ""));
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Equal("/project/net.mix", d.Path);
        Assert.StartsWith("/project/net.mix(4,10): error MIX0302", d.ToString());   // at m(x)
        Assert.Contains("axis 2 should be 8, not 6", d.Message);
    }

    [Fact]
    public void Pooled_attention_on_a_side_the_pool_does_not_divide_is_an_error()
    {
        var c = Check(string.Format(Mixer, 7, 7, 16, ""));
        var d = Assert.Single(c.Diagnostics, x => x.Id == "MIX0305");
        Assert.Equal("mix/std/inception_low_mixer.mix", d.Path);
        Assert.Contains("7/2 is a fraction", d.Message);
    }

    [Fact]
    public void An_odd_high_frequency_part_is_a_split_error()
    {
        // dim 18, 6 heads of 3, one low-frequency head: 15 high-frequency channels cannot split in halves.
        var c = Check("block b() (x: [B, 8, 8, 18]) -> [B, 8, 8, 18] {\n  m = inception_mixer(dim = 18, num_heads = 6)\n  return m(x)\n}\n");
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0307" && d.Path == "mix/std/inception_high_mixer.mix" && d.Message.Contains("[7, 7] add up to 14"));
    }

    const string IformerFixture = "model f(num_classes: int = 10) = iformer(num_classes = num_classes, img_size = 64, depths = [2, 1, 2, 1], " +
        "embed_dims = [8, 16, 24, 32], num_heads = [2, 4, 6, 8], attention_heads = [1, 1, 2, 3, 4, 5])\n";

    static MixCompilation Iformer(int h, int w) =>
        Check(IformerFixture + $"model g() (x: [B, 3, {h}, {w}]) -> [B, 10] {{\n  m = f()\n  return m(x)\n}}\n", "import \"mix/models/iformer.mix\"\n");

    [Theory]
    [InlineData(64)]     // its img_size
    [InlineData(96)]     // the positional embeddings resized, as the official
    [InlineData(32)]
    public void Iformer_takes_square_inputs_that_its_strides_divide(int side) => Assert.Empty(Errors(Iformer(side, side)));

    [Fact]
    public void Iformer_on_a_non_square_image_is_an_error_at_the_call()
    {
        var d = Assert.Single(Iformer(64, 48).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Equal("/project/net.mix", d.Path);
        Assert.Contains("iformer expects x: [B, in_chans, H, H]", d.Message);
        Assert.Contains("axis 3 should be 64, not 48", d.Message);
    }

    [Fact]
    public void Iformer_on_a_side_whose_second_stage_is_odd_is_an_error()
    {
        // 72 → 18 → 9: stage 2's pooled attention cannot halve 9 (the official fails at its concatenation).
        Assert.Contains(Iformer(72, 72).Diagnostics, d => d.Id == "MIX0305" && d.Message.Contains("9/2 is a fraction"));
    }

    [Theory]
    [InlineData(7, 9, 7, "")]                  // odd, non-square maps: FFNet is convolutional
    [InlineData(1, 1, 7, ", deploy = true")]
    [InlineData(5, 6, 3, ", use_gelu = false")]
    public void Ffnified_attention_keeps_any_map(int h, int w, int ks, string extra)
    {
        var c = Check($"block b() (x: [B, 8, {h}, {w}]) -> [B, 8, {h}, {w}] {{\n  m = ffnified_attention(dim = 8, ks1 = {ks}, ks2 = {ks}{extra})\n  return m(x)\n}}\n");
        Assert.Empty(Errors(c));
    }

    [Fact]
    public void Ffnified_attention_with_the_wrong_channels_is_an_error_at_the_call()
    {
        var c = Check("block b() (x: [B, 8, 5, 5]) -> [B, 8, 5, 5] {\n  m = ffnified_attention(dim = 6)\n  return m(x)\n}\n");
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Equal("/project/net.mix", d.Path);
    }

    [Fact]
    public void Ffnet_patch_merging_needs_output_channels_that_its_groups_divide()
    {
        // RepVGGDW groups by the input channels (the official nn.Conv2d raises "out_channels must be divisible by groups").
        var c = Check("block b() (x: [B, 16, 8, 8]) -> [B, 24, 4, 4] {\n  m = ffnet_patch_merging(16, 24)\n  return m(x)\n}\n",
            "import \"mix/models/ffnet.mix\"\n");
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0206");
    }

    [Theory]
    [InlineData("interpolate(x, [6, 6], mode = \"area\")", "MIX0205", "interpolate mode must be")]
    [InlineData("interpolate(x, [6])", "MIX0205", "two entries")]
    [InlineData("interpolate(reshape(x, [B, 48]), [6, 6])", "MIX0302", "")]
    public void Interpolate_checks_its_mode_size_and_rank(string call, string id, string message)
    {
        var c = Check($"block b() (x: [B, 3, 4, 4]) -> [B, 3, 6, 6] {{\n  return {call}\n}}\n", "");
        Assert.Contains(c.Diagnostics, d => d.Id == id && d.Message.Contains(message));
    }

    [Fact]
    public void Interpolate_gives_the_requested_size()
    {
        var c = Check("block b() (x: [B, 3, 4, 5]) -> [B, 3, 7, 2] {\n  return interpolate(x, [7, 2], mode = \"nearest\")\n}\n", "");
        Assert.Empty(Errors(c));
    }
}
