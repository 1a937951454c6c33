using System;
using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

// Complex values and spectra of .mix: torch.fft with its norm modes, complex views, DCT-II/III, the 2-D Haar wavelet.
public static partial class Fn
{
    static FFTNormType FftNorm(string norm) => norm switch
    {
        "backward" => FFTNormType.Backward,
        "ortho" => FFTNormType.Ortho,
        "forward" => FFTNormType.Forward,
        _ => throw new ArgumentException($"norm must be \"backward\", \"ortho\" or \"forward\"; got \"{norm}\"", nameof(norm)),
    };

    // libtorch has no FFT for bfloat16 (CPU or CUDA), cuFFT takes float16 only at power-of-two sizes, and no complex
    // type holds either: a half-precision signal is transformed in float32, its spectrum is complex64 (as under
    // torch.autocast), and what comes back to real values (irfft, irfft2, real, imag, view_as_real) is rounded to the
    // precision of `like`, the real tensor it belongs with (generated code passes the forward's input), where that is
    // bfloat16 or float16. float32 and float64 are never changed.

    /// <summary>float32 for a bfloat16 or float16 tensor, else the tensor itself.</summary>
    static Tensor Widened(Tensor x) => x.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? x.to_type(ScalarType.Float32) : x;

    /// <summary>The real result <paramref name="y"/> in <paramref name="like"/>'s precision where that is half.</summary>
    static Tensor Narrowed(Tensor y, Tensor? like) =>
        like is { dtype: ScalarType.BFloat16 or ScalarType.Float16 } && !y.is_complex() && y.dtype != like.dtype ? y.to_type(like.dtype) : y;

    /// <summary><c>rfft(x, dim, n, norm)</c> (a half-precision <paramref name="x"/> in float32: complex64).</summary>
    public static Tensor Rfft(Tensor x, long dim = -1, long? n = null, string norm = "backward") => fft.rfft(Widened(x), n ?? -1, dim, FftNorm(norm));
    /// <summary><c>irfft(x, dim, n, norm)</c>, rounded to <paramref name="like"/>'s precision where that is half.</summary>
    public static Tensor Irfft(Tensor x, long dim = -1, long? n = null, string norm = "backward", Tensor? like = null) =>
        Narrowed(fft.irfft(Widened(x), n ?? -1, dim, FftNorm(norm)), like);
    /// <summary><c>fft(x, dim, n, norm)</c> (a half-precision <paramref name="x"/> in float32: complex64).</summary>
    public static Tensor Fft(Tensor x, long dim = -1, long? n = null, string norm = "backward") => fft.fft_(Widened(x), n ?? -1, dim, FftNorm(norm));
    /// <summary><c>ifft(x, dim, n, norm)</c> (a half-precision <paramref name="x"/> in float32: complex64).</summary>
    public static Tensor Ifft(Tensor x, long dim = -1, long? n = null, string norm = "backward") => fft.ifft(Widened(x), n ?? -1, dim, FftNorm(norm));
    /// <summary><c>rfft2(x, dims, s, norm)</c> (a half-precision <paramref name="x"/> in float32: complex64).</summary>
    public static Tensor Rfft2(Tensor x, long[]? dims = null, long[]? s = null, string norm = "backward") =>
        fft.rfft2(Widened(x), s, dims ?? new long[] { -2, -1 }, FftNorm(norm));
    /// <summary><c>irfft2(x, dims, s, norm)</c>, rounded to <paramref name="like"/>'s precision where that is half.</summary>
    public static Tensor Irfft2(Tensor x, long[]? dims = null, long[]? s = null, string norm = "backward", Tensor? like = null) =>
        Narrowed(fft.irfft2(Widened(x), s, dims ?? new long[] { -2, -1 }, FftNorm(norm)), like);

    /// <summary><c>view_as_complex(x)</c>: [..., 2] → complex [...] (a half-precision <paramref name="x"/> in float32).</summary>
    public static Tensor ViewAsComplex(Tensor x) => view_as_complex(Widened(x).contiguous());
    /// <summary><c>view_as_real(z)</c>: complex [...] → [..., 2], rounded to <paramref name="like"/>'s precision where that is half.</summary>
    public static Tensor ViewAsReal(Tensor z, Tensor? like = null) => Narrowed(view_as_real(z), like);
    /// <summary><c>real(z)</c>, rounded to <paramref name="like"/>'s precision where that is half.</summary>
    public static Tensor Real(Tensor x, Tensor? like = null) => Narrowed(x.real, like);
    /// <summary><c>imag(z)</c>, rounded to <paramref name="like"/>'s precision where that is half.</summary>
    public static Tensor Imag(Tensor x, Tensor? like = null) => Narrowed(x.imag, like);
    /// <summary><c>complex(re, im)</c> (half-precision parts in float32: complex64).</summary>
    public static Tensor Complex(Tensor re, Tensor im)
    {
        var both = broadcast_tensors(Widened(re), Widened(im));
        return torch.complex(both[0].contiguous(), both[1].contiguous());
    }

