using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The library's <c>mamba2</c>, <c>gla</c> and <c>gated_rmsnorm</c> against references written here from the official
/// equations (mamba_ssm <c>Mamba2.forward</c> with <c>RMSNormGated</c>; fla <c>GatedLinearAttention.forward</c>) on the
/// runtime's sequential scans, for the options the parity fixtures do not cover (mamba_ssm's per-group norm,
/// <c>d_ssm</c> &lt; expand·dim with its gated MLP part, <c>D_has_hdim</c>, no conv bias; GLA key/value sharing and
/// <c>clamp_min</c>), and the initial values both Mamba-2 inits promise.
/// </summary>
public class Catalog2LibraryTests
{
    const double Tolerance = 1e-5;

    /// <summary>Re-draws every parameter (norm weights around 1, D around 1, small dt) so nothing passes on constants.</summary>
    static void Redraw(nn.Module module, long seed)
    {
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            var r = torch.randn(p.shape, generator: g);
            if (name.EndsWith("A_log")) p.copy_(torch.log(torch.rand(p.shape, generator: g) * 15 + 1));
            else if (name == "D" || name.EndsWith("weight") && name.Contains("norm")) p.copy_(r * 0.3 + 1);
            else if (name == "dt_bias") p.copy_(r * 0.5 - 3);
            else if (p.dim() >= 2) p.copy_(r / Math.Sqrt(p.numel() / p.shape[0]));
            else p.copy_(r * 0.3);
        }
    }

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double scale = Math.Max(1.0, expected.abs().max().item<float>());
        double err = (expected - actual).abs().max().item<float>();
        Assert.True(err <= Tolerance * scale, $"{what}: max abs error {err:G4} > {Tolerance * scale:G4}");
    }

    static Tensor GroupRms(Tensor h, long groups, double eps, Tensor weight)
    {
        var shape = h.shape;
        var g = h.reshape(shape[0], shape[1], groups, shape[2] / groups);
        return (g * torch.rsqrt(g.pow(2).mean(new long[] { -1 }, keepdim: true) + eps)).reshape(shape) * weight;
    }

    [Theory]
    [InlineData(1L, false)]
    [InlineData(4L, false)]
    [InlineData(2L, true)]
    public void Gated_rmsnorm_normalizes_each_group_and_gates_before_or_after(long groups, bool normBeforeGate)
    {
        using var scope = torch.NewDisposeScope();
        using var norm = new Std.GatedRmsnorm(new Std.GatedRmsnorm.Options(12) { GroupSize = 12 / groups, Eps = 1e-5, NormBeforeGate = normBeforeGate });
        Redraw(norm, 3);
        torch.manual_seed(5);
        var x = torch.randn(2, 5, 12);
        var z = torch.randn(2, 5, 12);
        var expected = normBeforeGate ? GroupRms(x, groups, 1e-5, norm.weight) * F.silu(z) : GroupRms(x * F.silu(z), groups, 1e-5, norm.weight);
        AssertClose(expected, norm.call(x, z), "gated_rmsnorm");
    }

    static Tensor Linear(Dictionary<string, Tensor> sd, string name, Tensor x) =>
        F.linear(x, sd[name + ".weight"], sd.TryGetValue(name + ".bias", out var b) ? b : null);

    /// <summary>mamba_ssm's Mamba2.forward (no mem-eff path): in_proj, conv + SiLU, SSD, RMSNormGated, MLP part, out_proj.</summary>
    static Tensor Mamba2Reference(Dictionary<string, Tensor> sd, Tensor x, long dim, long dState, long headdim, long ssm,
        long ngroups, bool dHasHdim, bool normBeforeGate, long normGroups)
    {
        long b = x.shape[0], L = x.shape[1], inner = 2 * dim, mlp = inner - ssm, heads = ssm / headdim;
        long convDim = ssm + 2 * ngroups * dState;
        var parts = Linear(sd, "in_proj", x).split(new[] { mlp, mlp, ssm, convDim, heads }, -1);
        var w = sd["conv1d.weight"];
        var xbc = F.conv1d(parts[3].transpose(1, 2), w, sd.TryGetValue("conv1d.bias", out var cb) ? cb : null,
            padding: w.shape[2] - 1, groups: convDim).narrow(2, 0, L);
        var split = F.silu(xbc).transpose(1, 2).split(new[] { ssm, ngroups * dState, ngroups * dState }, -1);
        var D = dHasHdim ? sd["D"].reshape(heads, headdim) : sd["D"];
        var (y, _) = SsdScan.SequentialScan(split[0].reshape(b, L, heads, headdim), parts[4], -sd["A_log"].exp(),
            split[1].reshape(b, L, ngroups, dState), split[2].reshape(b, L, ngroups, dState), D: D, dtBias: sd["dt_bias"], dtSoftplus: true);
        var z = parts[2];
        var flat = y.reshape(b, L, ssm);
        var normed = normBeforeGate ? GroupRms(flat, normGroups, 1e-5, sd["norm.weight"]) * F.silu(z)
            : GroupRms(flat * F.silu(z), normGroups, 1e-5, sd["norm.weight"]);
        if (mlp > 0) normed = torch.cat(new[] { F.silu(parts[0]) * parts[1], normed }, -1);
        return Linear(sd, "out_proj", normed);
    }

    [Theory]
    //          dim dState headdim  dSsm   ngroups hdim   beforeGate convBias bias  chunk  L
    [InlineData(16L, 4L, 8L, null, 1L, false, false, true, false, 3L, 7L)]
    [InlineData(16L, 4L, 4L, null, 2L, false, false, true, true, 4L, 9L)]     // mamba_ssm's per-group norm
    [InlineData(16L, 8L, 4L, 16L, 2L, true, false, false, false, 5L, 6L)]     // d_ssm < expand·dim: the gated MLP part
    [InlineData(12L, 4L, 6L, 12L, 1L, false, true, true, false, 64L, 5L)]     // norm before the gate
    public void Mamba2_matches_the_mamba_ssm_equations(long dim, long dState, long headdim, long? dSsm, long ngroups,
        bool dHasHdim, bool normBeforeGate, bool convBias, bool bias, long chunk, long L)
    {
        using var scope = torch.NewDisposeScope();
        using var mixer = new Std.Mamba2(new Std.Mamba2.Options(dim)
        {
            DState = dState, Headdim = headdim, DSsm = dSsm, Ngroups = ngroups, DHasHdim = dHasHdim,
            NormBeforeGate = normBeforeGate, ConvBias = convBias, Bias = bias, ChunkSize = chunk,
        });
        Redraw(mixer, 11);
        mixer.eval();
        var sd = mixer.state_dict();
        Assert.Equal(convBias, sd.ContainsKey("conv1d.bias"));
        Assert.Equal(bias, sd.ContainsKey("in_proj.bias") && sd.ContainsKey("out_proj.bias"));
        long ssm = dSsm ?? 2 * dim;
        Assert.Equal(new[] { dHasHdim ? ssm : ssm / headdim }, sd["D"].shape);
        Assert.Equal(new[] { 4 * dim + 2 * ngroups * dState + ssm / headdim, dim }, sd["in_proj.weight"].shape);
        torch.manual_seed(2);
        var x = torch.randn(2, L, dim);
        using var _ = torch.no_grad();
        var expected = Mamba2Reference(sd, x, dim, dState, headdim, ssm, ngroups, dHasHdim, normBeforeGate, ngroups);
        AssertClose(expected, mixer.call(x), "mamba2");
    }

    [Fact]
    public void Mamba2_inits_are_mamba_ssm_uniform_or_hugging_face_arange()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        using var uniform = new Std.Mamba2(new Std.Mamba2.Options(64) { DState = 8, Headdim = 4 });   // 32 heads
        using var arange = new Std.Mamba2(new Std.Mamba2.Options(64) { DState = 8, Headdim = 4, AInitArange = true });
        var a = uniform.A_log.exp();
        Assert.Equal(new long[] { 32 }, a.shape);
        Assert.True(a.min().item<float>() >= 1f && a.max().item<float>() <= 16f);
        Assert.True(a.std().item<float>() > 1f);                      // spread over [1, 16], not a constant
        AssertClose(torch.arange(1, 33, dtype: ScalarType.Float32).log(), arange.A_log, "HF A_log");
        Assert.True(uniform.D.eq(1).all().item<bool>());
        var dt = F.softplus(uniform.dt_bias);                          // log-uniform in [dt_min, dt_max], floored
        Assert.True(dt.min().item<float>() >= 1e-3f * 0.999f && dt.max().item<float>() <= 0.1f * 1.001f);
        Assert.True(((Tensor)uniform.state_dict()["norm.weight"]).eq(1).all().item<bool>());
    }

    /// <summary>fla's GatedLinearAttention.forward: projections, kv heads repeated, logsigmoid gate, GLA, per-head gated RMSNorm.</summary>
    static Tensor GlaReference(Dictionary<string, Tensor> sd, Tensor x, long heads, long kvHeads, double? clampMin)
    {
        long b = x.shape[0], L = x.shape[1], groups = heads / kvHeads;
        var q = Linear(sd, "q_proj", x);
        long hk = q.shape[2] / heads;
        var v0 = Linear(sd, "v_proj", x);
        long hv = v0.shape[2] / kvHeads;
        Tensor Heads(Tensor t, long d) => t.reshape(b, L, kvHeads, d).repeat_interleave(groups, 2);
        var k = Heads(Linear(sd, "k_proj", x), hk);
        var v = Heads(v0, hv);
        var gk = Heads(F.logsigmoid(Linear(sd, "gk_proj.1", Linear(sd, "gk_proj.0", x))) / 16, hk);
        if (clampMin is double m) gk = gk.clamp_min(m);
        var (o, _) = GlaScan.SequentialScan(q.reshape(b, L, heads, hk), k, v, gk);
        var gate = Linear(sd, "g_proj", x).reshape(b, L, heads, hv);
        var normed = o * torch.rsqrt(o.pow(2).mean(new long[] { -1 }, keepdim: true) + 1e-5) * sd["g_norm_swish_gate.weight"] * F.silu(gate);
        return Linear(sd, "o_proj", normed.reshape(b, L, heads * hv));
    }

    [Theory]
    [InlineData(32L, 4L, null, null, 9L)]
    [InlineData(32L, 4L, 2L, null, 70L)]        // keys and values shared by two heads each; two chunks of 64
    [InlineData(24L, 2L, 1L, -0.05, 5L)]        // one key/value head; the gate clamped from below
    public void Gla_matches_the_fla_equations(long dim, long heads, long? kvHeads, double? clampMin, long L)
    {
        using var scope = torch.NewDisposeScope();
        using var mixer = new Std.Gla(new Std.Gla.Options(dim) { NumHeads = heads, NumKvHeads = kvHeads, ClampMin = clampMin, GateLowRankDim = 8 });
        Redraw(mixer, 21);
        mixer.eval();
        var sd = mixer.state_dict();
        long kv = kvHeads ?? heads;
        Assert.Equal(new[] { dim / 2 / (heads / kv), dim }, sd["k_proj.weight"].shape);
        Assert.Equal(new[] { dim / 2 / (heads / kv) }, sd["gk_proj.1.bias"].shape);
        Assert.Equal(new[] { dim / heads }, sd["g_norm_swish_gate.weight"].shape);
        torch.manual_seed(4);
        var x = torch.randn(2, L, dim);
        using var _ = torch.no_grad();
        AssertClose(GlaReference(sd, x, heads, kv, clampMin), mixer.call(x), "gla");
    }
    /// <summary>goombalab/hydra's Hydra.forward, with the forward and flipped sequences scanned one after the other.</summary>
    static Tensor HydraReference(Dictionary<string, Tensor> sd, Tensor x, long dState, long headdim, long ngroups)
    {
        long b = x.shape[0], L = x.shape[1], heads = sd["D"].shape[0], inner = heads * headdim, gn = ngroups * dState;
        var parts = Linear(sd, "in_proj", x).split(new[] { inner, inner + 4 * gn, 2 * heads }, -1);
        var z = parts[0];
        var dt = parts[2];
        dt = torch.cat(new[] { dt.narrow(2, 0, heads), dt.narrow(2, heads, heads).flip(1) }, 0);
        dt = F.softplus(dt + sd["dt_bias"]);
        var w = sd["conv1d.weight"];
        var xbc = F.silu(F.conv1d(parts[1].transpose(1, 2), w, sd["conv1d.bias"], padding: w.shape[2] / 2, groups: inner + 4 * gn)).transpose(1, 2);
        var xs = xbc.narrow(2, 0, inner);
        var bc = xbc.narrow(2, inner, 4 * gn);
        var both = torch.cat(new[] { xs, xs.flip(1) }, 0);
        var bcs = torch.cat(new[] { bc.narrow(2, 0, 2 * gn), bc.narrow(2, 2 * gn, 2 * gn).flip(1) }, 0);
        var (y, _) = SsdScan.SequentialScan(both.reshape(2 * b, L, heads, headdim), dt, -sd["A_log"].exp(),
            bcs.narrow(2, 0, gn).reshape(2 * b, L, ngroups, dState), bcs.narrow(2, gn, gn).reshape(2 * b, L, ngroups, dState));
        y = y.reshape(2 * b, L, inner).roll(1, 1);
        y[.., 0, ..] = 0.0f;
        var skip = xs * (F.linear(xs, sd["fc_D.weight"]) + sd["D"]).repeat_interleave(headdim, 2);
        var sum = y.narrow(0, 0, b) + y.narrow(0, b, b).flip(1) + skip;
        var normed = sum * torch.rsqrt(sum.pow(2).mean(new long[] { -1 }, keepdim: true) + 1e-5) * sd["norm.weight"] * F.silu(z);
        return Linear(sd, "out_proj", normed);
    }

    [Theory]
    //          dim dState headdim ngroups dConv chunk  L
    [InlineData(16L, 8L, 8L, 1L, 3L, 4L, 7L)]
    [InlineData(16L, 4L, 4L, 2L, 7L, 64L, 9L)]
    [InlineData(12L, 4L, 6L, 1L, 5L, 2L, 1L)]     // one token: both shifted outputs are zero, only the skip remains
    public void Hydra_matches_the_official_equations(long dim, long dState, long headdim, long ngroups, long dConv, long chunk, long L)
    {
        using var scope = torch.NewDisposeScope();
        using var mixer = new Std.Hydra(new Std.Hydra.Options(dim) { DState = dState, Headdim = headdim, Ngroups = ngroups, DConv = dConv, ChunkSize = chunk });
        Assert.True(mixer.A_log.eq(0).all().item<bool>());   // the official init: A = -1
        Redraw(mixer, 31);
        mixer.eval();
        var sd = mixer.state_dict();
        long inner = 2 * dim, heads = inner / headdim;
        Assert.Equal(new[] { 2 * inner + 4 * ngroups * dState + 2 * heads, dim }, sd["in_proj.weight"].shape);
        Assert.Equal(new[] { inner + 4 * ngroups * dState, 1, dConv }, sd["conv1d.weight"].shape);
        Assert.Equal(new[] { heads, inner }, sd["fc_D.weight"].shape);
        torch.manual_seed(6);
        var x = torch.randn(2, L, dim);
        using var _ = torch.no_grad();
        AssertClose(HydraReference(sd, x, dState, headdim, ngroups), mixer.call(x), "hydra");
        // Bidirectional: the last token changes the first token's output.
        var changed = x.clone();
        changed[.., L - 1] = changed[.., L - 1] + 1;
        if (L > 1) Assert.False(mixer.call(changed)[.., 0].allclose(mixer.call(x)[.., 0], rtol: 0, atol: 1e-6));
    }
    [Theory]
    [InlineData(16L, 8L, 5L)]
    [InlineData(12L, 20L, 1L)]     // one series: the pooled core is that series' own
    public void Star_matches_the_official_eval_equations(long dim, long dCore, long series)
    {
        using var scope = torch.NewDisposeScope();
        using var mixer = new Std.Star(new Std.Star.Options(dim, dCore));
        Redraw(mixer, 41);
        mixer.eval();
        var sd = mixer.state_dict();
        torch.manual_seed(8);
        var x = torch.randn(3, series, dim);
        using var _ = torch.no_grad();
        var core = Linear(sd, "gen2", F.gelu(Linear(sd, "gen1", x)));
        var pooled = (core * core.softmax(1)).sum(1, keepdim: true).expand(3, series, dCore);
        var expected = Linear(sd, "gen4", F.gelu(Linear(sd, "gen3", torch.cat(new[] { x, pooled }, -1))));
        AssertClose(expected, mixer.call(x), "star");
        mixer.train();
        AssertClose(expected, mixer.call(x), "star (training pools as eval)");
    }
}
