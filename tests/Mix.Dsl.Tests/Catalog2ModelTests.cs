using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The zoo's Mamba-2 and GLA language models (models/mamba2.mix, gla.mix) have the official state-dict keys and
/// shapes at their published configurations: Hugging Face Mamba2ForCausalLM (state-spaces/mamba2-130m's shape) and
/// flash-linear-attention GLAForCausalLM (its defaults at d_model 1024). Numerical parity: Mix.Generator.Tests'
/// Catalog2ParityTests.
/// </summary>
public class Catalog2ModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void Mamba2_lm_keys_are_Hugging_Faces()
    {
        var root = Examples.Find("mamba2_lm")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[50288, 768]", keys["backbone.embeddings.weight"]);
        Assert.Equal("[768]", keys["backbone.layers.0.norm.weight"]);
        // in_proj: 2·1536 (z, x) + 2·1·128 (B, C) + 24 heads (dt) = 3352 rows, as mamba2-130m's checkpoint.
        Assert.Equal("[3352, 768]", keys["backbone.layers.0.mixer.in_proj.weight"]);
        Assert.Equal("[1792, 1, 4]", keys["backbone.layers.0.mixer.conv1d.weight"]);
        Assert.Equal("[1792]", keys["backbone.layers.0.mixer.conv1d.bias"]);
        Assert.Equal("[24]", keys["backbone.layers.23.mixer.dt_bias"]);
        Assert.Equal("[24]", keys["backbone.layers.23.mixer.A_log"]);
        Assert.Equal("[24]", keys["backbone.layers.23.mixer.D"]);
        Assert.Equal("[1536]", keys["backbone.layers.23.mixer.norm.weight"]);
        Assert.Equal("[768, 1536]", keys["backbone.layers.23.mixer.out_proj.weight"]);
        Assert.Equal("[768]", keys["backbone.norm_f.weight"]);
        Assert.Equal("[50288, 768]", keys["lm_head.weight"]);
        Assert.Equal(24 * 9 + 3, keys.Count); // per layer: norm, in_proj, conv1d ×2, dt_bias, A_log, D, norm, out_proj
        // mamba2-130m has 128.99 M parameters with the head tied; this zoo model's head is separate (+ 50288·768).
        Assert.Equal(167_610_816, root.ParameterCount());
    }

    [Fact]
    public void Gla_lm_keys_are_flas()
    {
        var root = Examples.Find("gla_lm")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[32000, 1024]", keys["model.embeddings.weight"]);
        Assert.Equal("[1024]", keys["model.layers.0.attn_norm.weight"]);
        Assert.Equal("[512, 1024]", keys["model.layers.0.attn.q_proj.weight"]);      // expand_k 0.5
        Assert.Equal("[512, 1024]", keys["model.layers.0.attn.k_proj.weight"]);
        Assert.Equal("[1024, 1024]", keys["model.layers.0.attn.v_proj.weight"]);
        Assert.Equal("[1024, 1024]", keys["model.layers.0.attn.g_proj.weight"]);
        Assert.Equal("[16, 1024]", keys["model.layers.0.attn.gk_proj.0.weight"]);
        Assert.Equal("[512, 16]", keys["model.layers.0.attn.gk_proj.1.weight"]);
        Assert.Equal("[512]", keys["model.layers.0.attn.gk_proj.1.bias"]);
        Assert.Equal("[1024, 1024]", keys["model.layers.0.attn.o_proj.weight"]);
        Assert.Equal("[256]", keys["model.layers.0.attn.g_norm_swish_gate.weight"]); // head_v_dim = 1024 / 4
        Assert.Equal("[1024]", keys["model.layers.0.mlp_norm.weight"]);
        // fla's GatedMLP: int(1024 · 4 · 2/3) = 2730, rounded up to a multiple of 256.
        Assert.Equal("[2816, 1024]", keys["model.layers.0.mlp.gate_proj.weight"]);
        Assert.Equal("[2816, 1024]", keys["model.layers.0.mlp.up_proj.weight"]);
        Assert.Equal("[1024, 2816]", keys["model.layers.23.mlp.down_proj.weight"]);
        Assert.Equal("[1024]", keys["model.norm.weight"]);
        Assert.Equal("[32000, 1024]", keys["lm_head.weight"]);
        Assert.Equal(24 * 14 + 3, keys.Count);
    }
    [Fact]
    public void Softs_keys_are_the_official_ones()
    {
        var root = Examples.Find("softs")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[512, 96]", keys["enc_embedding.value_embedding.weight"]);
        Assert.Equal("[512, 512]", keys["encoder.attn_layers.0.attention.gen1.weight"]);
        Assert.Equal("[512, 512]", keys["encoder.attn_layers.0.attention.gen2.weight"]);
        Assert.Equal("[512, 1024]", keys["encoder.attn_layers.1.attention.gen3.weight"]);
        Assert.Equal("[512]", keys["encoder.attn_layers.1.attention.gen4.bias"]);
        Assert.Equal("[2048, 512, 1]", keys["encoder.attn_layers.0.conv1.weight"]);
        Assert.Equal("[512, 2048, 1]", keys["encoder.attn_layers.0.conv2.weight"]);
        Assert.Equal("[512]", keys["encoder.attn_layers.0.norm2.bias"]);
        Assert.Equal("[96, 512]", keys["projection.weight"]);
        Assert.Equal(2 + 2 * 16 + 2, keys.Count); // per layer: gen1..4 ×2, conv1 ×2, conv2 ×2, norm1 ×2, norm2 ×2
        Assert.Equal("[B, 96, 7]", Examples.Find("softs")!.Output!.ToString());
    }
}
