using System;
using System.IO;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Text;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Mixers written in .mix (tests/Mix.Generator.Tests/Models/tensor_math.mix), generated and compiled into this project:
/// their state dicts have the front end's keys, parameters are initialized as declared, and every tensor-math
/// built-in computes what the TorchSharp ops compute (float32, tolerance 1e-5 relative unless stated).
/// </summary>
public class TensorMathRuntimeTests
{
    static string ModelText => File.ReadAllText(Path.Combine(Harness.TestDir(), "Models", "tensor_math.mix"));

    static readonly Lazy<MixCompilation> s_oracle = new(() => MixCompilation.Create(new[] { new SourceText("tensor_math.mix", ModelText) }));

    static void AssertKeysMatchFrontEnd(nn.Module model, string name)
    {
        Assert.DoesNotContain(s_oracle.Value.Diagnostics, d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        var root = s_oracle.Value.Find(name)!.Root!;
        var expected = root.AllWeights().Select(w => (w.Key, Shape: string.Join(",", w.Weight.Shape.Select(d => d.AsLong ?? -1)))).OrderBy(k => k.Key, StringComparer.Ordinal);
        var actual = model.state_dict().Select(kv => (kv.Key, Shape: string.Join(",", kv.Value.shape))).OrderBy(k => k.Key, StringComparer.Ordinal);
        Assert.Equal(expected, actual);
        Assert.Equal(root.ParameterCount(), model.parameters().Sum(p => p.numel()));
    }

    static void AssertClose(Tensor expected, Tensor actual, double rtol = 1e-5, double atol = 1e-6)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        var diff = (expected - actual).abs().max().item<float>();
        var scale = expected.abs().max().item<float>();
        Assert.True(diff <= atol + rtol * scale, $"max |diff| = {diff} (scale {scale})");
    }

    [Fact]
    public void Gated_mixer_has_its_keys_inits_and_flags()
    {
        using var model = new TmGated();
        AssertKeysMatchFrontEnd(model, "tm_gated");
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("mixer.A_log", keys);
        Assert.Contains("mixer.decay", keys);                      // persistent buffer
        Assert.DoesNotContain("mixer.causal", keys);               // persistent = false
        var mixer = model.named_children().Single().module;
        // TorchSharp 0.107 lists no non-persistent buffer in named_buffers; the field holds it (forward moves it to the input's device).
        Assert.Equal(new[] { "decay" }, mixer.named_buffers().Select(b => b.name));
        var causal = ((GatedLinearMixer)mixer).causal;
        Assert.Equal(ScalarType.Bool, causal.dtype);
        Assert.True(causal.eq(torch.ones(6, 6, dtype: ScalarType.Bool).tril()).all().item<bool>());
        Assert.True(model.state_dict()["mixer.decay"].eq(torch.full(4, 0.5f)).all().item<bool>());
        var ps = mixer.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.False(ps["frozen_proj"].requires_grad);
        Assert.True(ps["A_log"].requires_grad);
        Assert.All(ps.Where(p => p.Key != "frozen_proj"), p => Assert.True(p.Value.requires_grad, p.Key));
        // log(arange(1, 5)) broadcast to every row.
        AssertClose(torch.log(torch.arange(1, 5, dtype: ScalarType.Float32)).expand(8, 4), ps["A_log"].detach());
        Assert.True(ps["bias"].detach().eq(0).all().item<bool>());
        Assert.True(ps["gate_scale"].detach().eq(1).all().item<bool>());
        // dt_bias = inv_softplus(dt) with dt in [0.001, 0.1]: softplus gives dt back.
        var dt = nn.functional.softplus(ps["dt_bias"].detach());
        Assert.True(dt.ge(0.001 - 1e-6).all().item<bool>() && dt.le(0.1 + 1e-6).all().item<bool>());
        // trunc_normal(std = 0.02) stays within ±2 (absolute bounds), normal(std = 0.02) is small.
        Assert.True(ps["frozen_proj"].detach().abs().le(2).all().item<bool>());
        Assert.True(ps["token_weight"].detach().std().item<float>() < 0.05f);
    }

    [Fact]
    public void Gated_mixer_forward_is_the_same_math_in_torchsharp()
    {
        torch.manual_seed(1);
        using var model = new TmGated();
        model.eval();
        using var _ = torch.no_grad();
        var mixer = model.named_children().Single().module;
        var p = mixer.named_parameters().ToDictionary(q => q.name, q => q.parameter.detach());
        var x = torch.randn(2, 6, 8);
        var causal = torch.ones(6, 6, dtype: ScalarType.Bool).tril();
        var mixed = torch.einsum("lm,bmd->bld", torch.where(causal, p["token_weight"], torch.zeros(6, 6)), x);
        var h = torch.einsum("bld,dn->bln", mixed, p["in_weight"]) * torch.exp(-torch.full(4, 0.5f));
        var y = torch.einsum("bln,nd->bld", h, p["out_weight"]) + p["bias"];
        var gate = torch.sigmoid(x * p["gate_scale"] + nn.functional.softplus(p["dt_bias"]) - torch.exp(p["A_log"]).sum(1) / 4);
        var expected = y * gate + 0.5 * torch.einsum("bld,de->ble", x, p["frozen_proj"]);
        AssertClose(expected, model.call(x));
    }

