using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>Deterministic inputs and comparisons for the scan primitives' tests.</summary>
internal static class ScanData
{
    /// <summary>Deterministic values of the given shape, scaled.</summary>
    public static Tensor Det(double salt, double scale, params long[] shape) => TestUtil.Det(shape, salt, scale);

    /// <summary>Positive time steps in (0.05, 0.55).</summary>
    public static Tensor Dt(double salt, params long[] shape) => torch.sigmoid(Det(salt, 2.0, shape)) * 0.5 + 0.05;

    /// <summary>Negative decay rates in (−1.5, −0.25).</summary>
    public static Tensor NegativeRate(double salt, params long[] shape) => -(torch.sigmoid(Det(salt, 2.0, shape)) * 1.25 + 0.25);

    /// <summary>Log forget gates ≤ 0 (logsigmoid, as GLA's).</summary>
    public static Tensor LogGate(double salt, params long[] shape) => torch.nn.functional.logsigmoid(Det(salt, 3.0, shape) + 2.0);

    public static float[] F(Tensor t) => t.numel() == 0 ? System.Array.Empty<float>() : TestUtil.Values(t);

    /// <summary>|a − b| ≤ tol · (1 + |b|) elementwise, with the first offending index in the message.</summary>
    public static void Close(Tensor expected, Tensor actual, double tol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var e = F(expected);
        var a = F(actual);
        for (int i = 0; i < e.Length; i++)
        {
            double diff = Math.Abs(e[i] - a[i]);
            Assert.True(diff <= tol * (1.0 + Math.Abs(e[i])), $"{what}[{i}]: expected {e[i]}, got {a[i]} (|diff| {diff:g3}, tol {tol:g3})");
        }
    }

    public static void Close(float[] expected, Tensor actual, double tol, string what)
    {
        var a = F(actual);
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++)
        {
            double diff = Math.Abs(expected[i] - a[i]);
            Assert.True(diff <= tol * (1.0 + Math.Abs(expected[i])), $"{what}[{i}]: expected {expected[i]}, got {a[i]} (|diff| {diff:g3}, tol {tol:g3})");
        }
    }

    public static double Softplus(double x) => x > 20 ? x : Math.Log(1 + Math.Exp(x));
    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    /// <summary>Gradients of two differentiable paths agree: each input's gradient exists, is finite and matches.</summary>
    public static void SameGradients(Func<Tensor[], Tensor> pathA, Func<Tensor[], Tensor> pathB, Tensor[] inputs, double tol)
    {
        Tensor[] Grads(Func<Tensor[], Tensor> path)
        {
            var leaves = inputs.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
            path(leaves).backward();
            return leaves.Select((l, i) =>
            {
                Assert.True(l.grad is not null, $"input {i} has no gradient");
                Assert.True(l.grad!.isfinite().all().item<bool>(), $"input {i} has a non-finite gradient");
                return l.grad!.detach().clone();
            }).ToArray();
        }
        var ga = Grads(pathA);
        var gb = Grads(pathB);
        for (int i = 0; i < inputs.Length; i++)
        {
            Assert.True(gb[i].abs().sum().item<float>() > 0, $"input {i} gets a zero gradient");
            Close(gb[i], ga[i], tol, $"grad {i}");
        }
    }
}
