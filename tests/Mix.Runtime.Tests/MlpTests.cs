using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MlpTests
{
    private static float[] W(nn.Module<Tensor, Tensor> layer)
        => TestUtil.Values(layer.named_parameters().First(p => p.name == "weight").parameter);

    private static float[]? B(nn.Module<Tensor, Tensor> layer)
    {
        var b = layer.named_parameters().FirstOrDefault(p => p.name == "bias").parameter;
        return b is null ? null : TestUtil.Values(b);
    }

    [Fact]
    public void LinearMlpMatchesLoops()
    {
        using var m = new Mlp(2, 3, 2, actLayer: () => nn.ReLU());
        Assert.Equal(new[] { "fc1.weight [3,2]", "fc1.bias [3]", "fc2.weight [2,3]", "fc2.bias [2]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(4 * 2);
        using var x = torch.tensor(xs).reshape(4, 2);
        using var y = m.forward(x);
        var h = TestUtil.LinearRef(xs, 4, 2, W(m.fc1), 3, B(m.fc1)).Select(v => Math.Max(v, 0f)).ToArray();
        TestUtil.AssertClose(TestUtil.LinearRef(h, 4, 3, W(m.fc2), 2, B(m.fc2)), TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void ConvMlpActsPerPixelWith1x1Weights()
    {
        using var m = new Mlp(2, 8, actLayer: () => nn.ReLU(), bias: false, useConv: true);
        Assert.Equal(new[] { "fc1.weight [8,2,1,1]", "fc2.weight [2,8,1,1]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(1 * 2 * 3 * 3);
        using var x = torch.tensor(xs).reshape(1, 2, 3, 3);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 1, 2, 3, 3 }, y.shape);
        var rows = TestUtil.NchwToRows(xs, 1, 2, 3, 3);
        var h = TestUtil.LinearRef(rows, 9, 2, W(m.fc1), 8).Select(v => Math.Max(v, 0f)).ToArray();
        var expected = TestUtil.RowsToNchw(TestUtil.LinearRef(h, 9, 8, W(m.fc2), 2), 1, 2, 3, 3);
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void DefaultActivationIsGeluAndStarReluAddsKeys()
    {
        using var gelu = new Mlp(4);
        Assert.IsType<GELU>(gelu.act);
        Assert.IsType<Identity>(gelu.norm);
        using var star = new Mlp(4, 16, actLayer: () => new StarReLU(), bias: false, useConv: true,
            normLayer: c => new LayerNorm2dNoBias(c));
        Assert.Equal(new[] { "fc1.weight [16,4,1,1]", "act.scale [1]", "act.bias [1]", "norm.weight [16]", "fc2.weight [4,16,1,1]" },
            TestUtil.KeyLines(star));
    }

    [Fact]
    public void LastStageShapeOnChannelsLastInputRuns()
    {
        // Regression: libtorch-cpu's oneDNN 1x1 conv dies with SIGFPE on this input (512 -> 2048, 7x7, channels-last)
        // on some hosts; Mlp evaluates its 1x1 convs as a GEMM instead.
        using var m = new Mlp(512, 2048, bias: false, useConv: true);
        using var scope = torch.NewDisposeScope();
        var x = TestUtil.Det(new long[] { 1, 512, 7, 7 }).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        var y = m.forward(x);
        Assert.Equal(new long[] { 1, 512, 7, 7 }, y.shape);
        // spot-check one output against loops: pixel (0, 0), channel 0
        var xs = TestUtil.Values(x);
        var w1 = TestUtil.Values(((Conv2d)m.fc1).weight);
        var w2 = TestUtil.Values(((Conv2d)m.fc2).weight);
        double acc = 0;
        for (int hId = 0; hId < 2048; hId++) {
            double pre = 0;
            for (int i = 0; i < 512; i++) pre += w1[hId * 512 + i] * xs[i * 49];
            double gelu = 0.5 * pre * (1 + Erf(pre / Math.Sqrt(2)));
            acc += w2[hId] * gelu;
        }
        Assert.Equal(acc, TestUtil.Values(y)[0], 3);
    }

    /// <summary>Abramowitz–Stegun 7.1.26 (|error| &lt; 1.5e-7).</summary>
    private static double Erf(double x)
    {
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        double r = 1 - p * Math.Exp(-x * x);
        return x >= 0 ? r : -r;
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new Mlp(4, 16, actLayer: () => new StarReLU(), useConv: true, drop: 0.1);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        m.eval();
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
