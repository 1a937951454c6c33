using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class GroupNorm1NoBiasTests
{
    [Fact]
    public void NormalizesEachSampleWithWeightOnlyAndEps1e6()
    {
        using var m = new GroupNorm1NoBias(3);
        Assert.Equal(new[] { "weight [3]" }, TestUtil.KeyLines(m));
        var w = new[] { 1.5f, -0.5f, 2f };
        TestUtil.Set(m.weight, w);
        var xs = TestUtil.DetValues(2 * 3 * 2 * 2, scale: 1e-3);
        using var x = torch.tensor(xs).reshape(2, 3, 2, 2);
        using var y = m.forward(x);
        TestUtil.AssertClose(GroupNorm1Tests.Reference(xs, 2, 3, 4, w, null, 1e-6), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new GroupNorm1NoBias(4);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
