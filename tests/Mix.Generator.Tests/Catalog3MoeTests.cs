using System;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The standard library's mixture-of-experts channel mixers: <c>moe</c> (top-k softmax router, capacity, load-balancing
/// loss) on cases small enough to check by hand (which experts a token gets, which choices a full expert drops, the
/// loss's value), against a per-token reference on random weights, and the auxiliary values a model reports after a
/// forward (<see cref="MixAux"/>); <c>block_ffn</c> against thunlp/BlockFFN's own module (fixture block_ffn).
/// </summary>
public class Catalog3MoeTests
{
    static void Redraw(nn.Module module, long seed)
    {
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            var r = torch.randn(p.shape, generator: g);
            p.copy_(p.dim() >= 2 ? r / Math.Sqrt(p.shape[^2]) : r * 0.3);
        }
    }

    static Tensor Weight(nn.Module layer) => layer.named_parameters().Single(p => p.name == "weight").parameter;

    static void Set(Tensor p, Tensor value)
    {
        using var _ = torch.no_grad();
        p.copy_(value);
    }

    /// <summary>Experts whose output is the constant e + 1 (w2 = 0, b2[e] = e + 1), a gate of 10·I: a token that is the
    /// unit vector of channel c routes first to expert c.</summary>
    static Std.Moe Constant(long experts, long topK, double? capacityFactor, bool normalize = true)
    {
        var m = new Std.Moe(new Std.Moe.Options(experts)
        {
            NumExperts = experts, TopK = topK, Hidden = 3, CapacityFactor = capacityFactor, NormalizeTopK = normalize,
        });
        Redraw(m, 1);
        Set(Weight(m.gate), torch.eye(experts) * 10);
        Set(m.w2, torch.zeros(m.w2.shape));
        Set(m.b2, (torch.arange(1, experts + 1, dtype: ScalarType.Float32).unsqueeze(1)).expand(experts, experts));
        m.eval();
        return m;
    }

    static Tensor Units(params long[] channels) =>
        torch.stack(channels.Select(c => F.one_hot(torch.tensor(c), 3).to(ScalarType.Float32)).ToArray()).unsqueeze(0);

    static double Stat(nn.Module m, string name) => MixAux.Stats(m).Single(v => v.Name == name).Value.item<float>();
    static double Loss(nn.Module m, string name) => MixAux.Losses(m).Single(v => v.Name == name).Value.item<float>();

    [Fact]
    public void Top_1_router_sends_each_token_to_its_expert()
    {
        using var scope = torch.NewDisposeScope();
        var m = Constant(3, 1, null);
        var y = m.call(Units(2, 0, 1, 2));
        // Top-1 with normalization: weight 1, so each token's output is its expert's constant c + 1 in every channel.
        Assert.Equal(new float[] { 3, 3, 3, 1, 1, 1, 2, 2, 2, 3, 3, 3 }, y.data<float>().ToArray());
        Assert.Equal(0.0, Stat(m, "dropped_tokens"));
    }

    [Fact]
    public void Top_2_weights_are_the_renormalized_router_probabilities()
    {
        using var scope = torch.NewDisposeScope();
        var m = Constant(3, 2, null);
        var y = m.call(Units(1));
        // logits [0, 10, 0]: first pick expert 1 (p = e¹⁰ / (e¹⁰ + 2)), second a tie at p = 1 / (e¹⁰ + 2) between 0 and 2.
        double p1 = Math.Exp(10) / (Math.Exp(10) + 2), p0 = 1 / (Math.Exp(10) + 2);
        double w1 = p1 / (p1 + p0), w2 = p0 / (p1 + p0);
        float v = y[0, 0, 0].item<float>();
        Assert.True(Math.Abs(v - (w1 * 2 + w2 * 1)) < 1e-5 || Math.Abs(v - (w1 * 2 + w2 * 3)) < 1e-5, $"got {v}");
    }

    [Fact]
    public void A_full_expert_drops_the_later_choices()
    {
        using var scope = torch.NewDisposeScope();
        // Two experts, top-1, capacity_factor 1: capacity = ceil(1 · 4 · 1 / 2) = 2. All four tokens pick expert 0:
        // tokens 0 and 1 are kept (output 1), tokens 2 and 3 dropped (output 0).
        var m = Constant(2, 1, 1.0);
        var x = torch.tensor(new float[] { 1, 0, 1, 0, 1, 0, 1, 0 }).reshape(1, 4, 2);
        var y = m.call(x);
        Assert.Equal(new float[] { 1, 1, 1, 1, 0, 0, 0, 0 }, y.data<float>().ToArray());
        Assert.Equal(2.0, Stat(m, "dropped_tokens"));
    }

    [Fact]
    public void First_choices_go_before_second_choices()
    {
        using var scope = torch.NewDisposeScope();
        // Top-2 of two experts: every token picks both. capacity_factor 0.5: capacity = ceil(0.5 · 4 · 2 / 2) = 2.
        // Tokens 0, 1 prefer expert 1, tokens 2, 3 expert 0: each expert's first choices fill it, so every second
        // choice is dropped and each token gets only its first expert, weighted by its renormalized probability.
        var m = Constant(2, 2, 0.5);
        var x = torch.tensor(new float[] { 0, 1, 0, 1, 1, 0, 1, 0 }).reshape(1, 4, 2);
        var y = m.call(x);
        double first = Math.Exp(10) / (Math.Exp(10) + 1);
        var expected = new[] { 2 * first, 2 * first, 1 * first, 1 * first };
        for (int t = 0; t < 4; t++)
            Assert.True(Math.Abs(y[0, t, 0].item<float>() - expected[t]) < 1e-5, $"token {t}: {y[0, t, 0].item<float>()} vs {expected[t]}");
        Assert.Equal(4.0, Stat(m, "dropped_tokens"));
    }

    [Fact]
    public void Balance_loss_is_one_for_uniform_routing_and_E_times_P_when_one_expert_takes_all()
    {
        using var scope = torch.NewDisposeScope();
        var uniform = Constant(3, 2, null);
        Set(Weight(uniform.gate), torch.zeros(3, 3));
        uniform.call(torch.randn(2, 5, 3));
        Assert.True(Math.Abs(Loss(uniform, "balance_loss") - 1.0) < 1e-6);

        // Every token is channel 0: f = (1, 0), P_0 = e¹⁰ / (e¹⁰ + 1); loss = 2 · P_0.
        var skewed = Constant(2, 1, null);
        skewed.call(torch.tensor(new float[] { 1, 0, 1, 0, 1, 0 }).reshape(1, 3, 2));
        Assert.True(Math.Abs(Loss(skewed, "balance_loss") - 2 * Math.Exp(10) / (Math.Exp(10) + 1)) < 1e-5);
    }

    [Theory]
    [InlineData(1L, null)]
    [InlineData(2L, null)]
    [InlineData(2L, 1.0)]
    public void Moe_equals_the_per_token_mixture(long topK, double? capacityFactor)
    {
        using var scope = torch.NewDisposeScope();
        var m = new Std.Moe(new Std.Moe.Options(6) { NumExperts = 4, TopK = topK, Hidden = 5, Act = () => Builtin.ReLU(), CapacityFactor = capacityFactor });
        Redraw(m, 7);
        m.eval();
        torch.manual_seed(2);
        var x = torch.randn(2, 5, 6);
        var y = m.call(x);
        var t = x.reshape(10, 6);
        var probs = F.softmax(F.linear(t, Weight(m.gate)), -1);
        var (top, idx) = probs.topk((int)topK, -1);
        var weights = top / top.sum(-1, keepdim: true);
        long capacity = capacityFactor is double cf ? Math.Min((long)Math.Ceiling(cf * 10 * topK / 4), 10) : 10;
        var load = new long[4];
        var expected = torch.zeros(10, 6);
        long dropped = 0;
        for (int k = 0; k < topK; k++)          // first choices of all tokens, then second ones
            for (int i = 0; i < 10; i++)
            {
                long e = idx[i, k].item<long>();
                if (load[e]++ >= capacity) { dropped++; continue; }
                var h = F.relu(t[i].matmul(m.w1[e]) + m.b1[e]);
                expected[i] += weights[i, k] * (h.matmul(m.w2[e]) + m.b2[e]);
            }
        double err = (expected.reshape(2, 5, 6) - y).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max abs error {err}");
        Assert.Equal(dropped, (long)Stat(m, "dropped_tokens"));
        if (capacityFactor is not null) Assert.True(dropped > 0, "the case should drop something");
    }

    [Fact]
    public void A_model_reports_its_losses_by_module_and_trains_on_them()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeStack(new MoeStack.Options());
        Redraw(model, 3);
        model.train();
        torch.manual_seed(4);
        var x = torch.randn(3, 7, 8);
        var y = model.call(x);
        var losses = MixAux.Losses(model);
        Assert.Equal(new[] { "blocks.0.mlp.balance_loss", "blocks.1.mlp.balance_loss" }, losses.Select(l => l.Key).ToArray());
        var stats = MixAux.Stats(model);
        Assert.Equal(new[] { "blocks.0.mlp.dropped_tokens", "blocks.1.mlp.dropped_tokens" }, stats.Select(s => s.Key).ToArray());
        Assert.All(stats, s => Assert.False(s.Value.requires_grad));
        var total = MixAux.TotalLoss(model, name => name == "balance_loss" ? 0.01 : 1.0)!;
        Assert.True(Math.Abs(total.item<float>() - 0.01 * (losses[0].Value.item<float>() + losses[1].Value.item<float>())) < 1e-6);
        (y.square().mean() + total).backward();
        var gate = model.named_parameters().Single(p => p.name == "blocks.0.mlp.gate.weight").parameter;
        Assert.True(gate.grad is not null && gate.grad.abs().sum().item<float>() > 0);
        MixAux.Clear(model);
        Assert.Empty(MixAux.Losses(model));
        Assert.Null(MixAux.TotalLoss(model));
    }

    [Fact]
    public void Generated_block_ffn_matches_BlockFFN()
    {
        const string name = "block_ffn";
        var info = Catalog3ParityTests.Info(name, "block_ffn");
        var c = info.GetProperty("config");
        Assert.Equal("rms", c.GetProperty("norm_after_router").GetString());
        Assert.Equal("relu", c.GetProperty("router_activate_fn").GetString());
        Assert.Equal("silu", c.GetProperty("ffn_activate_fn").GetString());
        Assert.Equal("null", c.GetProperty("gate_policy").GetString());
        Assert.False(c.GetProperty("expert_gated").GetBoolean());
        Assert.Equal(100.0, info.GetProperty("sigmoid_steep").GetDouble());
        Assert.Equal(1.0, info.GetProperty("transfer_lambda").GetDouble());
        // The library class itself (its own keys, unprefixed): MixAux reads the values its forward records. (An alias
        // model `= block_ffn(...)` registers the aliased module's children, not the module, so MixAux would not reach it.)
        using var model = new Std.BlockFfn(new Std.BlockFfn.Options(c.GetProperty("dim_model").GetInt64())
        {
            NumExperts = c.GetProperty("num_expert").GetInt64(),
            DimExpert = c.GetProperty("dim_expert").GetInt64(),
            Eps = c.GetProperty("eps").GetDouble(),
            ChunkSize = info.GetProperty("chunk_regularization_length").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated block_ffn output");
        foreach (var loss in new[] { "balance_loss", "router_entropy", "transfer_loss", "chunk_loss", "l1_loss" })
        {
            using var expected = HuggingFaceParityTests.Read(name, loss);
            double got = Loss(model, loss) * (loss == "l1_loss" ? info.GetProperty("l1_scale").GetDouble() : 1.0);
            double want = expected.item<float>();
            Assert.True(Math.Abs(got - want) <= 1e-4 * Math.Max(1e-3, Math.Abs(want)), $"{loss}: {got} vs official {want}");
        }
    }
}
