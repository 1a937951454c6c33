using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Initial values of .mix parameters and buffers: <c>w = param([d, n], init = normal(std = 0.02))</c> becomes
/// <c>new Parameter(MixInit.Of(new long[] { d, n }, s =&gt; MixInit.Normal(s, std: 0.02)))</c>. The init runs once, without
/// gradients, and its value is broadcast to the declared shape (so <c>log(arange(1, n + 1))</c> fills every row).
/// </summary>
public static class MixInit
{
    /// <summary>The initial tensor of the declared <paramref name="shape"/>: <paramref name="init"/> of that shape, broadcast,
    /// as <paramref name="dtype"/> (float32 unless stated; a complex init stays complex).</summary>
    public static Tensor Of(long[] shape, Func<long[], Tensor> init, ScalarType? dtype = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var value = init(shape);
        var target = dtype ?? (value.is_complex() ? ScalarType.ComplexFloat32 : ScalarType.Float32);
        var result = value.to_type(target).expand(shape).contiguous().clone();
        return result.detach().MoveToOuterDisposeScope();
    }

    /// <summary>Every entry = <paramref name="value"/>.</summary>
    public static Tensor Of(long[] shape, double value, ScalarType? dtype = null) => Of(shape, s => torch.full(s, value), dtype);

    /// <summary><c>zeros</c>.</summary>
    public static Tensor Zeros(long[] shape) => torch.zeros(shape);
    /// <summary><c>ones</c>.</summary>
    public static Tensor Ones(long[] shape) => torch.ones(shape);
    /// <summary><c>constant(value)</c>.</summary>
    public static Tensor Constant(long[] shape, double value) => torch.full(shape, value);
    /// <summary><c>normal(mean, std)</c>.</summary>
    public static Tensor Normal(long[] shape, double mean = 0, double std = 1) => torch.randn(shape) * std + mean;
    /// <summary>
    /// <c>trunc_normal(std, mean, a, b)</c> as timm's / PyTorch's <c>trunc_normal_</c> (a and b are absolute bounds):
    /// uniform draws between the bounds' normal CDFs, mapped through the inverse CDF, clamped to [a, b]. Written here
    /// because TorchSharp 0.107's <c>nn.init.trunc_normal_(t, mean, std, a, b)</c> fills the tensor with <c>std</c>
    /// (every value 0.02 for <c>std = 0.02</c>): iFormer's positional embeddings were constant, and a uniform draw of
    /// exactly −1 made one of them NaN (∞ · 0). <c>MixInitTests</c> checks this one.
    /// </summary>
    public static Tensor TruncNormal(long[] shape, double std = 1, double mean = 0, double a = -2, double b = 2)
    {
        if (!(std > 0)) throw new ArgumentOutOfRangeException(nameof(std), std, "trunc_normal needs std > 0");
        if (!(a < b)) throw new ArgumentOutOfRangeException(nameof(a), a, $"trunc_normal needs a < b (b = {b})");
        double lo = 2 * NormalCdf((a - mean) / std) - 1, hi = 2 * NormalCdf((b - mean) / std) - 1;
        var t = torch.empty(shape);
        using (torch.no_grad())
        {
            t.uniform_(lo, hi);
            t.erfinv_();
            t.mul_(std * Math.Sqrt(2.0));
            t.add_(mean);
            t.clamp_(a, b);
        }
        return t;
    }

    // Φ(x) through libtorch's erf in float64 (.NET has none).
    private static double NormalCdf(double x)
    {
        using var v = torch.tensor(x / Math.Sqrt(2.0), ScalarType.Float64);
        using var e = torch.special.erf(v);
        return (1 + e.item<double>()) / 2;
    }
    /// <summary><c>uniform(a, b)</c>.</summary>
    public static Tensor Uniform(long[] shape, double a = 0, double b = 1) => nn.init.uniform_(torch.empty(shape), a, b);
    /// <summary><c>kaiming_uniform(a)</c>: fan-in from the shape as PyTorch computes it (axis 1 × the rest after it).</summary>
    public static Tensor KaimingUniform(long[] shape, double a = 2.23606797749979) => nn.init.kaiming_uniform_(torch.empty(shape), a);
    /// <summary><c>kaiming_normal(a)</c>.</summary>
    public static Tensor KaimingNormal(long[] shape, double a = 0) => nn.init.kaiming_normal_(torch.empty(shape), a);
    /// <summary><c>xavier_uniform(gain)</c>.</summary>
    public static Tensor XavierUniform(long[] shape, double gain = 1) => nn.init.xavier_uniform_(torch.empty(shape), gain);
}
