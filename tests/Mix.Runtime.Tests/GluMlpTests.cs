using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class GluMlpTests
{
    private static float[] Expected(GluMlp m, float[] xs, int rows, bool gateLast)
    {
        var h = TestUtil.LinearRef(xs, rows, 2, TestUtil.Values(((TorchSharp.Modules.Linear)m.fc1).weight), 4,
            TestUtil.Values(((TorchSharp.Modules.Linear)m.fc1).bias!));
        var g = new float[rows * 2];
        for (int r = 0; r < rows; r++) for (int i = 0; i < 2; i++) {
            double x1 = h[r * 4 + i], x2 = h[r * 4 + 2 + i];
            g[r * 2 + i] = (float)(gateLast ? x1 * TestUtil.Sigmoid(x2) : TestUtil.Sigmoid(x1) * x2);
        }
        var fc2 = (TorchSharp.Modules.Linear)m.fc2;
        return TestUtil.LinearRef(g, rows, 2, TestUtil.Values(fc2.weight), 3, TestUtil.Values(fc2.bias!));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void GatesOneHalfWithSigmoidOfTheOther(bool gateLast)
    {
        using var m = new GluMlp(2, 4, 3, gateLast: gateLast);
        Assert.Equal(new[] { "fc1.weight [4,2]", "fc1.bias [4]", "fc2.weight [3,2]", "fc2.bias [3]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(5 * 2);
        using var x = torch.tensor(xs).reshape(5, 2);
        using var y = m.forward(x);
        TestUtil.AssertClose(Expected(m, xs, 5, gateLast), TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void ConvVariantSplitsChannels()
    {
        using var m = new GluMlp(4, 8, useConv: true);
        Assert.Equal(new[] { "fc1.weight [8,4,1,1]", "fc1.bias [8]", "fc2.weight [4,4,1,1]", "fc2.bias [4]" }, TestUtil.KeyLines(m));
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 4, 3, 3 }, y.shape);
        Assert.Throws<ArgumentException>(() => new GluMlp(4, 7));
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new GluMlp(4, 8);
        using var x = TestUtil.Det(new long[] { 3, 4 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
