using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// Complex values and spectra: FFTs along axes (PyTorch's torch.fft with its norm modes), complex views, DCT-II/III and
// the 2-D Haar wavelet. Shapes carry the element type: rfft of [B, L, C] along 1 is complex[B, L/2+1, C].
public static partial class BuiltinCatalog
{
    static readonly string[] s_fftNorms = { "backward", "ortho", "forward" };

    static void RegisterSpectral()
    {
        ParamSpec Norm() => Opt("norm", MixType.String, new StringValue("backward"));

        Math2("rfft", new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)), Opt("n", MixType.Int.Optional(), None), Norm() },
            "[..., n, ...] -> complex[..., n/2+1, ...]", "real FFT along an axis (n pads or trims first)", c =>
            {
                if (!FftNorm(c) || RealTensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                var n = c.IsNone("n") ? s[a] : c.Dim("n");
                return new TensorValue(new Shape(s.With(a, Half(n)).Dims, "complex"));
            });
        Math2("irfft", new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)), Opt("n", MixType.Int.Optional(), None), Norm() },
            "complex[..., m, ...] -> [..., n = 2(m−1), ...]", "inverse of rfft (give n for an odd length)", c =>
            {
                if (!FftNorm(c) || ComplexTensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                var n = c.IsNone("n") ? Dim.Const(2) * (s[a] - Dim.Const(1)) : c.Dim("n");
                return new TensorValue(new Shape(s.With(a, n).Dims, "float"));
            });
        foreach (var (name, what) in new[] { ("fft", "complex FFT along an axis"), ("ifft", "inverse complex FFT along an axis") })
            Math2(name, new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)), Opt("n", MixType.Int.Optional(), None), Norm() },
                "[..., n, ...] -> complex[..., n, ...]", what, c =>
                {
                    if (!FftNorm(c) || Tensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                    return new TensorValue(new Shape(s.With(a, c.IsNone("n") ? s[a] : c.Dim("n")).Dims, "complex"));
                });
        Math2("rfft2", new[] { Req("x", MixType.Tensor), Opt("dims", MixType.Int.Array(), new ArrayValue(new Value[] { I(-2), I(-1) })),
                Opt("s", MixType.Int.Array().Optional(), None), Norm() },
            "[..., h, w, ...] -> complex[..., h, w/2+1, ...]", "2-D real FFT over two axes (GFNet: dims = [1, 2], norm = \"ortho\")", c =>
            {
                if (!FftNorm(c) || RealTensor(c, "x") is not Shape s || TwoAxes(c, s) is not (int a, int b)) return UnknownValue.Instance;
                var sizes = IntList(c, "s");
                var h = sizes?.Count == 2 ? sizes[0] : s[a];
                var w = sizes?.Count == 2 ? sizes[1] : s[b];
                return new TensorValue(new Shape(s.With(a, h).With(b, Half(w)).Dims, "complex"));
            });
        Math2("irfft2", new[] { Req("x", MixType.Tensor), Opt("dims", MixType.Int.Array(), new ArrayValue(new Value[] { I(-2), I(-1) })),
                Opt("s", MixType.Int.Array().Optional(), None), Norm() },
            "complex[..., h, m, ...] -> [..., h, 2(m−1), ...] (or s)", "inverse of rfft2 (give s = [h, w] for an odd width)", c =>
            {
                if (!FftNorm(c) || ComplexTensor(c, "x") is not Shape s || TwoAxes(c, s) is not (int a, int b)) return UnknownValue.Instance;
                var sizes = IntList(c, "s");
                var h = sizes?.Count == 2 ? sizes[0] : s[a];
                var w = sizes?.Count == 2 ? sizes[1] : Dim.Const(2) * (s[b] - Dim.Const(1));
                return new TensorValue(new Shape(s.With(a, h).With(b, w).Dims, "float"));
            });

        Math2("view_as_complex", new[] { Req("x", MixType.Tensor) }, "[..., 2] -> complex[...]", "pairs (re, im) on the last axis as complex values", c =>
        {
            if (RealTensor(c, "x") is not Shape s || !ExpectMinRank(c, s, 1, "[..., 2]")) return UnknownValue.Instance;
            if (!ExpectDim(c, s, -1, Dim.Const(2), "2 (re, im)")) return UnknownValue.Instance;
            return new TensorValue(new Shape(s.Dims.Take(s.Rank - 1).ToList(), "complex"));
        });
        Math2("view_as_real", new[] { Req("x", MixType.Tensor) }, "complex[...] -> [..., 2]", "complex values as (re, im) pairs on a new last axis", c =>
            ComplexTensor(c, "x") is Shape s ? new TensorValue(new Shape(s.Dims.Append(Dim.Const(2)).ToList(), "float")) : UnknownValue.Instance);
        Math2("real", new[] { Req("x", MixType.Tensor) }, "complex[...] -> [...]", "real part", c =>
            ComplexTensor(c, "x") is Shape s ? new TensorValue(new Shape(s.Dims, "float")) : UnknownValue.Instance);
        Math2("imag", new[] { Req("x", MixType.Tensor) }, "complex[...] -> [...]", "imaginary part", c =>
            ComplexTensor(c, "x") is Shape s ? new TensorValue(new Shape(s.Dims, "float")) : UnknownValue.Instance);
        Math2("complex", new[] { Req("re", MixType.Tensor), Req("im", MixType.Tensor) }, "[...], [...] -> complex[...] (broadcast)", "re + i·im", c =>
        {
            if (RealTensor(c, "re") is null || RealTensor(c, "im") is null) return UnknownValue.Instance;
            return Elementwise(c, new[] { "re", "im" }, realOnly: true) is TensorValue t ? new TensorValue(new Shape(t.Shape.Dims, "complex")) : UnknownValue.Instance;
        });

        foreach (var (name, what) in new[] { ("dct", "DCT-II along an axis (norm \"backward\": unscaled, as scipy; \"ortho\": orthonormal)"), ("idct", "DCT-III, the inverse of dct with the same norm") })
            Math2(name, new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)), Opt("norm", MixType.String, new StringValue("backward")) },
                "[...] -> [...]", what, c =>
                {
                    if (c.Arg("norm") is StringValue { Value: string n } && n is not ("backward" or "ortho"))
                    {
                        c.Report(DiagnosticIds.OutOfRange, $"{name} norm must be \"backward\" or \"ortho\"; got \"{n}\"");
                        return UnknownValue.Instance;
                    }
                    if (RealTensor(c, "x") is not Shape s || Axis(c, s, "dim") is null) return UnknownValue.Instance;
                    return new TensorValue(new Shape(s.Dims, "float"));
                });

        Math2("haar_dwt2", new[] { Req("x", MixType.Tensor) }, "[B, C, H, W] -> [B, 4·C, H/2, W/2]",
            "one level of the orthonormal 2-D Haar transform; channels [LL of all C, LH, HL, HH]", c =>
            {
                if (RealTensor(c, "x") is not Shape s || !ExpectRank(c, s, 4, "[B, C, H, W]")) return UnknownValue.Instance;
                if (!Divides(c, 2, s[2], "haar_dwt2 halves H") || !Divides(c, 2, s[3], "haar_dwt2 halves W")) return UnknownValue.Instance;
                return new TensorValue(new Shape(new[] { s[0], Dim.Const(4) * s[1], s[2].DivideBy(Dim.Const(2))!, s[3].DivideBy(Dim.Const(2))! }, "float"));
            });
        Math2("haar_idwt2", new[] { Req("x", MixType.Tensor) }, "[B, 4·C, H, W] -> [B, C, 2H, 2W]", "the inverse of haar_dwt2", c =>
        {
            if (RealTensor(c, "x") is not Shape s || !ExpectRank(c, s, 4, "[B, 4·C, H, W]")) return UnknownValue.Instance;
            if (!Divides(c, 4, s[1], "haar_idwt2 takes 4 bands of channels")) return UnknownValue.Instance;
            return new TensorValue(new Shape(new[] { s[0], s[1].DivideBy(Dim.Const(4))!, Dim.Const(2) * s[2], Dim.Const(2) * s[3] }, "float"));
        });
    }

    static bool Divides(BuiltinCall c, long divisor, Dim dividend, string what)
    {
        if (dividend.AsLong is not long n || n % divisor == 0) return true;
        c.Report(DiagnosticIds.NotDivisible, $"{what}: {divisor} does not divide {n}");
        return false;
    }

    static Dim Half(Dim n) => n.FloorDivideBy(2)! + Dim.Const(1);

    static bool FftNorm(BuiltinCall c)
    {
        if (c.Arg("norm") is not StringValue { Value: string n } || s_fftNorms.Contains(n)) return true;
        c.Report(DiagnosticIds.OutOfRange, $"norm must be \"backward\", \"ortho\" or \"forward\"; got \"{n}\"");
        return false;
    }

    static Shape? ComplexTensor(BuiltinCall c, string name)
    {
        if (Tensor(c, name) is not Shape s) return null;
        if (s.ElementType == "complex") return s;
        c.Report(DiagnosticIds.DtypeMismatch, $"{c.Callable.Name} needs complex values; '{name}' is {s} (from rfft, fft or view_as_complex)");
        return null;
    }

    static (int, int)? TwoAxes(BuiltinCall c, Shape s)
    {
        if (c.Arg("dims").AsItems() is not { } items) return null;
        if (items.Count != 2)
        {
            c.Report(DiagnosticIds.BadAxis, $"{c.Callable.Name} transforms two axes; dims has {items.Count}");
            return null;
        }
        if (Axes(c, s, "dims") is null) return null;
        int Norm(Value v) => (int)(v.AsLong()!.Value < 0 ? v.AsLong()!.Value + s.Rank : v.AsLong()!.Value);
        return (Norm(items[0]), Norm(items[1]));
    }
}
