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
    public void BackwardAndNoLeak()
    {
        using var m = new Mlp(4, 16, actLayer: () => new StarReLU(), useConv: true, drop: 0.1);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        m.eval();
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
