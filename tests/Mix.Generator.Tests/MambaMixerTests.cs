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
/// MambaMixer (no official code; models/mambamixer.mix, mix/std/bimamba.mix, cross_scan.mix, selective_ssm.mix) held to
/// the paper's equations on cases small enough to compute in the test: the weighted averaging of earlier outputs with
/// chosen scalars, the bidirectional selective channel mixer on one channel of three steps (each recurrence written out
/// as scalars), the four scan orders of ViM2's token mixer, and TSM2's causal token path through the inference cache.
/// </summary>
public class MambaMixerTests
{
    static void Set(nn.Module m, string key, params float[] values)
    {
        var p = m.state_dict()[key];
        using var _ = torch.no_grad();
        p.copy_(torch.tensor(values).reshape(p.shape));
    }

    static double Silu(double v) => v / (1 + Math.Exp(-v));
    static double Softplus(double v) => Math.Log(1 + Math.Exp(v));

    [Fact]
    public void Weighted_averaging_follows_the_papers_sums()
    {
        using var _ = torch.no_grad();
        using var model = new MmxStage();
        // Zero the mixers' output projections: every token unit is y = x + 0 and every channel unit too, so the stage
        // computes only the averages.
        foreach (var (key, p) in model.named_parameters())
            if (key.Contains("out_proj")) p.zero_();
        // Layer 0: x_T = a0·x + b0·x; y_T1 = x_T; x_C = t0·x + t1·y_T1 + g0·x; y_C1 = x_C.
        Set(model, "stage.layers.0.alpha", 0.5f);
        Set(model, "stage.layers.0.beta", 2f);
        Set(model, "stage.layers.0.theta", 1f, -1f);
        Set(model, "stage.layers.0.gamma", 3f);
        // Layer 1: x_T = a0·x + a1·y_T1 + b0·x + b1·y_C1; y_T2 = x_T; x_C = t0·x + t1·y_T1 + t2·y_T2 + g0·x + g1·y_C1.
        Set(model, "stage.layers.1.alpha", 1f, 0.25f);
        Set(model, "stage.layers.1.beta", -1f, 0.5f);
        Set(model, "stage.layers.1.theta", 0f, 1f, 2f);
        Set(model, "stage.layers.1.gamma", 1f, -0.5f);
        // By hand, per element x: y_T1 = 2.5x; y_C1 = x − 2.5x + 3x = 1.5x;
        // y_T2 = x + 0.625x − x + 0.75x = 1.375x; y_C2 = 0 + 2.5x + 2.75x + x − 0.75x = 5.5x.
        var x = torch.tensor(new float[] { 1, -2, 3, 0.5f, 4, -1 }).reshape(1, 3, 2);
        var y = model.call(x);
        Assert.True(torch.allclose(y, x * 5.5, rtol: 1e-6, atol: 1e-6), string.Join(", ", y.data<float>().ToArray()));
    }

