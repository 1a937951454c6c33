using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class StarReLUTests
{
    [Fact]
    public void ComputesScaleTimesSquaredReluPlusBias()
    {
        using var m = new StarReLU();
        TestUtil.Set(m.scale, new[] { 2f });
        TestUtil.Set(m.bias, new[] { 0.1f });
        using var x = torch.tensor(new[] { -2f, -0.5f, 0f, 0.5f, 3f });
        using var y = m.forward(x);
        // 2 * relu(x)^2 + 0.1
        TestUtil.AssertClose(new[] { 0.1f, 0.1f, 0.1f, 0.6f, 18.1f }, TestUtil.Values(y));
    }

    [Fact]
    public void DefaultsAndKeys()
    {
        using var m = new StarReLU();
        Assert.Equal(new[] { "scale [1]", "bias [1]" }, TestUtil.KeyLines(m));
        Assert.Equal(new[] { 1f }, TestUtil.Values(m.scale));
        Assert.Equal(new[] { 0f }, TestUtil.Values(m.bias));
        Assert.True(m.scale.requires_grad);
        Assert.True(m.bias.requires_grad);

        using var custom = new StarReLU(scaleValue: 0.8944, biasValue: -0.4472, scaleLearnable: false, biasLearnable: false);
        TestUtil.AssertClose(new[] { 0.8944f }, TestUtil.Values(custom.scale));
        TestUtil.AssertClose(new[] { -0.4472f }, TestUtil.Values(custom.bias));
        Assert.False(custom.scale.requires_grad);
        Assert.False(custom.bias.requires_grad);
    }

    [Fact]
    public void GradientsOfScaleAndBiasAreHandComputable()
    {
        using var m = new StarReLU();
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new[] { -2f, -0.5f, 0f, 0.5f, 3f }).requires_grad_(true);
        m.forward(x).sum().backward();
        // d/dscale = sum relu(x)^2 = 0.25 + 9; d/dbias = 5; d/dx = 2 * scale * relu(x)
        TestUtil.AssertClose(new[] { 9.25f }, TestUtil.Values(m.scale.grad!));
        TestUtil.AssertClose(new[] { 5f }, TestUtil.Values(m.bias.grad!));
        TestUtil.AssertClose(new[] { 0f, 0f, 0f, 1f, 6f }, TestUtil.Values(x.grad!));
    }

    [Fact]
    public void ForwardLeavesOnlyItsResult()
    {
        using var m = new StarReLU();
        using var x = TestUtil.Det(new long[] { 2, 3 });
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
