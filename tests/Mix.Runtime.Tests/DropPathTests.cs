using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class DropPathTests
{
    [Fact]
    public void IdentityInEvalAndAtZero()
    {
        using var x = TestUtil.Det(new long[] { 4, 3, 2 });
        using var dp = new DropPath(0.7);
        dp.eval();
        using (var y = dp.forward(x)) Assert.Equal(TestUtil.Values(x), TestUtil.Values(y));
        using var zero = new DropPath(0.0);
        using (var y = zero.forward(x)) Assert.Equal(TestUtil.Values(x), TestUtil.Values(y));
        Assert.Empty(TestUtil.Keys(dp));
    }

    [Theory]
    [InlineData(true, 2f)]
    [InlineData(false, 1f)]
    public void DropsWholeSamplesAndScalesSurvivors(bool scaleByKeep, float kept)
    {
        using var dp = new DropPath(0.5, scaleByKeep);
        dp.train();
        using var x = torch.ones(2000, 3, 2);
        using var y = dp.forward(x);
        var v = TestUtil.Values(y);
        int dropped = 0;
        for (int s = 0; s < 2000; s++) {
            var row = v.Skip(s * 6).Take(6).ToArray();
            Assert.True(row.All(e => e == row[0]), "a sample must be kept or dropped as a whole");
            Assert.True(row[0] == 0f || row[0] == kept, $"unexpected value {row[0]}");
            if (row[0] == 0f) dropped++;
        }
        Assert.InRange(dropped, 850, 1150);
    }

    [Fact]
    public void ProbabilityOneDropsEverything()
    {
        using var dp = new DropPath(1.0);
        dp.train();
        using var x = TestUtil.Det(new long[] { 5, 4 });
        using var y = dp.forward(x);
        Assert.All(TestUtil.Values(y), v => Assert.Equal(0f, v));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DropPath(1.5));
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var dp = new DropPath(0.3);
        dp.train();
        using var x = TestUtil.Det(new long[] { 8, 4 });
        TestUtil.AssertBackward(dp, x);
        TestUtil.AssertForwardLeavesOnlyResult(dp, x);
        dp.eval();
        TestUtil.AssertForwardLeavesOnlyResult(dp, x);
    }
}
