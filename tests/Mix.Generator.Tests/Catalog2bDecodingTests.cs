using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The library's LMU cell (<c>lmu_fft_cell</c>) decodes through the inference cache: it declares its state (the last
/// seq_len − 1 inputs u of the memory's convolution), so a <see cref="CausalModel"/> gives every layer a
/// <see cref="StateCacheSlot"/>. On the test LM <c>lmu_lm</c> (two layers, seq_len 8 shorter than the 12-token
/// sequences, so the window's truncation is crossed): prefill + token-by-token steps and random chunks equal the full
/// forward (fp32, ≤ 1e-5 relative, batch 2), a reset cache is reused, and left-padded rows of a batch of three
/// different lengths decode like each row alone.
/// </summary>
public class Catalog2bDecodingTests
{
    const long Vocab = 29;
    const double Tolerance = 1e-5;

    static LmuLm Model()
    {
        torch.manual_seed(5);
        var m = new LmuLm(new LmuLm.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, MemorySize = 12, SeqLen = 8 });
        // Norm weights and biases start constant: re-draw them so that no part of the model is trivially equal.
        using (torch.no_grad())
            foreach (var (key, p) in m.named_parameters())
                if (p.dim() == 1) p.add_(torch.randn(p.shape) * 0.2);
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Fact]
    public void Prefill_then_steps_and_random_chunks_equal_the_full_forward()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model();
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

    [Fact]
    public void Left_padded_rows_decode_like_each_row_alone()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model();
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
    public void The_state_is_the_input_window()
    {
        using var _ = torch.no_grad();
        var model = Model();
        using var cache = new CausalModel(model, Vocab).CreateCache(2);
        var slot = Assert.IsType<StateCacheSlot>(cache.Slots[0]);
        Assert.Equal(new long[] { 2, 7 }, slot.Get("u_history").shape); // seq_len − 1 inputs u per row
    }
}
