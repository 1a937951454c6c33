using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// EfficientViM: the standard library's <c>hsm_ssd</c> (mlvlab/EfficientViM <c>HSMSSD</c>) and the zoo's
/// <c>efficientvim_m1</c> have the official keys, shapes and parameter count (EfficientViM_M1 as the official
/// EfficientViM.py builds it: 307 state-dict entries, 6,679,458 parameters); their shape contracts are located
/// diagnostics. Numerical parity: Mix.Generator.Tests' EfficientVimParityTests.
/// </summary>
public class EfficientVimModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void Efficientvim_m1_keys_and_count_are_the_official_ones()
    {
        var root = Examples.Find("efficientvim_m1")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[16, 3, 3, 3]", keys["patch_embed.conv.0.conv.weight"]);
        Assert.Equal("[16]", keys["patch_embed.conv.0.norm.running_var"]);
        Assert.Equal("[128, 64, 3, 3]", keys["patch_embed.conv.3.conv.weight"]);
        Assert.Equal("[4, 128]", keys["stages.0.blocks.0.alpha"]);
        Assert.Equal("[147, 128, 1]", keys["stages.0.blocks.0.mixer.BCdt_proj.conv.weight"]);   // 3 · state_dim 49
        Assert.Equal("[147, 1, 3, 3]", keys["stages.0.blocks.0.mixer.dw.conv.weight"]);
        Assert.Equal("[256, 128, 1]", keys["stages.0.blocks.1.mixer.hz_proj.conv.weight"]);
        Assert.Equal("[128, 128, 1]", keys["stages.0.blocks.1.mixer.out_proj.conv.weight"]);
        Assert.Equal("[49]", keys["stages.0.blocks.0.mixer.A"]);
        Assert.Equal("[1]", keys["stages.0.blocks.0.mixer.D"]);
        Assert.Equal("[1, 128, 1]", keys["stages.0.blocks.0.norm.weight"]);
        Assert.Equal("[128, 1, 3, 3]", keys["stages.0.blocks.0.dwconv1.conv.weight"]);
        Assert.Equal("[128]", keys["stages.0.blocks.0.dwconv2.norm.bias"]);
        Assert.Equal("[512, 128, 1, 1]", keys["stages.0.blocks.0.ffn.fc1.conv.weight"]);
        Assert.Equal("[128]", keys["stages.0.blocks.0.ffn.fc2.norm.running_mean"]);
        Assert.Equal("[128, 1, 3, 3]", keys["stages.0.downsample.dwconv1.conv.weight"]);
        Assert.Equal("[768, 128, 1, 1]", keys["stages.0.downsample.conv.0.conv.weight"]);
        Assert.Equal("[768, 1, 3, 3]", keys["stages.0.downsample.conv.1.conv.weight"]);
        Assert.Equal("[192, 768, 1, 1]", keys["stages.0.downsample.conv.2.fc1.weight"]);     // timm make_divisible(768 / 4)
        Assert.Equal("[768]", keys["stages.0.downsample.conv.2.fc2.bias"]);
        Assert.Equal("[192, 768, 1, 1]", keys["stages.0.downsample.conv.3.conv.weight"]);
        Assert.Equal("[192, 1, 3, 3]", keys["stages.0.downsample.dwconv2.conv.weight"]);
        Assert.Equal("[27, 320, 1]", keys["stages.2.blocks.1.mixer.BCdt_proj.conv.weight"]);
        Assert.False(keys.ContainsKey("stages.2.downsample.conv.0.conv.weight"));
        Assert.Equal("[4]", keys["weights"]);
        Assert.Equal("[1, 128, 1]", keys["norm.0.weight"]);
        Assert.Equal("[1, 320, 1, 1]", keys["norm.3.bias"]);
        Assert.Equal("[1000, 192]", keys["heads.1.weight"]);
        Assert.Equal("[1000, 320]", keys["heads.3.weight"]);
        // The official EfficientViM_M1 (count made by tests/parity/make_catalog2b_fixtures.py, recorded in
        // efficientvim.config.json): 307 state-dict entries, 6,679,458 parameters.
        Assert.Equal(307, keys.Count);
        Assert.Equal(6_679_458, root.ParameterCount());
        Assert.Equal("[B, 1000]", Examples.Find("efficientvim_m1")!.Output!.ToString());
    }

    static MixCompilation Use(string input, string output, string mixer) => Repo.Compile($$"""
        import "mix/std/hsm_ssd.mix"
        model m() (x: {{input}}) -> {{output}} {
          mixer = {{mixer}}
          return mixer(x)
        }
        """);

    [Fact]
    public void Hsm_ssd_keys_and_contract()
    {
        // Any map, not only a square: the output is the 5·7 tokens of y, then the 9 hidden states.
        var c = Use("[B, 16, 5, 7]", "[B, 16, 44]", "hsm_ssd(dim = 16, ssd_expand = 1.5, state_dim = 9)");
        Assert.Empty(c.Diagnostics);
        var keys = c.Find("m")!.Root!.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal(new[] { "mixer.A", "mixer.BCdt_proj.conv.weight", "mixer.D", "mixer.dw.conv.weight", "mixer.hz_proj.conv.weight", "mixer.out_proj.conv.weight" },
            keys.Keys.OrderBy(k => k, System.StringComparer.Ordinal).ToArray());
        Assert.Equal("[27, 16, 1]", keys["mixer.BCdt_proj.conv.weight"]);
        Assert.Equal("[27, 1, 3, 3]", keys["mixer.dw.conv.weight"]);
        Assert.Equal("[48, 16, 1]", keys["mixer.hz_proj.conv.weight"]);   // 2 · int(1.5 · 16)
        Assert.Equal("[16, 24, 1]", keys["mixer.out_proj.conv.weight"]);
        Assert.Equal("[9]", keys["mixer.A"]);
    }

    [Fact]
    public void Hsm_ssd_takes_a_map_not_the_flattened_tokens()
    {
        const string text = """
            import "mix/std/hsm_ssd.mix"
            model m() (x: [B, 16, 25]) -> [B, 16, 34] {
              mixer = hsm_ssd(state_dim = 9)(16)
              return mixer(x)
            }
            """;
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("[B, dim, H, W]", d.Message);
        Assert.Equal("mixer(x)", text.Substring(d.Span.Start, d.Span.Length));
    }

    [Fact]
    public void Efficientvim_is_built_for_its_img_size()
    {
        const string text = """
            import "mix/models/efficientvim.mix"
            model m() (x: [B, 3, 192, 192]) -> [B, 1000] {
              net = efficientvim(embed_dim = [128, 192, 320])
              return net(x)
            }
            """;
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("224", d.Message);
        Assert.Equal("net(x)", text.Substring(d.Span.Start, d.Span.Length));
        // The same image size given as img_size checks.
        Assert.Empty(Repo.Compile(text.Replace("efficientvim(", "efficientvim(img_size = 192, ")).Diagnostics);
    }
}
