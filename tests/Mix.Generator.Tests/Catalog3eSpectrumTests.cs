using System;
using System.Linq;
using Mix.Dsl;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The Dynamic Spectrum Mixer (mix/std/dynamic_spectrum_mixer.mix; no official code, written from arXiv 2309.06721) on
/// cases small enough to check by hand: the orthonormal DCT round trip (unit spectra and an identity projection give
/// the input back), the spectrum weights Σ_k softmax(reweight(mean x))_k · P_k on a 2 × 2 grid against the DCT written
/// as its matrix, the coefficients' dependence on the input's mean, its keys, and its fixed-grid shape contract.
/// </summary>
public class Catalog3eSpectrumTests
{
    static Std.DynamicSpectrumMixer Mixer(long dim, long h, long w, long k)
    {
        var m = new Std.DynamicSpectrumMixer(new Std.DynamicSpectrumMixer.Options(dim, h, w) { NumWeights = k, Reduction = 0.5 });
        m.eval();
        return m;
    }

    static Tensor P(nn.Module m, string name) => m.named_parameters().Single(p => p.name == name).parameter;

    static void Set(Tensor p, Tensor value)
    {
        using var _ = torch.no_grad();
        p.copy_(value);
    }

    static void IdentityProjection(nn.Module m, long dim)
    {
        Set(P(m, "proj.weight"), torch.eye(dim).reshape(dim, dim, 1, 1));
        Set(P(m, "proj.bias"), torch.zeros(dim));
    }

    [Fact]
    public void Keys_are_the_spectra_the_reweighting_mlp_and_the_projection()
    {
        using var m = Mixer(8, 4, 3, 2);
        var keys = m.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").OrderBy(k => k, StringComparer.Ordinal);
        Assert.Equal(new[]
        {
            "proj.bias [8]", "proj.weight [8,8,1,1]", "reweight.fc1.bias [4]", "reweight.fc1.weight [4,8]",
            "reweight.fc2.bias [16]", "reweight.fc2.weight [16,4]", "spectrum_weights [2,8,4,3]",
        }, keys);
    }

    [Theory]
    [InlineData(1, 4, 4)]
    [InlineData(2, 5, 3)]   // odd sizes
    [InlineData(1, 1, 7)]
    public void Unit_spectra_and_an_identity_projection_give_the_input_back(long batch, long h, long w)
    {
        // Any softmax coefficients sum to one, so unit spectra make the weights 1 and the DCT round trip is exact.
        using var scope = torch.NewDisposeScope();
        using var m = Mixer(6, h, w, 3);
        Set(P(m, "spectrum_weights"), torch.ones(3, 6, h, w));
        IdentityProjection(m, 6);
        var x = torch.randn(new long[] { batch, 6, h, w }, generator: new torch.Generator(2));
        using var _ = torch.no_grad();
        double err = (m.call(x) - x).abs().max().item<float>();
        Assert.True(err < 1e-5, $"round trip error {err}");
    }

    [Fact]
    public void Spectrum_weights_are_the_softmax_mixture_of_the_learned_spectra_on_a_2x2_grid()
    {
        // dim 2, a 2 × 2 grid, two spectra. The reweighting MLP ignores x (zero weights): its logits are fc2's bias, so
        // the coefficients are softmax over the two spectra of (0.3, -0.2) for channel 0 and (1.0, 0.0) for channel 1.
        using var scope = torch.NewDisposeScope();
        using var m = Mixer(2, 2, 2, 2);
        Set(P(m, "reweight.fc1.weight"), torch.zeros(1, 2));
        Set(P(m, "reweight.fc2.weight"), torch.zeros(4, 1));
        Set(P(m, "reweight.fc2.bias"), torch.tensor(new float[] { 0.3f, 1.0f, -0.2f, 0.0f }));   // [k, c] flattened
        var p0 = torch.tensor(new float[] { 1, 2, 3, 4, -1, 0.5f, 2, 1 }).reshape(2, 2, 2);
        var p1 = torch.tensor(new float[] { 0, 1, -2, 1, 3, 1, 0, -1 }).reshape(2, 2, 2);
        Set(P(m, "spectrum_weights"), torch.stack(new[] { p0, p1 }));
        IdentityProjection(m, 2);
        var x = torch.tensor(new float[] { 1, -2, 0.5f, 3, 2, 0, -1, 1 }).reshape(1, 2, 2, 2);

        double a00 = Math.Exp(0.3) / (Math.Exp(0.3) + Math.Exp(-0.2));
        double a01 = Math.Exp(1.0) / (Math.Exp(1.0) + Math.Exp(0.0));
        // The orthonormal 2-point DCT-II is C = [[1, 1], [1, -1]] / √2 (its own inverse): S = C X Cᵀ, Y = Cᵀ (S ⊙ W) C.
        var c = torch.tensor(new float[] { 1, 1, 1, -1 }).reshape(2, 2) / Math.Sqrt(2);
        var expected = new Tensor[2];
        for (int ch = 0; ch < 2; ch++)
        {
            double a = ch == 0 ? a00 : a01;
            var weights = p0[ch] * a + p1[ch] * (1 - a);
            var s = c.matmul(x[0, ch]).matmul(c.t());
            expected[ch] = c.t().matmul(s * weights).matmul(c);
        }
        using var _ = torch.no_grad();
        var y = m.call(x);
        double err = (y[0] - torch.stack(expected)).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max abs error {err}");
    }

