using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MlpHeadTests
{
    [Fact]
    public void Fc1SquaredReluLayerNormFc2()
    {
        using var m = new MlpHead(2, numClasses: 3);
        Assert.Equal(new[] { "fc1.weight [8,2]", "fc1.bias [8]", "norm.weight [8]", "norm.bias [8]", "fc2.weight [3,8]", "fc2.bias [3]" },
            TestUtil.KeyLines(m));
        Assert.IsType<SquaredReLU>(m.act);
        var ln = Assert.IsType<LayerNorm>(m.norm);
        TestUtil.Set(ln.weight!, TestUtil.DetValues(8, salt: 1));
        TestUtil.Set(ln.bias!, TestUtil.DetValues(8, salt: 2));
        var xs = TestUtil.DetValues(3 * 2);
        using var x = torch.tensor(xs).reshape(3, 2);
        using var y = m.forward(x);
        var h = TestUtil.LinearRef(xs, 3, 2, TestUtil.Values(m.fc1.weight), 8, TestUtil.Values(m.fc1.bias!))
            .Select(v => v > 0 ? v * v : 0f).ToArray();
        h = TestUtil.LayerNormRef(h, 3, 8, TestUtil.Values(ln.weight!), TestUtil.Values(ln.bias!), 1e-6);
        TestUtil.AssertClose(TestUtil.LinearRef(h, 3, 8, TestUtil.Values(m.fc2.weight), 3, TestUtil.Values(m.fc2.bias!)), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new MlpHead(8, numClasses: 5, dropRate: 0.2);
        using var x = TestUtil.Det(new long[] { 2, 8 });
        TestUtil.AssertBackward(m, x);
        m.eval();
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
