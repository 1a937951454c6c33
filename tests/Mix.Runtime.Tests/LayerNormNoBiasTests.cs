using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class LayerNormNoBiasTests
{
    [Fact]
    public void NormalizesTheLastDimWithWeightOnly()
    {
        using var m = new LayerNormNoBias(4);
        Assert.Equal(new[] { "weight [4]" }, TestUtil.KeyLines(m));
        var w = new[] { 1f, 2f, -1f, 0.5f };
        TestUtil.Set(m.weight, w);
        var xs = TestUtil.DetValues(3 * 4, scale: 1e-3);
        using var x = torch.tensor(xs).reshape(1, 3, 4);
        using var y = m.forward(x);
        TestUtil.AssertClose(TestUtil.LayerNormRef(xs, 3, 4, w, null, 1e-6), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void HandValues()
    {
        using var m = new LayerNormNoBias(2);
        // [1, 3]: mean 2, var 1 -> [-1, 1] / sqrt(1 + 1e-6)
        using var x = torch.tensor(new[] { 1f, 3f });
        using var y = m.forward(x);
        TestUtil.AssertClose(new[] { -0.9999995f, 0.9999995f }, TestUtil.Values(y), 1e-6);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new LayerNormNoBias(4);
        using var x = TestUtil.Det(new long[] { 2, 5, 4 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
