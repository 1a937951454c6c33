using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <c>trunc_normal(std, mean, a, b)</c> of .mix parameters (<see cref="MixInit.TruncNormal"/>, timm's semantics: a and b
/// absolute bounds): random, finite, inside the bounds, with the truncated normal's moments. TorchSharp 0.107's own
/// <c>nn.init.trunc_normal_</c> filled every entry with <c>std</c>, which left iFormer's positional embeddings constant.
/// </summary>
public class MixInitTests
{
    [Theory]
    [InlineData(0.02, 0.0, -2.0, 2.0, 0.02)]        // timm's default: bounds far outside, the plain normal's std
    [InlineData(1.0, 0.0, -2.0, 2.0, 0.8796)]        // ±2σ: the truncated normal's std is 0.8796 σ
    [InlineData(0.5, 1.0, 0.5, 1.5, 0.2698)]         // ±1σ around mean 1: σ √(1 − 2φ(1) / (2Φ(1) − 1)) = 0.5396 σ
    public void Draws_are_random_finite_bounded_and_have_the_truncated_moments(double std, double mean, double a, double b, double expectedStd)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(3);
        var t = MixInit.TruncNormal(new long[] { 400_000 }, std: std, mean: mean, a: a, b: b);
        Assert.True(t.isfinite().all().item<bool>());
        Assert.True(t.min().item<float>() >= a && t.max().item<float>() <= b);
        Assert.InRange(t.mean().item<float>(), mean - 0.01 * std, mean + 0.01 * std);
        Assert.InRange(t.std().item<float>(), 0.98 * expectedStd, 1.02 * expectedStd);
    }
}
