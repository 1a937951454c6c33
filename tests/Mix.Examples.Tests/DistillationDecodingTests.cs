using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Examples.Distillation.Models;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Examples.Tests;

/// <summary>
/// Both students decode through the inference cache: hedgehog_attention declares its scan state and linear_mamba its
/// conv and scan states, so <see cref="CausalModel"/> gives each layer a <see cref="StateCacheSlot"/>. Prefill +
/// token-by-token steps and random chunks equal the full forward (fp32, ≤ 1e-5 relative, batch 2), a reset cache is
/// reused, and left-padded rows of a batch decode like each row alone; every weight is perturbed so that no part
/// (feature maps, conv taps, decay, skip) is trivially the identity.
/// </summary>
public class DistillationDecodingTests
{
    const long Vocab = 29;
    const double Tolerance = 1e-5;

    public static TheoryData<string> Students => new() { "char_hedgehog", "char_linear_mamba" };

    static nn.Module<Tensor, Tensor> Model(string name)
    {
        torch.manual_seed(5);
        nn.Module<Tensor, Tensor> m = name == "char_hedgehog"
            ? new CharHedgehog(new CharHedgehog.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, HeadDim = 4 })
            : new CharLinearMamba(new CharLinearMamba.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, HeadDim = 4 });
        using (torch.no_grad())
            foreach (var (key, p) in m.named_parameters())
                p.add_(torch.randn(p.shape) * (key.EndsWith("A_log") ? 1.0 : 0.2));
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Theory]
    [MemberData(nameof(Students))]
    public void Prefill_then_steps_and_random_chunks_equal_the_full_forward(string name)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name);
        var lm = new CausalModel(model, Vocab);
        Assert.Equal(2, lm.CachedLayers);
        var ids = torch.randint(0, Vocab, new long[] { 2, 12 });
        var full = model.call(ids);

        using var cache = lm.CreateCache(2);
        Assert.All(cache.Slots, s => Assert.IsType<StateCacheSlot>(s));
        var parts = new List<Tensor> { lm.Forward(ids.narrow(1, 0, 7), cache) };
        for (int t = 7; t < 12; t++) parts.Add(lm.Forward(ids.narrow(1, t, 1), cache));
        Assert.True(RelErr(torch.cat(parts, 1), full) < Tolerance, $"{name}: prefill + steps");

        cache.Reset();
        var rnd = new Random(3);
        var chunks = new List<Tensor>();
        for (int t = 0; t < 12;)
        {
            int n = Math.Min(12 - t, 1 + rnd.Next(5));
            chunks.Add(lm.Forward(ids.narrow(1, t, n), cache));
            t += n;
        }
        Assert.True(RelErr(torch.cat(chunks, 1), full) < Tolerance, $"{name}: random chunks after a reset");
    }

    [Theory]
    [MemberData(nameof(Students))]
    public void Left_padded_rows_decode_like_each_row_alone(string name)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name);
        var lm = new CausalModel(model, Vocab);
        torch.manual_seed(17);
        var lengths = new long[] { 4, 10, 7 };
        var rows = lengths.Select(l => torch.randint(1, Vocab, new[] { l })).ToArray();
        var ids = torch.zeros(3, 10, dtype: ScalarType.Int64);
        var mask = torch.zeros(3, 10, dtype: ScalarType.Int64);
        for (int r = 0; r < 3; r++)
        {
            ids[r].narrow(0, 10 - lengths[r], lengths[r]).copy_(rows[r]);
            mask[r].narrow(0, 10 - lengths[r], lengths[r]).fill_(1);
        }
        var next = torch.randint(1, Vocab, new long[] { 3, 1 });

        using var cache = lm.CreateCache(3);
        var outs = new List<Tensor>();
        for (int t = 0; t < 10; t += 4)
        {
            long n = Math.Min(4, 10 - t);
            outs.Add(lm.Forward(ids.narrow(1, t, n), cache, mask.narrow(1, t, n)));
        }
        outs.Add(lm.Forward(next, cache));
        var logits = torch.cat(outs, 1);
        for (int r = 0; r < 3; r++)
        {
            var alone = model.call(torch.cat(new[] { rows[r], next[r] }).unsqueeze(0))[0];
            long len = lengths[r];
            Assert.True(RelErr(logits[r].narrow(0, 10 - len, len + 1), alone) < Tolerance, $"{name}, row {r}");
        }
    }

    [Fact]
    public void The_states_have_the_declared_layouts()
    {
        using var _ = torch.no_grad();
        using var c1 = new CausalModel(Model("char_hedgehog"), Vocab).CreateCache(2);
        using var c2 = new CausalModel(Model("char_linear_mamba"), Vocab).CreateCache(2);
        // Hedgehog: [b, heads, head_dim + 1 (values and the normaliser's 1), 2 · head_dim features].
        Assert.Equal(new long[] { 2, 4, 5, 8 }, Assert.IsType<StateCacheSlot>(c1.Slots[0]).Get("recurrent_state").shape);
        // linear_mamba: the conv keeps d_conv − 1 = 3 inputs of x, B, C (3 · 16 channels); the scan state as Hedgehog's.
        var s2 = Assert.IsType<StateCacheSlot>(c2.Slots[0]);
        Assert.Equal(new long[] { 2, 48, 3 }, s2.Get("conv_state").shape);
        Assert.Equal(new long[] { 2, 4, 5, 8 }, s2.Get("ssm_state").shape);
    }
}