    [Fact]
    public void Gated_mixer_trains_its_parameters_but_not_the_frozen_one()
    {
        using var model = new TmGated();
        var loss = model.call(torch.randn(2, 6, 8)).square().sum();
        loss.backward();
        var mixer = model.named_children().Single().module;
        var ps = mixer.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.NotNull(ps["in_weight"].grad);
        Assert.True(ps["A_log"].grad!.abs().sum().item<float>() > 0);
        Assert.Null(ps["frozen_proj"].grad);
    }

    [Fact]
    public void Filter_written_in_mix_equals_the_built_in_global_filter()
    {
        torch.manual_seed(2);
        using var model = new TmFilter();
        AssertKeysMatchFrontEnd(model, "tm_filter");
        var weight = model.state_dict()["filter.complex_weight"];
        Assert.Equal(new long[] { 3, 3, 8, 2 }, weight.shape);
        using var builtin = new Mix.Runtime.GlobalFilter(8, 3, 3);
        builtin.load_state_dict(new System.Collections.Generic.Dictionary<string, Tensor> { ["complex_weight"] = weight });
        using var _ = torch.no_grad();
        var x = torch.randn(2, 12, 8);
        var expected = builtin.call(x.reshape(2, 3, 4, 8)).reshape(2, 12, 8);
        AssertClose(expected, model.call(x), rtol: 1e-6);
    }

    [Fact]
    public void Afno_written_in_mix_equals_the_built_in()
    {
        torch.manual_seed(3);
        using var model = new TmAfno();
        AssertKeysMatchFrontEnd(model, "tm_afno");
        using var builtin = new Mix.Runtime.AFNO2D(16, numBlocks: 4);
        builtin.load_state_dict(model.state_dict().ToDictionary(kv => kv.Key.Substring("afno.".Length), kv => kv.Value));
        using var _ = torch.no_grad();
        var x = torch.randn(2, 4, 6, 16);
        AssertClose(builtin.call(x), model.call(x), rtol: 1e-6, atol: 1e-6);
    }

