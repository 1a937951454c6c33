using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>Shared helpers: deterministic inputs, plain-loop references, key listings, autograd and leak checks.</summary>
internal static class TestUtil
{
    /// <summary>Deterministic, non-trivial values (no global RNG, so tests may run in parallel).</summary>
    public static float[] DetValues(int n, double salt = 0.0, double scale = 1.0)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(scale * Math.Sin(0.7 * i + salt + 0.3) * (1.0 + 0.1 * (i % 3)));
        return v;
    }

    public static Tensor Det(long[] shape, double salt = 0.0, double scale = 1.0)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        return torch.tensor(DetValues(n, salt, scale)).reshape(shape);
    }

    public static float[] Values(Tensor t) => t.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();

    public static void Set(Tensor p, float[] values)
    {
        using var noGrad = torch.no_grad();
        using var src = torch.tensor(values).reshape(p.shape).to_type(p.dtype);
        p.copy_(src);
    }

    public static void AssertClose(float[] expected, float[] actual, double tol = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) {
            double diff = Math.Abs(expected[i] - actual[i]);
            Assert.True(diff <= tol * (1.0 + Math.Abs(expected[i])), $"index {i}: expected {expected[i]}, got {actual[i]} (|diff| {diff})");
        }
    }

    /// <summary>State-dict keys with shapes, in registration order, formatted as in Expected/*.keys.txt.</summary>
    public static List<string> KeyLines(nn.Module module)
        => module.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").ToList();

    public static List<string> Keys(nn.Module module) => module.state_dict().Keys.ToList();

    /// <summary>Same shape, same dtype and every element equal (bit for bit outside NaN).</summary>
    public static bool Same(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    public static long ParameterCount(nn.Module module) => module.parameters().Sum(p => p.numel());

    /// <summary>Forward, a scalar loss, backward: the input and every trainable parameter get a gradient.</summary>
    public static void AssertBackward(nn.Module<Tensor, Tensor> module, Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var x = input.detach().clone().requires_grad_(true);
        var y = module.forward(x);
        y.square().sum().backward();
        Assert.NotNull(x.grad);
        foreach (var (name, p) in module.named_parameters()) {
            if (!p.requires_grad) continue;
            Assert.True(p.grad is not null, $"parameter {name} has no grad");
        }
        module.zero_grad();
    }

    public static long LiveTensors => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    /// <summary>A forward outside any dispose scope leaves exactly one new live tensor: its result.</summary>
    public static void AssertForwardLeavesOnlyResult(nn.Module<Tensor, Tensor> module, Tensor x)
    {
        long before = LiveTensors;
        var y = module.forward(x);
        Assert.Equal(before + 1, LiveTensors);
        y.Dispose();
        Assert.Equal(before, LiveTensors);
    }

    /// <summary>Plain-loop 2-D convolution (NCHW, zero padding, groups).</summary>
    public static float[] Conv2dRef(float[] x, int b, int cin, int h, int w, float[] weight, int cout, int k,
        int stride, int pad, int groups = 1, float[]? bias = null)
    {
        int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
        int cinPerGroup = cin / groups, coutPerGroup = cout / groups;
        var y = new float[b * cout * ho * wo];
        for (int n = 0; n < b; n++)
        for (int co = 0; co < cout; co++)
        for (int i = 0; i < ho; i++)
        for (int j = 0; j < wo; j++) {
            double acc = bias?[co] ?? 0.0;
            int g = co / coutPerGroup;
            for (int ci = 0; ci < cinPerGroup; ci++)
            for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int yi = i * stride - pad + ki, xj = j * stride - pad + kj;
                if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
                int c = g * cinPerGroup + ci;
                acc += x[((n * cin + c) * h + yi) * w + xj] * weight[((co * cinPerGroup + ci) * k + ki) * k + kj];
            }
            y[((n * cout + co) * ho + i) * wo + j] = (float)acc;
        }
        return y;
    }

    /// <summary>Plain-loop y = x W^T + b for x [rows, in], W [out, in].</summary>
    public static float[] LinearRef(float[] x, int rows, int fin, float[] weight, int fout, float[]? bias = null)
    {
        var y = new float[rows * fout];
        for (int r = 0; r < rows; r++)
        for (int o = 0; o < fout; o++) {
            double acc = bias?[o] ?? 0.0;
            for (int i = 0; i < fin; i++) acc += x[r * fin + i] * weight[o * fin + i];
            y[r * fout + o] = (float)acc;
        }
        return y;
    }

    /// <summary>Plain-loop layer norm of each row of x [rows, c].</summary>
    public static float[] LayerNormRef(float[] x, int rows, int c, float[]? weight, float[]? bias, double eps)
    {
        var y = new float[x.Length];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int i = 0; i < c; i++) mean += x[r * c + i];
            mean /= c;
            for (int i = 0; i < c; i++) var += (x[r * c + i] - mean) * (x[r * c + i] - mean);
            var /= c;
            for (int i = 0; i < c; i++) {
                double v = (x[r * c + i] - mean) / Math.Sqrt(var + eps);
                y[r * c + i] = (float)(v * (weight?[i] ?? 1.0) + (bias?[i] ?? 0.0));
            }
        }
        return y;
    }

    /// <summary>NCHW [b, c, h, w] → rows of channels [b·h·w, c].</summary>
    public static float[] NchwToRows(float[] x, int b, int c, int h, int w)
    {
        var y = new float[x.Length];
        for (int n = 0; n < b; n++) for (int ch = 0; ch < c; ch++) for (int i = 0; i < h * w; i++)
            y[(n * h * w + i) * c + ch] = x[(n * c + ch) * h * w + i];
        return y;
    }

    /// <summary>Rows of channels [b·h·w, c] → NCHW [b, c, h, w].</summary>
    public static float[] RowsToNchw(float[] x, int b, int c, int h, int w)
    {
        var y = new float[x.Length];
        for (int n = 0; n < b; n++) for (int ch = 0; ch < c; ch++) for (int i = 0; i < h * w; i++)
            y[(n * c + ch) * h * w + i] = x[(n * h * w + i) * c + ch];
        return y;
    }

    public static double Sigmoid(double v) => 1.0 / (1.0 + Math.Exp(-v));

    /// <summary>Locates Expected/<paramref name="file"/>: beside the test assembly (the build copies it there), else in
    /// the source tree.</summary>
    public static string ExpectedPath(string file)
    {
        var path = Path.Combine(Checkpoints.TestFiles.TestProjectDirectory(), "Expected", file);
        return File.Exists(path) ? path : throw new FileNotFoundException($"Expected file {file} not found at {path}.");
    }

    public static List<string> ExpectedLines(string file)
        => File.ReadAllLines(ExpectedPath(file)).Where(l => l.Length > 0).ToList();
}
