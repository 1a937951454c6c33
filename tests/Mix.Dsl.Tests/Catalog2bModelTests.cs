using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The zoo's M2-BERT (models/m2_bert.mix) has the official HazyResearch/m2 BertModel keys and shapes at M2-BERT-base
/// 80M (768 wide, 12 layers, bidirectional filter of order 128 on a 5-wide positional embedding, residual long conv,
/// block-diagonal GLU MLP with 4 blocks). Numerical parity: Mix.Generator.Tests' Catalog2bParityTests.
/// </summary>
public class Catalog2bModelTests
{
    static readonly MixCompilation Examples = MixCompilation.Create(Repo.ExampleSources());

    [Fact]
    public void M2_bert_keys_are_the_official_ones()
    {
        var root = Examples.Find("m2_bert")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[30528, 768]", keys["embeddings.word_embeddings.weight"]);
        Assert.Equal("[128, 768]", keys["embeddings.position_embeddings.weight"]);
        Assert.Equal("[2, 768]", keys["embeddings.token_type_embeddings.weight"]);
        Assert.Equal("[1, 128]", keys["embeddings.position_ids"]);
        Assert.Equal("[768]", keys["embeddings.LayerNorm.bias"]);
        const string a = "encoder.layer.11.attention.";
        Assert.Equal("[2304, 768]", keys[a + "in_linear.weight"]);
        Assert.Equal("[2304, 1, 3]", keys[a + "short_filter.weight"]);
        Assert.Equal("[768, 768]", keys[a + "out_linear.weight"]);
        foreach (var f in new[] { "filter_fn.", "filter_fn2." })
        {
            Assert.Equal("[768]", keys[a + f + "bias"]);
            Assert.Equal("[1, 128, 5]", keys[a + f + "pos_emb.z"]);
            Assert.Equal("[1, 128, 1]", keys[a + f + "pos_emb.t"]);
            Assert.Equal("[1, 1, 768]", keys[a + f + "modulation.deltas"]);
            foreach (var mlp in new[] { "implicit_filter.", "implicit_filter_rev." })
            {
                Assert.Equal("[128, 5]", keys[a + f + mlp + "0.weight"]);
                Assert.Equal("[128, 128]", keys[a + f + mlp + "4.weight"]);
                Assert.Equal("[768, 128]", keys[a + f + mlp + "6.weight"]);
                Assert.DoesNotContain(a + f + mlp + "6.bias", keys.Keys);
                foreach (var i in new[] { 1, 3, 5 }) Assert.Equal("[1, 128]", keys[a + f + mlp + i + ".freq"]);
            }
        }
        // BlockdiagLinear: [nblocks, out/nblocks, in/nblocks]; gated_layers has no bias.
        Assert.Equal("[4, 1536, 192]", keys["encoder.layer.0.mlp.gated_layers.weight"]);
        Assert.DoesNotContain("encoder.layer.0.mlp.gated_layers.bias", keys.Keys);
        Assert.Equal("[4, 192, 768]", keys["encoder.layer.0.mlp.wo.weight"]);
        Assert.Equal("[768]", keys["encoder.layer.0.mlp.wo.bias"]);
        Assert.Equal("[768]", keys["encoder.layer.0.mlp.layernorm.weight"]);
        // Per layer: in/out_linear ×2, short_filter ×2, 2 filters × (bias, z, t, deltas, 2 MLPs × (3 linear ×2 + 1 + 3 freq)),
        // mlp: gated_layers, wo ×2, layernorm ×2.
        Assert.Equal(6 + 12 * (6 + 2 * (4 + 2 * 10) + 5), keys.Count);
        // Six freq keys per filter, one parameter: 79.6 M parameters counts each filter's frequencies once.
        Assert.Equal(79_644_672, root.ParameterCount());
        Assert.Equal("[B, L, 768]", Examples.Find("m2_bert")!.Output!.ToString());
    }

    [Fact]
    public void Lmu_former_keys_are_the_official_ones()
    {
        var root = Examples.Find("lmu_former")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        Assert.Equal("[256, 128, 3]", keys["patch_embed.conv_layers.0.0.weight"]);
        Assert.DoesNotContain("patch_embed.conv_layers.0.0.bias", keys.Keys);
        Assert.Equal("[256]", keys["patch_embed.conv_layers.3.3.running_var"]);
        Assert.Equal("[256, 256, 3]", keys["patch_embed.rpe_conv.weight"]);
        const string a = "block.0.attn.";
        Assert.Equal("[1, 256]", keys[a + "lmu.W_u.weight"]);
        Assert.Equal("[256, 512]", keys[a + "lmu.W_h.weight"]);
        Assert.Equal("[256, 256]", keys[a + "lmu.A"]);
        Assert.Equal("[256, 1]", keys[a + "lmu.B"]);
        Assert.Equal("[256, 128]", keys[a + "lmu.H"]);
        Assert.Equal("[256, 129]", keys[a + "lmu.fft_H"]);            // complex64 (seq_len + 1 bins of rfft over 2·seq_len)
        Assert.DoesNotContain(a + "lmu.legendre", keys.Keys);   // non-persistent: not in the state dict
        Assert.Equal("[256, 256, 1]", keys[a + "proj_conv.weight"]);
        Assert.Equal("[256]", keys[a + "proj_bn.running_mean"]);
        Assert.Equal("[1024, 256, 1]", keys["block.0.mlp.fc1_conv.weight"]);
        Assert.Equal("[256]", keys["block.0.mlp.fc2_bn.bias"]);
        Assert.Equal("[35, 256]", keys["head.weight"]);
        Assert.Equal("[B, 35]", Examples.Find("lmu_former")!.Output!.ToString());
    }
}
