using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class SwiGLUTests
{
    [Fact]
    public void SiluGateTimesValueThenProjection()
    {
        using var m = new SwiGLU(2, 3, 2);
        Assert.Equal(new[] { "fc1_g.weight [3,2]", "fc1_g.bias [3]", "fc1_x.weight [3,2]", "fc1_x.bias [3]", "fc2.weight [2,3]", "fc2.bias [2]" },
            TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(4 * 2);
        using var x = torch.tensor(xs).reshape(4, 2);
        using var y = m.forward(x);
        var g = TestUtil.LinearRef(xs, 4, 2, TestUtil.Values(((Linear)m.fc1_g).weight), 3, TestUtil.Values(((Linear)m.fc1_g).bias!));
        var v = TestUtil.LinearRef(xs, 4, 2, TestUtil.Values(((Linear)m.fc1_x).weight), 3, TestUtil.Values(((Linear)m.fc1_x).bias!));
        var h = new float[g.Length];
        for (int i = 0; i < h.Length; i++) h[i] = (float)(g[i] * TestUtil.Sigmoid(g[i]) * v[i]);
        TestUtil.AssertClose(TestUtil.LinearRef(h, 4, 3, TestUtil.Values(((Linear)m.fc2).weight), 2, TestUtil.Values(((Linear)m.fc2).bias!)), TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new SwiGLU(4, 8, bias: false);
        Assert.Equal(3, TestUtil.Keys(m).Count);
        using var x = TestUtil.Det(new long[] { 2, 3, 4 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
