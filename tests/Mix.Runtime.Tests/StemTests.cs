using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class StemTests
{
    [Fact]
    public void Conv7Stride4Pad2MatchesLoops()
    {
        using var m = new Stem(2, 3);
        Assert.Equal(new[] { "conv.weight [3,2,7,7]", "conv.bias [3]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(1 * 2 * 9 * 9);
        using var x = torch.tensor(xs).reshape(1, 2, 9, 9);
        using var y = m.forward(x);
        // floor((9 + 4 - 7) / 4) + 1 = 2
        Assert.Equal(new long[] { 1, 3, 2, 2 }, y.shape);
        var expected = TestUtil.Conv2dRef(xs, 1, 2, 9, 9, TestUtil.Values(m.conv.weight), 3, 7, 4, 2, 1, TestUtil.Values(m.conv.bias!));
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void ImageNetShapeAndNormKeys()
    {
        using var m = new Stem(3, 64, normLayer: c => new LayerNorm2dNoBias(c));
        Assert.Equal(new[] { "conv.weight [64,3,7,7]", "conv.bias [64]", "norm.weight [64]" }, TestUtil.KeyLines(m));
        using var x = torch.zeros(1, 3, 224, 224);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 1, 64, 56, 56 }, y.shape);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new Stem(3, 8, normLayer: c => new LayerNorm2d(c));
        using var x = TestUtil.Det(new long[] { 2, 3, 16, 16 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
