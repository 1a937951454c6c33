using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class LayerNorm2dNoBiasTests
{
    [Fact]
    public void NormalizesOverChannelsWithWeightOnly()
    {
        using var m = new LayerNorm2dNoBias(3);
        Assert.Equal(new[] { "weight [3]" }, TestUtil.KeyLines(m));
        var w = new[] { 1.5f, -0.5f, 2f };
        TestUtil.Set(m.weight, w);
        var xs = TestUtil.DetValues(2 * 3 * 2 * 2, scale: 1e-3);
        using var x = torch.tensor(xs).reshape(2, 3, 2, 2);
        using var y = m.forward(x);
        var expected = TestUtil.RowsToNchw(TestUtil.LayerNormRef(TestUtil.NchwToRows(xs, 2, 3, 2, 2), 8, 3, w, null, 1e-6), 2, 3, 2, 2);
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new LayerNorm2dNoBias(4);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
