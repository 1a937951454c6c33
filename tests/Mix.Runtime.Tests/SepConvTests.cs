using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class SepConvTests
{
    [Fact]
    public void KeysAreTimmsOneByOneConvs()
    {
        using var m = new SepConv(64);
        Assert.Equal(new[] {
            "pwconv1.weight [128,64,1,1]", "act1.scale [1]", "act1.bias [1]",
            "dwconv.weight [128,1,7,7]", "pwconv2.weight [64,128,1,1]" }, TestUtil.KeyLines(m));
    }

    [Fact]
    public void MatchesLoops()
    {
        using var m = new SepConv(2);
        var star = Assert.IsType<StarReLU>(m.act1);
        TestUtil.Set(star.scale, new[] { 0.8f });
        TestUtil.Set(star.bias, new[] { -0.2f });
        var xs = TestUtil.DetValues(2 * 2 * 4 * 3);
        using var x = torch.tensor(xs).reshape(2, 2, 4, 3);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 2, 4, 3 }, y.shape);

        var h = TestUtil.Conv2dRef(xs, 2, 2, 4, 3, TestUtil.Values(m.pwconv1.weight), 4, 1, 1, 0);
        h = h.Select(v => (float)(0.8 * Math.Pow(Math.Max(v, 0), 2) - 0.2)).ToArray();
        h = TestUtil.Conv2dRef(h, 2, 4, 4, 3, TestUtil.Values(m.dwconv.weight), 4, 7, 1, 3, groups: 4);
        var expected = TestUtil.Conv2dRef(h, 2, 4, 4, 3, TestUtil.Values(m.pwconv2.weight), 2, 1, 1, 0);
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new SepConv(4, bias: true);
        Assert.Equal(8, TestUtil.Keys(m).Count);
        using var x = TestUtil.Det(new long[] { 2, 4, 5, 5 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
