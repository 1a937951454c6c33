using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class RMSNormTests
{
    [Fact]
    public void DividesByRootMeanSquare()
    {
        using var m = new RMSNorm(2);
        Assert.Equal(new[] { "weight [2]" }, TestUtil.KeyLines(m));
        TestUtil.Set(m.weight, new[] { 1f, 2f });
        // [3, 4]: mean square 12.5 -> [3, 4] / sqrt(12.5 + 1e-6), times weight [1, 2]
        using var x = torch.tensor(new[] { 3f, 4f });
        using var y = m.forward(x);
        double r = Math.Sqrt(12.5 + 1e-6);
        TestUtil.AssertClose(new[] { (float)(3 / r), (float)(8 / r) }, TestUtil.Values(y), 1e-6);
    }

    [Fact]
    public void ComputesInFloat32ForHalfInput()
    {
        using var m = new RMSNorm(4, dtype: ScalarType.BFloat16);
        using var x = torch.tensor(new[] { 1f, -2f, 3f, -4f }).to_type(ScalarType.BFloat16);
        using var y = m.forward(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        double r = Math.Sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
        TestUtil.AssertClose(new[] { (float)(1 / r), (float)(-2 / r), (float)(3 / r), (float)(-4 / r) }, TestUtil.Values(y), 1e-2);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new RMSNorm(4);
        using var x = TestUtil.Det(new long[] { 2, 3, 4 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