    [Fact]
    public void The_coefficients_follow_the_inputs_spatial_mean()
    {
        // reduction 0.5 of dim 2 is one hidden unit; fc1 reads channel 0's mean m, so the unit is u = GELU(m), and fc2 maps
        // it to the logits (u, -u) of channel 0's two spectra (channel 1's logits are 0, 0). Spectrum 0 is all ones and
        // spectrum 1 all zeros, so channel 0's output is a0 · x with a0 = softmax(u, -u)_0 = σ(2u), channel 1's 0.5 · x.
        using var scope = torch.NewDisposeScope();
        using var m = Mixer(2, 2, 3, 2);
        Set(P(m, "reweight.fc1.weight"), torch.tensor(new float[] { 1, 0 }).reshape(1, 2));
        Set(P(m, "reweight.fc1.bias"), torch.zeros(1));
        Set(P(m, "reweight.fc2.weight"), torch.tensor(new float[] { 1, 0, -1, 0 }).reshape(4, 1));
        Set(P(m, "reweight.fc2.bias"), torch.zeros(4));
        Set(P(m, "spectrum_weights"), torch.stack(new[] { torch.ones(2, 2, 3), torch.zeros(2, 2, 3) }));
        IdentityProjection(m, 2);
        using var _ = torch.no_grad();
        foreach (var level in new[] { 0.5f, 1.5f, 3f })
        {
            var x = torch.randn(new long[] { 1, 2, 2, 3 }, generator: new torch.Generator(7)) * 0.1 + level;
            double mean0 = x[0, 0].mean().item<float>();
            double u = mean0 * 0.5 * (1 + Erf(mean0 / Math.Sqrt(2)));   // GELU(mean of channel 0)
            double a0 = 1 / (1 + Math.Exp(-2 * u));
            var y = m.call(x);
            double err = (y[0, 0] - x[0, 0] * a0).abs().max().item<float>();
            Assert.True(err < 1e-5, $"level {level}: error {err}");
            Assert.True((y[0, 1] - x[0, 1] * 0.5).abs().max().item<float>() < 1e-5);   // channel 1: logits 0, 0
        }
    }

    /// <summary>erf by its Maclaurin series (exact to double rounding for the arguments used, |z| &lt; 3).</summary>
    static double Erf(double z)
    {
        double sum = 0, term = z;
        for (int n = 0; n < 60; n++)
        {
            sum += term / (2 * n + 1);
            term *= -z * z / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    [Fact]
    public void A_grid_of_another_size_is_a_located_diagnostic()
    {
        const string text = "import \"mix/std/dynamic_spectrum_mixer.mix\"\nmodel m() (x: [B, 8, 4, 5]) -> [B, 8, 4, 5] {\n" +
                            "  mixer = dynamic_spectrum_mixer(dim = 8, h = 4, w = 4)\n  return mixer(x)\n}\n";
        var c = MixCompilation.Create("m.mix", text);
        var d = Assert.Single(c.Diagnostics, e => e.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        Assert.Equal("MIX0302", d.Id);
        Assert.Equal(("m.mix", text.IndexOf("mixer(x)", StringComparison.Ordinal)), (d.Path, d.Span.Start));
        Assert.Empty(MixCompilation.Create("m.mix", text.Replace("h = 4, w = 4", "h = 4, w = 5")).Diagnostics);
    }
}
