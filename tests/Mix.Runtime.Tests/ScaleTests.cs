using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class ScaleTests
{
    [Fact]
    public void NchwScalesEachChannel()
    {
        using var m = new Scale(2, initValue: 1e-5);
        Assert.Equal(new[] { "scale [2]" }, TestUtil.KeyLines(m));
        TestUtil.AssertClose(new[] { 1e-5f, 1e-5f }, TestUtil.Values(m.scale));
        TestUtil.Set(m.scale, new[] { 2f, -3f });
        var xs = new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }; // [1, 2, 2, 2]
        using var x = torch.tensor(xs).reshape(1, 2, 2, 2);
        using var y = m.forward(x);
        TestUtil.AssertClose(new float[] { 2, 4, 6, 8, -15, -18, -21, -24 }, TestUtil.Values(y));
        Assert.Equal(new long[] { 1, 2, 2, 2 }, y.shape);
    }

    [Fact]
    public void ChannelsLastScalesTheLastDim()
    {
        using var m = new Scale(3, useNchw: false);
        TestUtil.Set(m.scale, new[] { 1f, 10f, 100f });
        using var x = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(2, 3);
        using var y = m.forward(x);
        TestUtil.AssertClose(new float[] { 1, 20, 300, 4, 50, 600 }, TestUtil.Values(y));
    }

    [Fact]
    public void TrainableFlagAndBackward()
    {
        using var frozen = new Scale(4, trainable: false);
        Assert.False(frozen.scale.requires_grad);
        using var m = new Scale(4, initValue: 0.5);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