    [Fact]
    public void Initial_weights_make_a_plain_residual_stack()
    {
        using var model = new MmxStage();
        var p = model.state_dict();
        Assert.Equal(new float[] { 0 }, p["stage.layers.0.alpha"].data<float>().ToArray());
        Assert.Equal(new float[] { 1 }, p["stage.layers.0.beta"].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 1 }, p["stage.layers.0.theta"].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0 }, p["stage.layers.1.alpha"].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 1 }, p["stage.layers.1.beta"].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0, 1 }, p["stage.layers.1.theta"].data<float>().ToArray());
        Assert.Equal(new float[] { 0, 0 }, p["stage.layers.1.gamma"].data<float>().ToArray());
    }

    [Fact]
    public void Bidirectional_channel_mixer_is_two_S6_recurrences_gated()
    {
        using var _ = torch.no_grad();
        using var m = new MmxBimamba();
        // h = 0.8·x, z = 1.5·x; forward conv taps [0.3 (previous), 1 (current)] + 0.1, backward [−0.5, 2] + 0;
        // forward S6: dt = softplus(0.7·(0.4·u) − 0.2), B = 0.9·u, C = −0.6·u, A = −exp(0.2), D = 0.3;
        // backward S6: dt = softplus(−0.3·(1.1·u) + 0.1), B = −0.5·u, C = 1.2·u, A = −exp(−0.4), D = −0.2; out = 1.7.
        Set(m, "in_proj.weight", 0.8f, 1.5f);
        Set(m, "conv1d_f.weight", 0.3f, 1f); Set(m, "conv1d_f.bias", 0.1f);
        Set(m, "conv1d_b.weight", -0.5f, 2f); Set(m, "conv1d_b.bias", 0f);
        Set(m, "ssm_f.x_proj.weight", 0.4f, 0.9f, -0.6f); Set(m, "ssm_f.dt_proj.weight", 0.7f); Set(m, "ssm_f.dt_proj.bias", -0.2f);
        Set(m, "ssm_f.A_log", 0.2f); Set(m, "ssm_f.D", 0.3f);
        Set(m, "ssm_b.x_proj.weight", 1.1f, -0.5f, 1.2f); Set(m, "ssm_b.dt_proj.weight", -0.3f); Set(m, "ssm_b.dt_proj.bias", 0.1f);
        Set(m, "ssm_b.A_log", -0.4f); Set(m, "ssm_b.D", -0.2f);
        Set(m, "out_proj.weight", 1.7f);
        double[] x = { 0.5, -1.2, 2.0 };
        double[] S6(double[] seq, double[] conv, double convBias, double[] xp, double dtW, double dtB, double aLog, double d)
        {
            var y = new double[seq.Length];
            double state = 0, prev = 0;
            for (int t = 0; t < seq.Length; t++)
            {
                double u = Silu(conv[0] * prev + conv[1] * seq[t] + convBias);
                prev = seq[t];
                double dt = Softplus(dtW * (xp[0] * u) + dtB), b = xp[1] * u, c = xp[2] * u;
                state = Math.Exp(-dt * Math.Exp(aLog)) * state + dt * b * u;
                y[t] = c * state + d * u;
            }
            return y;
        }
        var h = x.Select(v => 0.8 * v).ToArray();
        var yf = S6(h, new[] { 0.3, 1.0 }, 0.1, new[] { 0.4, 0.9, -0.6 }, 0.7, -0.2, 0.2, 0.3);
        var yb = S6(h.Reverse().ToArray(), new[] { -0.5, 2.0 }, 0.0, new[] { 1.1, -0.5, 1.2 }, -0.3, 0.1, -0.4, -0.2).Reverse().ToArray();
        var expected = x.Select((v, t) => 1.7 * (yf[t] + yb[t]) * Silu(1.5 * v)).Select(v => (float)v).ToArray();
        var got = m.call(torch.tensor(x.Select(v => (float)v).ToArray()).reshape(1, 3, 1)).data<float>().ToArray();
        for (int t = 0; t < 3; t++) Assert.True(Math.Abs(got[t] - expected[t]) < 1e-5, $"t={t}: {got[t]} vs {expected[t]}");
    }

    [Fact]
    public void Cross_scan_reads_rows_and_columns_both_ways()
    {
        using var _ = torch.no_grad();
        using var m = new MmxCrossScan();
        torch.manual_seed(11);
        foreach (var (key, p) in m.named_parameters()) p.copy_(torch.randn(p.shape) * 0.5);
        // With a symmetric 3 × 3 conv kernel and the four scans' weights made equal, transposing the grid swaps the row
        // scans with the column scans, so the output is the transposed output; with distinct scan weights it is not
        // (the four orders are really different).
        var sd = m.state_dict();
        sd["conv2d.weight"].copy_((sd["conv2d.weight"] + sd["conv2d.weight"].transpose(2, 3)) / 2);
        var x = torch.randn(2, 9, 2);
        Tensor Transposed(Tensor t) => t.reshape(2, 3, 3, 2).transpose(1, 2).reshape(2, 9, 2);
        var distinct = (m.call(Transposed(x)) - Transposed(m.call(x))).abs().max().item<float>();
        Assert.True(distinct > 1e-3, $"distinct scans: {distinct}");
        foreach (var k in sd.Keys.Where(k => k.StartsWith("scans.1.") || k.StartsWith("scans.2.") || k.StartsWith("scans.3.")))
            sd[k].copy_(sd["scans.0." + k.Substring("scans.N.".Length)]);
        var err = (m.call(Transposed(x)) - Transposed(m.call(x))).abs().max().item<float>();
        Assert.True(err < 1e-5, $"equal scans: {err}");
    }

    static Tsm2CausalLm Lm()
    {
        torch.manual_seed(5);
        var m = new Tsm2CausalLm();
        using (torch.no_grad())
            foreach (var (key, p) in m.named_parameters())
                if (p.dim() == 1 && !key.EndsWith("A_log")) p.add_(torch.randn(p.shape) * 0.2);
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Fact]
    public void Tsm2_token_path_decodes_like_the_full_forward()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Lm();
        var lm = new CausalModel(model, 29);
        Assert.Equal(2, lm.CachedLayers);
        var ids = torch.randint(0, 29, new long[] { 2, 12 });
        var full = model.call(ids);
        using var cache = lm.CreateCache(2);
        Assert.All(cache.Slots, s => Assert.IsType<StateCacheSlot>(s));
        var parts = new List<Tensor> { lm.Forward(ids.narrow(1, 0, 7), cache) };
        for (int t = 7; t < 12; t++) parts.Add(lm.Forward(ids.narrow(1, t, 1), cache));
        Assert.True(RelErr(torch.cat(parts, 1), full) < 1e-5, "prefill + steps");
        cache.Reset();
        var chunks = new List<Tensor>();
        foreach (var n in new[] { 3, 1, 5, 2, 1 }) chunks.Add(lm.Forward(ids.narrow(1, chunks.Sum(c => (int)c.shape[1]), n), cache));
        Assert.True(RelErr(torch.cat(chunks, 1), full) < 1e-5, "chunks after a reset");
    }

    [Fact]
    public void Tsm2_token_path_decodes_left_padded_rows_like_each_row_alone()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Lm();
        var lm = new CausalModel(model, 29);
        var a = torch.randint(1, 29, new long[] { 1, 9 });
        var b = torch.randint(1, 29, new long[] { 1, 5 });
        // Row 1 is b left-padded to 9 tokens; after the prompt both rows take the same 3 steps.
        var batch = torch.cat(new[] { a, torch.cat(new[] { torch.zeros(1, 4, dtype: ScalarType.Int64), b }, 1) }, 0);
        var mask = torch.cat(new[] { torch.ones(1, 9, dtype: ScalarType.Int64),
            torch.cat(new[] { torch.zeros(1, 4, dtype: ScalarType.Int64), torch.ones(1, 5, dtype: ScalarType.Int64) }, 1) }, 0);
        var steps = torch.randint(1, 29, new long[] { 2, 3 });
        using var cache = lm.CreateCache(2);
        var outs = new List<Tensor> { lm.Forward(batch, cache, mask).narrow(1, 8, 1) };
        for (int t = 0; t < 3; t++) outs.Add(lm.Forward(steps.narrow(1, t, 1), cache));
        var batched = torch.cat(outs, 1);
        for (int row = 0; row < 2; row++)
        {
            var alone = torch.cat(new[] { row == 0 ? a : b, steps.narrow(0, row, 1) }, 1);
            var reference = model.call(alone);
            var expected = reference.narrow(1, reference.shape[1] - 4, 4);
            Assert.True(RelErr(batched.narrow(0, row, 1), expected) < 1e-5, $"row {row}");
        }
    }

    [Fact]
    public void Zoo_tsm2_and_a_small_vim2_run()
    {
        using var _ = torch.no_grad();
        using var tsm2 = new Tsm2(new Tsm2.Options { SeqLen = 16, PredLen = 8, Channels = 3 });
        tsm2.eval();
        var y = tsm2.call(torch.randn(2, 16, 3));
        Assert.Equal(new long[] { 2, 8, 3 }, y.shape);
        Assert.False(y.isnan().any().item<bool>());
        using var vim2 = new Vim2T(new Vim2T.Options { NumClasses = 5, ImgSize = 32, Dims = new long[] { 8, 16 }, Depths = new long[] { 1, 2 } });
        vim2.eval();
        var logits = vim2.call(torch.randn(2, 3, 32, 32));
        Assert.Equal(new long[] { 2, 5 }, logits.shape);
        Assert.False(logits.isnan().any().item<bool>());
    }
}
