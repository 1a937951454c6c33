using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class RandomMixingTests
{
    [Fact]
    public void MatrixIsFrozenRowStochasticParameter()
    {
        using var m = new RandomMixing(6);
        Assert.Equal(new[] { "random_matrix [6,6]" }, TestUtil.KeyLines(m));
        Assert.False(m.random_matrix.requires_grad);
        var r = TestUtil.Values(m.random_matrix);
        for (int i = 0; i < 6; i++) {
            var row = r.Skip(i * 6).Take(6).ToArray();
            Assert.Equal(1.0, row.Sum(), 5);
            // softmax of U(0,1) values: each entry lies in [1/(1+5e), e/(e+5)]
            Assert.All(row, v => Assert.InRange(v, 1 / (1 + 5 * Math.E) - 1e-6, Math.E / (Math.E + 5) + 1e-6));
        }
        Assert.Equal(36, TestUtil.ParameterCount(m));
    }

    [Fact]
    public void ChannelsLastMixesTokens()
    {
        using var m = new RandomMixing(6);
        var r = TestUtil.Values(m.random_matrix);
        var xs = TestUtil.DetValues(2 * 2 * 3 * 4);
        using var x = torch.tensor(xs).reshape(2, 2, 3, 4); // [B, H, W, C], N = 6
        using var y = m.forward(x);
        var expected = new float[xs.Length];
        for (int b = 0; b < 2; b++) for (int t = 0; t < 6; t++) for (int c = 0; c < 4; c++) {
            double acc = 0;
            for (int n = 0; n < 6; n++) acc += r[t * 6 + n] * xs[(b * 6 + n) * 4 + c];
            expected[(b * 6 + t) * 4 + c] = (float)acc;
        }
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void NchwAgreesWithChannelsLast()
    {
        using var m = new RandomMixing(6, useNchw: true);
        var r = TestUtil.Values(m.random_matrix);
        var xs = TestUtil.DetValues(2 * 4 * 2 * 3);
        using var x = torch.tensor(xs).reshape(2, 4, 2, 3); // [B, C, H, W]
        using var y = m.forward(x);
        var expected = new float[xs.Length];
        for (int b = 0; b < 2; b++) for (int c = 0; c < 4; c++) for (int t = 0; t < 6; t++) {
            double acc = 0;
            for (int n = 0; n < 6; n++) acc += r[t * 6 + n] * xs[(b * 4 + c) * 6 + n];
            expected[(b * 4 + c) * 6 + t] = (float)acc;
        }
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void BackwardReachesInputNotMatrix()
    {
        using var m = new RandomMixing(4);
        using var scope = torch.NewDisposeScope();
        var x = TestUtil.Det(new long[] { 1, 2, 2, 3 }).requires_grad_(true);
        m.forward(x).sum().backward();
        Assert.NotNull(x.grad);
        Assert.Null(m.random_matrix.grad);
        TestUtil.AssertForwardLeavesOnlyResult(m, x.detach());
    }
}
