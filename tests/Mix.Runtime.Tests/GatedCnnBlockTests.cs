using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class GatedCnnBlockTests
{
    [Fact]
    public void KeysAsMambaOut()
    {
        using var m = new GatedCnnBlock(4); // hidden = int(8/3 · 4) = 10
        Assert.Equal(new[] {
            "norm.weight [4]", "norm.bias [4]", "fc1.weight [20,4]", "fc1.bias [20]",
            "conv.weight [4,1,7,7]", "conv.bias [4]", "fc2.weight [4,10]", "fc2.bias [4]" }, TestUtil.KeyLines(m));
        Assert.IsType<GELU>(m.act);
        Assert.IsType<Identity>(m.drop_path);
    }

    [Fact]
    public void GateTimesIdentityAndConvPartsPlusShortcutMatchLoops()
    {
        // dim 2, hidden 4, conv channels 1: fc1 → [g(4) | i(3) | c(1)], kernel 3.
        using var m = new GatedCnnBlock(2, expansionRatio: 2, kernelSize: 3, convRatio: 0.5, actLayer: () => nn.ReLU());
        var ln = Assert.IsType<LayerNorm>(m.norm);
        var lnW = TestUtil.DetValues(2, salt: 1);
        var lnB = TestUtil.DetValues(2, salt: 2);
        TestUtil.Set(ln.weight!, lnW);
        TestUtil.Set(ln.bias!, lnB);
        const int H = 2, W = 3, N = H * W;
        var xs = TestUtil.DetValues(N * 2);
        using var x = torch.tensor(xs).reshape(1, H, W, 2);
        using var y = m.forward(x);

        var normed = TestUtil.LayerNormRef(xs, N, 2, lnW, lnB, 1e-6);
        var f = TestUtil.LinearRef(normed, N, 2, TestUtil.Values(m.fc1.weight), 8, TestUtil.Values(m.fc1.bias!));
        var cIn = Enumerable.Range(0, N).Select(t => f[t * 8 + 7]).ToArray(); // [1, 1, H, W]
        var cOut = TestUtil.Conv2dRef(cIn, 1, 1, H, W, TestUtil.Values(m.conv.weight), 1, 3, 1, 1, 1, TestUtil.Values(m.conv.bias!));
        var gated = new float[N * 4];
        for (int t = 0; t < N; t++) for (int j = 0; j < 4; j++) {
            float other = j < 3 ? f[t * 8 + 4 + j] : cOut[t];
            gated[t * 4 + j] = Math.Max(f[t * 8 + j], 0f) * other;
        }
        var outp = TestUtil.LinearRef(gated, N, 4, TestUtil.Values(m.fc2.weight), 2, TestUtil.Values(m.fc2.bias!));
        TestUtil.AssertClose(outp.Select((v, i) => v + xs[i]).ToArray(), TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new GatedCnnBlock(6, dropPath: 0.1);
        Assert.IsType<DropPath>(m.drop_path);
        using var x = TestUtil.Det(new long[] { 2, 5, 5, 6 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
