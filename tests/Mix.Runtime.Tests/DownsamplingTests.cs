using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class DownsamplingTests
{
    [Fact]
    public void Conv3Stride2Pad1MatchesLoops()
    {
        using var m = new Downsampling(2, 3, kernelSize: 3, stride: 2, padding: 1);
        Assert.Equal(new[] { "conv.weight [3,2,3,3]", "conv.bias [3]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(2 * 2 * 5 * 5);
        using var x = torch.tensor(xs).reshape(2, 2, 5, 5);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 3, 3, 3 }, y.shape);
        var expected = TestUtil.Conv2dRef(xs, 2, 2, 5, 5, TestUtil.Values(m.conv.weight), 3, 3, 2, 1, 1, TestUtil.Values(m.conv.bias!));
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void NormComesBeforeConvOnInputChannels()
    {
        using var m = new Downsampling(2, 3, kernelSize: 3, stride: 2, padding: 1, normLayer: c => new LayerNorm2dNoBias(c));
        Assert.Equal(new[] { "norm.weight [2]", "conv.weight [3,2,3,3]", "conv.bias [3]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(1 * 2 * 4 * 4);
        using var x = torch.tensor(xs).reshape(1, 2, 4, 4);
        using var y = m.forward(x);
        var normed = TestUtil.RowsToNchw(TestUtil.LayerNormRef(TestUtil.NchwToRows(xs, 1, 2, 4, 4), 16, 2, null, null, 1e-6), 1, 2, 4, 4);
        var expected = TestUtil.Conv2dRef(normed, 1, 2, 4, 4, TestUtil.Values(m.conv.weight), 3, 3, 2, 1, 1, TestUtil.Values(m.conv.bias!));
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new Downsampling(4, 8, 3, 2, 1, normLayer: c => new LayerNorm2dNoBias(c));
        using var x = TestUtil.Det(new long[] { 2, 4, 8, 8 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