    [Fact]
    public void Elementwise_functions()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmElementwise();
        var expected = torch.where(x.gt(0), x.pow(2), x.clamp_min(-0.5)) + torch.rsqrt(x.abs() + 1) * nn.functional.logsigmoid(x)
            - (nn.functional.softplus(x) + torch.log(-torch.expm1(-nn.functional.softplus(x)))) + torch.log(torch.exp(x))
            + torch.sin(x) * torch.cos(2 * x);
        AssertClose(expected, model.call(x), rtol: 1e-5, atol: 1e-5);
    }

    [Fact]
    public void Reductions()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmReduce();
        var expected = x.sum(2) + x.mean(new long[] { 2 }) + x.amax(2) + x.amax(2) + x.amin(2) + x.square().sum(2).sqrt() + x.var(2);
        AssertClose(expected, model.call(x));
    }

    [Fact]
    public void Cumulative_sums_softmax_and_triangles()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmScan();
        AssertClose(x.cumsum(2) + torch.nn.functional.log_softmax(x, 1) + x.triu() * x.tril(-1), model.call(x));
    }

    [Fact]
    public void Segsum_is_the_segment_sum()
    {
        var x = torch.randn(2, 3, 5, dtype: ScalarType.Float64);
        using var model = new TmSegsum();
        var y = model.call(x.to_type(ScalarType.Float32)).to_type(ScalarType.Float64);
        Assert.Equal(new long[] { 2, 3, 5, 5 }, y.shape);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++)
            {
                var cell = y[.., .., i, j];
                if (j > i) { Assert.True(cell.isneginf().all().item<bool>()); continue; }
                var expected = j == i ? torch.zeros(2, 3, dtype: ScalarType.Float64) : x[.., .., (j + 1)..(i + 1)].sum(-1);
                Assert.True((cell - expected).abs().max().item<double>() < 1e-5, $"segsum[{i}, {j}]");
            }
    }

    [Fact]
    public void Topk_indices_gather_and_scatter_add()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmTopk();
        var (values, indices) = x.topk(2);
        Assert.Equal(ScalarType.Int64, indices.dtype);
        var routed = x.scatter_add(2, indices, values);
        AssertClose(routed.gather(2, indices) + values, model.call(x));
    }

    [Fact]
    public void Layout_functions()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmLayout();
        var y = nn.functional.pad(x.flip(2).roll(1, 1), new long[] { 1, 2 }) + x.sum(new long[] { 1, 2 }).reshape(2, 1, 1).expand(-1, 3, 8);
        var r = y.repeat(1, 2, 1);
        AssertClose(torch.stack(new[] { r, r }, 1), model.call(x));
    }

    [Fact]
    public void Select_and_masks_made_in_the_forward()
    {
        var x = torch.randn(2, 3, 5);
        using var select = new TmSelect();
        AssertClose(x[.., -1] + x[.., 0], select.call(x));
        var y = torch.randn(2, 4, 4);
        using var mask = new TmMask();
        AssertClose(y.tril() * torch.arange(4, dtype: ScalarType.Float32), mask.call(y));
    }

    [Fact]
    public void Logic_on_masks()
    {
        var x = torch.randn(2, 4, 4);
        using var model = new TmLogic();
        var mask = x.gt(0).logical_not().logical_or(torch.ones(4, 4, dtype: ScalarType.Bool).tril().logical_and(x.gt(-1)));
        AssertClose(torch.where(mask, x, torch.zeros_like(x)), model.call(x));
    }

    [Fact]
    public void Softshrink_of_a_narrowed_axis()
    {
        var x = torch.randn(2, 3, 5);
        using var model = new TmShrink();
        AssertClose(nn.functional.softshrink(x.narrow(2, 1, 2), 0.3), model.call(x));
    }

    [Fact]
    public void Spectral_functions()
    {
        var x = torch.randn(2, 4, 6);
        using var model = new TmSpectral();
        var y = torch.fft.irfft(torch.fft.rfft(x, dim: 2, norm: FFTNormType.Forward) * 2, n: 6, dim: 2, norm: FFTNormType.Forward);
        var z = torch.fft.ifft(torch.fft.fft_(x, dim: 1), dim: 1).real + torch.fft.fft_(x).imag + torch.fft.fft_(x).abs()
            + (torch.complex(x, x) * torch.view_as_complex(torch.stack(new[] { x, x }, -1))).real;
        // idct(dct(x, ortho), ortho) = x; dct (backward) is scipy's unnormalized DCT-II: 2 Σ x[n] cos(π k (2n + 1) / 2N).
        var n = torch.arange(6, dtype: ScalarType.Float64);
        var basis = 2 * torch.cos(Math.PI * n.unsqueeze(1) * (2 * n.unsqueeze(0) + 1) / 12);
        var dct = torch.matmul(x.to_type(ScalarType.Float64), basis.t()).to_type(ScalarType.Float32);
        AssertClose(y + z + x + dct, model.call(x), rtol: 1e-5, atol: 1e-5);
    }

    [Fact]
    public void Haar_wavelet_bands_and_round_trip()
    {
        var x = torch.randn(2, 3, 4, 6);
        using var dwt = new TmHaar();
        var bands = dwt.call(x);
        // The LL band of a 2×2 block (a b / c d) is (a + b + c + d) / 2; the transform is orthonormal.
        var ll = (x[.., .., 0..1, 0..1] + x[.., .., 0..1, 1..2] + x[.., .., 1..2, 0..1] + x[.., .., 1..2, 1..2]) / 2;
        AssertClose(ll.squeeze(-1).squeeze(-1), bands[.., 0..3, 0, 0]);
        AssertClose(x.square().sum(), bands.square().sum(), rtol: 1e-5);
        var hh = (x[.., .., 2..3, 4..5] - x[.., .., 2..3, 5..6] - x[.., .., 3..4, 4..5] + x[.., .., 3..4, 5..6]) / 2;
        AssertClose(hh.squeeze(-1).squeeze(-1), bands[.., 9..12, 1, 2]);
        using var roundTrip = new TmHaarRoundtrip();
        AssertClose(x, roundTrip.call(x), atol: 1e-5);
    }

    [Fact]
    public void Emitted_code_reads_like_torchsharp()
    {
        var text = new InMemoryText(Harness.Root + "tensor_math.mix", ModelText);
        var result = Harness.Run(new[] { text }, out var output);
        Assert.Empty(result.Diagnostics);
        var source = result.Results.Single().GeneratedSources.Single(s => s.HintName == "tensor_math.mix.g.cs").SourceText.ToString();
        Assert.Contains("public readonly Parameter A_log;", source);
        Assert.Contains("A_log = new Parameter(MixInit.Of(new long[] { options.Dim, options.DState }, s => Fn.Log(Fn.Arange(1, options.DState + 1))));", source);
        Assert.Contains("frozen_proj = new Parameter(MixInit.Of(new long[] { options.Dim, options.Dim }, s => MixInit.TruncNormal(s, std: 0.02)), requires_grad: false);", source);
        Assert.Contains("Fn.Clamp(Fn.Exp(MixInit.Uniform(s, a: Fn.Log(0.001), b: Fn.Log(0.1))), min: 1e-4)", source);
        Assert.Contains("Fn.Where(causal.to(x.device), token_weight, 0.0)", source);
        Assert.Contains("Fn.Where(Fn.Tril(Fn.OnesMask(4, 4).to(x.device)), x, 0.0)", source);
        Assert.Contains("register_buffer(\"causal\", causal, persistent: false);", source);
        Assert.Contains("Fn.Einsum(\"b l d, d n -> b l n\", mixed, in_weight)", source);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning));
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "tensor_math.mix.g.cs"), source);
    }
}
