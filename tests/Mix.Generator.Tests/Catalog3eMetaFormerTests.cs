using System;
using System.Linq;
using Mix.Dsl;
using Mix.Generated.Models;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The zoo's <c>metaformer_block</c> with a channel mixer in its MLP's place (<c>channel_mixer = moe(...)</c>, the
/// issue's <c>metaformer_block(mlp = moe(...))</c>): the mixer's keys sit under <c>mlp</c>, a model of such blocks trains
/// on its task loss plus the auxiliary losses <see cref="MixAux"/> reads, and a channel mixer whose layout does not
/// match the block's is a located diagnostic. Model: tests/Mix.Generator.Tests/Models/catalog3e.mix.
/// </summary>
public class Catalog3eMetaFormerTests
{
    [Fact]
    public void Channel_mixers_take_the_mlp_keys_and_the_default_mlp_keeps_its_own()
    {
        using var model = new MetaformerMoe(new MetaformerMoe.Options());
        var keys = model.state_dict().ToDictionary(kv => kv.Key, kv => string.Join(",", kv.Value.shape));
        // The default: timm's MLP as 1×1 convolutions (NCHW block).
        Assert.Equal("64,16,1,1", keys["pool_block.mlp.fc1.weight"]);
        Assert.Equal("16,64,1,1", keys["pool_block.mlp.fc2.weight"]);
        // moe(num_experts = 4, hidden = 32) where the MLP was.
        Assert.Equal("4,16", keys["moe_block.mlp.gate.weight"]);
        Assert.Equal("4,16,32", keys["moe_block.mlp.w1"]);
        Assert.Equal("4,32,16", keys["moe_block.mlp.w2"]);
        Assert.DoesNotContain("moe_block.mlp.fc1.weight", keys.Keys);
        // block_ffn(num_experts = 4): BlockFFN's keys.
        Assert.Equal("4,16", keys["ffn_block.mlp.moe_router.w_gate"]);
        Assert.Equal("64,16", keys["ffn_block.mlp.moe_experts.moe_w_in"]);
        Assert.Equal("4", keys["ffn_block.mlp.router_norm.weight"]);
        // The block's own layers are where they were.
        Assert.Contains("moe_block.token_mixer.qkv.weight", keys.Keys);
        Assert.Contains("ffn_block.layer_scale2.scale", keys.Keys);
        var front = MixCompilation.Create(new[] { new Mix.Dsl.Text.SourceText("catalog3e.mix",
            System.IO.File.ReadAllText(System.IO.Path.Combine(Harness.TestDir(), "Models", "catalog3e.mix"))) });
        Assert.DoesNotContain(front.Diagnostics, d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        var expected = front.Find("metaformer_moe")!.Root!.AllWeights().Select(w => w.Key).OrderBy(k => k, StringComparer.Ordinal);
        Assert.Equal(expected, keys.Keys.OrderBy(k => k, StringComparer.Ordinal));
    }

    [Fact]
    public void A_metaformer_with_moe_mlps_trains_a_step_on_its_task_and_aux_losses()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var model = new MetaformerMoe(new MetaformerMoe.Options());
        model.train();
        var x = torch.randn(4, 3, 8, 6);                // 4×3 tokens after the stem
        var labels = torch.tensor(new long[] { 1, 7, 3, 3 });
        var logits = model.call(x);
        Assert.Equal(new long[] { 4, 10 }, logits.shape);

        var losses = MixAux.Losses(model).Select(l => l.Key).OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[]
        {
            "ffn_block.mlp.balance_loss", "ffn_block.mlp.l1_loss", "ffn_block.mlp.router_entropy", "ffn_block.mlp.transfer_loss",
            "moe_block.mlp.balance_loss",
        }, losses);
        Assert.Equal("moe_block.mlp.dropped_tokens", Assert.Single(MixAux.Stats(model)).Key);
        var balance = MixAux.Losses(model).Single(l => l.Key == "moe_block.mlp.balance_loss").Value.item<float>();
        Assert.True(balance >= 1 - 1e-5 && balance <= 4 + 1e-5, $"balance loss {balance} outside [1, E]");

        var aux = MixAux.TotalLoss(model, name => name == "l1_loss" ? 1e-3 : 0.01)!;
        var loss = nn.functional.cross_entropy(logits, labels) + aux;
        var gate = model.named_parameters().Single(p => p.name == "moe_block.mlp.gate.weight").parameter;
        var router = model.named_parameters().Single(p => p.name == "ffn_block.mlp.moe_router.w_gate").parameter;
        var (gateBefore, routerBefore) = (gate.detach().clone(), router.detach().clone());
        using var optimizer = optim.SGD(model.parameters(), 0.1);
        optimizer.zero_grad();
        loss.backward();
        Assert.True(gate.grad is not null && gate.grad.abs().sum().item<float>() > 0, "the router of moe gets no gradient");
        Assert.True(router.grad is not null && router.grad.abs().sum().item<float>() > 0, "the router of block_ffn gets no gradient");
        optimizer.step();
        Assert.True((gate - gateBefore).abs().max().item<float>() > 0);
        Assert.True((router - routerBefore).abs().max().item<float>() > 0);
        Assert.True(float.IsFinite(model.call(x).sum().item<float>()));
    }

    [Fact]
    public void A_token_channel_mixer_in_an_nchw_block_is_a_located_shape_error()
    {
        const string text = """
            import "mix/models/metaformer.mix"
            import "mix/std/moe.mix"
            model m() (x: [B, 16, 4, 4]) -> [B, 16, 4, 4] {
              block = metaformer_block(16, token_mixer = pool(3), channel_mixer = moe(num_experts = 4))
              return block(x)
            }
            """;
        var c = MixCompilation.Create("m.mix", text);
        var d = Assert.Single(c.Diagnostics, d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("moe expects x: [B, N, dim]", d.Message);
        // Located where the block applies its MLP (the zoo file), as a token mixer of the wrong layout is.
        Assert.Equal("mix/models/metaformer.mix", d.Path);
        Assert.Contains("mlp(norm2(t))", System.IO.File.ReadAllLines(System.IO.Path.Combine(Harness.RepoRoot(), "models", "metaformer.mix"))[d.Start.Line]);
        // Fixed by running the block channels-last (tokens), as attention stages do.
        var fixedText = text.Replace("token_mixer = pool(3), channel_mixer",
            "token_mixer = attention(head_dim = 8), norm = layernorm_nobias, use_nchw = false, channel_mixer");
        Assert.DoesNotContain(MixCompilation.Create("m.mix", fixedText).Diagnostics, e => e.Severity == Mix.Dsl.Diagnostics.Severity.Error);
    }
}