    static readonly ConcurrentDictionary<(long N, bool Ortho, bool Inverse), double[]> s_dctBases = new();

    /// <summary>
    /// The DCT matrix M (row k, column n) with y = M x: DCT-II <c>2·cos(π k (2n+1) / 2N)</c> unscaled ("backward", as
    /// scipy) or orthonormal ("ortho"); the inverse is DCT-III, M⁻¹.
    /// </summary>
    static double[] DctBasis(long n, bool ortho, bool inverse) => s_dctBases.GetOrAdd((n, ortho, inverse), key =>
    {
        var m = new double[n * n];
        for (long k = 0; k < n; k++)
        {
            double scale = k == 0 ? Math.Sqrt(1.0 / n) : Math.Sqrt(2.0 / n);        // orthonormal Q[k, i]
            for (long i = 0; i < n; i++)
            {
                var q = scale * Math.Cos(Math.PI * k * (2 * i + 1) / (2.0 * n));
                // backward: M = diag(2 / scale) Q, so M⁻¹ = Qᵀ diag(scale / 2); ortho: M = Q, M⁻¹ = Qᵀ.
                if (!inverse) m[k * n + i] = ortho ? q : 2 / scale * q;
                else m[i * n + k] = ortho ? q : q * scale / 2;
            }
        }
        return m;
    });

    static Tensor DctAlong(Tensor x, long dim, string norm, bool inverse)
    {
        if (norm is not ("backward" or "ortho")) throw new ArgumentException($"norm must be \"backward\" or \"ortho\"; got \"{norm}\"", nameof(norm));
        var n = x.shape[dim < 0 ? x.dim() + dim : dim];
        using var basis64 = tensor(DctBasis(n, norm == "ortho", inverse), new[] { n, n }, ScalarType.Float64);
        using var basis = basis64.to(x.dtype, x.device);
        return movedim(movedim(x, dim, -1).matmul(basis.t()), -1, dim);
    }

    /// <summary><c>dct(x, dim, norm)</c>: DCT-II.</summary>
    public static Tensor Dct(Tensor x, long dim = -1, string norm = "backward") => DctAlong(x, dim, norm, inverse: false);
    /// <summary><c>idct(x, dim, norm)</c>: DCT-III, the inverse of dct with the same norm.</summary>
    public static Tensor Idct(Tensor x, long dim = -1, string norm = "backward") => DctAlong(x, dim, norm, inverse: true);

    /// <summary>
    /// <c>haar_dwt2(x)</c>: [B, C, H, W] → [B, 4C, H/2, W/2], one level of the orthonormal 2-D Haar transform. Of each
    /// 2×2 block (a b / c d): LL = (a+b+c+d)/2, LH = (a−b+c−d)/2, HL = (a+b−c−d)/2, HH = (a−b−c+d)/2; channels are
    /// [LL of all C, then LH, HL, HH].
    /// </summary>
    public static Tensor HaarDwt2(Tensor x)
    {
        var (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        var blocks = x.reshape(b, c, h / 2, 2, w / 2, 2);
        var (p, q) = (blocks.select(3, 0), blocks.select(3, 1));
        var (a, bb, cc, d) = (p.select(4, 0), p.select(4, 1), q.select(4, 0), q.select(4, 1));
        return cat(new[] { (a + bb + cc + d) / 2, (a - bb + cc - d) / 2, (a + bb - cc - d) / 2, (a - bb - cc + d) / 2 }, 1);
    }

    /// <summary><c>haar_idwt2(x)</c>: [B, 4C, H, W] → [B, C, 2H, 2W], the inverse of <see cref="HaarDwt2"/>.</summary>
    public static Tensor HaarIdwt2(Tensor x)
    {
        var (b, c4, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        var bands = x.chunk(4, 1);
        var (ll, lh, hl, hh) = (bands[0], bands[1], bands[2], bands[3]);
        var a = (ll + lh + hl + hh) / 2;
        var bb = (ll - lh + hl - hh) / 2;
        var cc = (ll + lh - hl - hh) / 2;
        var d = (ll - lh - hl + hh) / 2;
        var top = stack(new[] { a, bb }, -1).reshape(b, c4 / 4, h, 2 * w);
        var bottom = stack(new[] { cc, d }, -1).reshape(b, c4 / 4, h, 2 * w);
        return stack(new[] { top, bottom }, 3).reshape(b, c4 / 4, 2 * h, 2 * w);
    }
}
