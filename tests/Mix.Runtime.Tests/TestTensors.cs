using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>Small helpers shared by the mixer tests (plain C# data in, tensors out, and comparisons).</summary>
internal static class TestTensors
{
    public static double[] RandomArray(Random rng, int count, double lo = -1, double hi = 1)
    {
        var a = new double[count];
        for (int i = 0; i < count; i++) a[i] = lo + (hi - lo) * rng.NextDouble();
        return a;
    }

    public static Tensor FromArray(double[] data, long[] shape, ScalarType dtype = ScalarType.Float64) =>
        torch.tensor(data, shape, dtype: ScalarType.Float64).to_type(dtype);

    public static double[] ToArray(Tensor t)
    {
        using var c = t.detach().to_type(ScalarType.Float64).cpu().contiguous();
        return c.data<double>().ToArray();
    }

    public static void AssertClose(double[] expected, double[] actual, double atol, double rtol = 0, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = atol + rtol * Math.Abs(expected[i]);
            if (!(Math.Abs(expected[i] - actual[i]) <= tol))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (tol {tol:G3})");
        }
    }

    public static void AssertClose(Tensor expected, Tensor actual, double atol, double rtol = 0, string what = "")
    {
        Assert.Equal(expected.shape, actual.shape);
        AssertClose(ToArray(expected), ToArray(actual), atol, rtol, what);
    }

    /// <summary>Fills every parameter of <paramref name="module"/> with seeded uniform values in [lo, hi].</summary>
    public static void RandomizeParameters(torch.nn.Module module, int seed, double lo = -0.5, double hi = 0.5)
    {
        var rng = new Random(seed);
        using var _ = torch.no_grad();
        foreach (var (_, p) in module.named_parameters())
        {
            var data = RandomArray(rng, (int)p.numel(), lo, hi);
            using var src = FromArray(data, p.shape, p.dtype);
            p.copy_(src);
        }
    }

    /// <summary>Parameter values by name as flat double arrays.</summary>
    public static Dictionary<string, double[]> ParameterArrays(torch.nn.Module module) =>
        module.named_parameters().ToDictionary(kv => kv.name, kv => ToArray(kv.parameter));

    public static double Silu(double x) => x / (1 + Math.Exp(-x));
    public static double Softplus(double x) => x > 20 ? x : Math.Log(1 + Math.Exp(x));
    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>erf with ~1e-15 accuracy (series / continued fraction), enough for float64 comparisons.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        double r;
        if (ax < 2.5)
        {
            // Maclaurin series
            double sum = 0, term = ax;
            for (int n = 0; n < 200; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -ax * ax / (n + 1);
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // continued fraction for erfc
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }
}

/// <summary>Plain-loop building blocks for expected values.</summary>
internal static class Loops
{
    /// <summary>y[r, o] = Σ_i x[r, i]·W[o, i] + b[o] on row-major arrays.</summary>
    public static double[] Linear(double[] x, int rows, int inF, double[] w, double[]? b, int outF)
    {
        var y = new double[rows * outF];
        for (int r = 0; r < rows; r++)
        for (int o = 0; o < outF; o++)
        {
            double s = b?[o] ?? 0;
            for (int i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
            y[r * outF + o] = s;
        }
        return y;
    }

    /// <summary>Layer norm of each row of length <paramref name="width"/> with per-element affine.</summary>
    public static double[] LayerNorm(double[] x, int rows, int width, double[] w, double[] b, double eps)
    {
        var y = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < width; i++) mean += x[r * width + i];
            mean /= width;
            for (int i = 0; i < width; i++) var += Math.Pow(x[r * width + i] - mean, 2);
            var /= width;
            for (int i = 0; i < width; i++)
                y[r * width + i] = (x[r * width + i] - mean) / Math.Sqrt(var + eps) * w[i] + b[i];
        }
        return y;
    }

    /// <summary>Transposes each of <paramref name="batch"/> [rows, cols] matrices.</summary>
    public static double[] Transpose(double[] x, int batch, int rows, int cols)
    {
        var y = new double[x.Length];
        for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            y[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
        return y;
    }

    public static double[] Map(double[] x, Func<double, double> f) => Array.ConvertAll(x, v => f(v));

    public static double[] Add(double[] a, double[] b) => a.Zip(b, (p, q) => p + q).ToArray();

    public static double[] Mul(double[] a, double[] b) => a.Zip(b, (p, q) => p * q).ToArray();
}
