using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class GroupNorm1Tests
{
    /// <summary>Normalize each sample over all C·H·W values, then per-channel affine.</summary>
    internal static float[] Reference(float[] x, int b, int c, int hw, float[]? w, float[]? bias, double eps)
    {
        var y = new float[x.Length];
        int per = c * hw;
        for (int n = 0; n < b; n++) {
            double mean = 0, var = 0;
            for (int i = 0; i < per; i++) mean += x[n * per + i];
            mean /= per;
            for (int i = 0; i < per; i++) var += Math.Pow(x[n * per + i] - mean, 2);
            var /= per;
            for (int ch = 0; ch < c; ch++) for (int i = 0; i < hw; i++) {
                int idx = n * per + ch * hw + i;
                y[idx] = (float)((x[idx] - mean) / Math.Sqrt(var + eps) * (w?[ch] ?? 1.0) + (bias?[ch] ?? 0.0));
            }
        }
        return y;
    }

    [Fact]
    public void NormalizesEachSampleOverAllChannelsWithEps1e5()
    {
        using var m = new GroupNorm1(3);
        Assert.Equal(new[] { "weight [3]", "bias [3]" }, TestUtil.KeyLines(m));
        var w = new[] { 1.5f, -0.5f, 2f };
        var b = new[] { 0.1f, 0.2f, -0.3f };
        TestUtil.Set(m.weight!, w);
        TestUtil.Set(m.bias!, b);
        // Small-amplitude input (variance ~1e-6) so that the default eps (1e-5, timm/nn.GroupNorm) matters.
        var xs = TestUtil.DetValues(2 * 3 * 2 * 2, scale: 1e-3);
        using var x = torch.tensor(xs).reshape(2, 3, 2, 2);
        using var y = m.forward(x);
        TestUtil.AssertClose(Reference(xs, 2, 3, 4, w, b, 1e-5), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void NotAffineHasNoKeys()
    {
        using var m = new GroupNorm1(3, affine: false);
        Assert.Empty(TestUtil.Keys(m));
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new GroupNorm1(4);
        using var x = TestUtil.Det(new long[] { 2, 4, 3, 3 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
