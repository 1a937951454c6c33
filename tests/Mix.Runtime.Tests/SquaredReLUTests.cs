using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class SquaredReLUTests
{
    [Fact]
    public void SquaresThePositivePart()
    {
        using var m = new SquaredReLU();
        using var x = torch.tensor(new[] { -3f, -0.1f, 0f, 0.5f, 2f });
        using var y = m.forward(x);
        TestUtil.AssertClose(new[] { 0f, 0f, 0f, 0.25f, 4f }, TestUtil.Values(y));
        Assert.Empty(TestUtil.Keys(m));
    }

    [Fact]
    public void GradientIsTwiceRelu()
    {
        using var m = new SquaredReLU();
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new[] { -3f, 0.5f, 2f }).requires_grad_(true);
        m.forward(x).sum().backward();
        TestUtil.AssertClose(new[] { 0f, 1f, 4f }, TestUtil.Values(x.grad!));
    }

    [Fact]
    public void ForwardLeavesOnlyItsResult()
    {
        using var m = new SquaredReLU();
        using var x = TestUtil.Det(new long[] { 4, 5 });
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
