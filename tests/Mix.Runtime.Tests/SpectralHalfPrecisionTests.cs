using System;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// libtorch has no bfloat16 FFT (CPU or CUDA; cuFFT takes float16 at power-of-two sizes only), so the FFT built-ins
/// transform a half-precision signal in float32 and round what comes back to real values to the precision of the
/// real tensor it belongs with (<c>like</c>). The results are compared with the float32 computation itself, exactly.
/// </summary>
public class SpectralHalfPrecisionTests
{
    private static Tensor Signal(params long[] shape)
    {
        torch.manual_seed(3);
        return torch.randn(shape).to_type(ScalarType.BFloat16);
    }

    /// <summary>Same dtype, shape and values.</summary>
    private static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.AsSpan().SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void Rfft_and_irfft_of_half_precision_are_the_float32_results_rounded(ScalarType half)
    {
        var x = Signal(2, 3, 37).to_type(half);          // odd length: cuFFT's float16 would refuse it
        var x32 = x.to_type(ScalarType.Float32);
        var spectrum = Fn.Rfft(x, n: 2 * 37);
        Assert.Equal(ScalarType.ComplexFloat32, spectrum.dtype);
        Assert.True(Same(spectrum, Fn.Rfft(x32, n: 2 * 37)), "rfft of a half signal is the float32 rfft of its values");

        var y = Fn.Irfft(spectrum * spectrum, n: 2 * 37, like: x);
        var y32 = Fn.Irfft(spectrum * spectrum, n: 2 * 37);
        Assert.Equal(ScalarType.Float32, y32.dtype);
        Assert.Equal(half, y.dtype);
        Assert.True(Same(y, y32.to_type(half)), "irfft with a half `like` is the float32 result rounded to it");
    }

    [Fact]
    public void Two_dimensional_transforms_and_complex_parts_follow_the_same_rule()
    {
        var x = Signal(2, 6, 7, 4);
        var x32 = x.to_type(ScalarType.Float32);
        var dims = new long[] { 1, 2 };
        var spectrum = Fn.Rfft2(x, dims: dims, norm: "ortho");
        Assert.True(Same(spectrum, Fn.Rfft2(x32, dims: dims, norm: "ortho")));
        var back = Fn.Irfft2(spectrum, dims: dims, s: new long[] { 6, 7 }, norm: "ortho", like: x);
        Assert.Equal(ScalarType.BFloat16, back.dtype);
        Assert.True(Same(back, Fn.Irfft2(spectrum, dims: dims, s: new long[] { 6, 7 }, norm: "ortho").to_type(ScalarType.BFloat16)));
        // The round trip returns the signal to bfloat16 rounding (float32's FFT error is far below a bfloat16 ulp).
        Assert.True(back.to_type(ScalarType.Float32).allclose(x32, rtol: 1e-2, atol: 1e-2));

        Assert.True(Same(Fn.Real(spectrum, like: x), spectrum.real.to_type(ScalarType.BFloat16)));
        Assert.True(Same(Fn.Imag(spectrum, like: x), spectrum.imag.to_type(ScalarType.BFloat16)));
        Assert.True(Same(Fn.ViewAsReal(spectrum, like: x), view_as_real(spectrum).to_type(ScalarType.BFloat16)));
        // Building a spectrum from half-precision parts widens them: there is no bfloat16 complex type.
        var rebuilt = Fn.Complex(Fn.Real(spectrum, like: x), Fn.Imag(spectrum, like: x));
        Assert.Equal(ScalarType.ComplexFloat32, rebuilt.dtype);
        Assert.Equal(ScalarType.ComplexFloat32, Fn.ViewAsComplex(Fn.ViewAsReal(spectrum, like: x)).dtype);
        Assert.True(Same(Fn.Fft(x, dim: 2), Fn.Fft(x32, dim: 2)));
        Assert.True(Same(Fn.Ifft(x, dim: 2), Fn.Ifft(x32, dim: 2)));
    }

    [Fact]
    public void Float32_and_float64_are_unchanged_by_like()
    {
        foreach (var dt in new[] { ScalarType.Float32, ScalarType.Float64 })
        {
            var x = Signal(3, 16).to_type(dt);
            var y = Fn.Irfft(Fn.Rfft(x), n: 16, like: x);
            Assert.Equal(dt, y.dtype);
            Assert.True(y.allclose(x, rtol: 1e-5, atol: 1e-5));
        }
    }
}
