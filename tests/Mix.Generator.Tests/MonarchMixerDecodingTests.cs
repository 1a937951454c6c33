using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The library's Monarch Mixer (<c>monarch_mixer</c>, causal filter) decodes through the inference cache: it declares
/// its states (the short conv's last two inputs, the last l_max − 1 inputs of the long conv and of the residual long
/// conv), so a <see cref="CausalModel"/> gives every layer a <see cref="StateCacheSlot"/>. On the test LM <c>m2_lm</c>
/// (two layers, l_max 8 shorter than the 12-token sequences, so the filter's window is crossed; with and without the
/// residual long conv): prefill + token-by-token steps and random chunks equal the full forward (fp32, ≤ 1e-5
/// relative, batch 2), a reset cache is reused, and left-padded rows of a batch of three different lengths decode like
/// each row alone.
/// </summary>
public class MonarchMixerDecodingTests
{
    const long Vocab = 29;
    const double Tolerance = 1e-5;

    public static TheoryData<bool> Residual => new() { false, true };

    static M2Lm Model(bool residual)
    {
        torch.manual_seed(5);
        var m = new M2Lm(new M2Lm.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, LMax = 8, ResidualLongConv = residual });
        // Norm weights, the filters' biases and the decay start constant or small: perturb every parameter so that no
        // part (short conv taps, filter MLP, skip bias, residual filter) is trivially the identity or zero.
        using (torch.no_grad())
            foreach (var (key, p) in m.named_parameters())
                p.add_(torch.randn(p.shape) * 0.2);
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Theory]
    [MemberData(nameof(Residual))]
    public void Prefill_then_steps_and_random_chunks_equal_the_full_forward(bool residual)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(residual);
        var lm = new CausalModel(model, Vocab);
        Assert.Equal(2, lm.CachedLayers);
        var ids = torch.randint(0, Vocab, new long[] { 2, 12 });
        var full = model.call(ids);

        using var cache = lm.CreateCache(2);
        Assert.All(cache.Slots, s => Assert.IsType<StateCacheSlot>(s));
        var parts = new List<Tensor> { lm.Forward(ids.narrow(1, 0, 5), cache) };
        for (int t = 5; t < 12; t++) parts.Add(lm.Forward(ids.narrow(1, t, 1), cache));
        Assert.True(RelErr(torch.cat(parts, 1), full) < Tolerance, "prefill + steps");

        cache.Reset();
        var rnd = new Random(3);
        var chunks = new List<Tensor>();
        for (int t = 0; t < 12;)
        {
            int n = Math.Min(12 - t, 1 + rnd.Next(5));
            chunks.Add(lm.Forward(ids.narrow(1, t, n), cache));
            t += n;
        }
        Assert.True(RelErr(torch.cat(chunks, 1), full) < Tolerance, "random chunks after a reset");
    }

    [Theory]
    [MemberData(nameof(Residual))]
    public void Left_padded_rows_decode_like_each_row_alone(bool residual)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(residual);
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
            Assert.True(RelErr(logits[r].narrow(0, 10 - len, len + 1), alone) < Tolerance, $"row {r}");
        }
    }

    [Fact]
    public void The_states_are_the_convolutions_input_windows()
    {
        using var _ = torch.no_grad();
        using var cache = new CausalModel(Model(true), Vocab).CreateCache(2);
        var slot = Assert.IsType<StateCacheSlot>(cache.Slots[0]);
        Assert.Equal(new long[] { 2, 48, 2 }, slot.Get("short_state").shape);    // 3 · d_model channels, kernel 3 − 1
        Assert.Equal(new long[] { 2, 16, 7 }, slot.Get("long_state").shape);     // l_max − 1 inputs of v ⊙ x1
        Assert.Equal(new long[] { 2, 16, 7 }, slot.Get("residual_state").shape); // l_max − 1 inputs u
    }

    [Fact]
    public void Past_l_max_the_filter_has_no_taps()
    {
        // One causal mixer, l_max 8, 12 tokens: the first token reaches the outputs through the short conv (2 tokens
        // on) and the long filter (7 more), so positions 0 … 9 move when it changes and 10, 11 do not.
        using var _ = torch.no_grad();
        torch.manual_seed(9);
        using var m = new Std.MonarchMixer(new Std.MonarchMixer.Options(16) { LMax = 8, HyenaFilterOrder = 8 });
        using (torch.no_grad())
            foreach (var (_, p) in m.named_parameters()) p.add_(torch.randn(p.shape) * 0.2);
        m.eval();
        var x = torch.randn(1, 12, 16);
        var other = x.clone();
        other[0, 0].add_(1.0);
        var moved = (m.call(x) - m.call(other)).abs().amax(new long[] { 0, 2 });
        for (int t = 0; t < 10; t++) Assert.True(moved[t].item<float>() > 1e-4, $"position {t} should see the first token");
        for (int t = 10; t < 12; t++) Assert.True(moved[t].item<float>() < 1e-5, $"position {t}: {moved[t].item<float>():G3} (FFT rounding only)");
    }
}
