using System;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class AttentionTests
{
    /// <summary>Multi-head softmax attention with plain loops; qkv columns are ordered (3, heads, headDim) as in timm.</summary>
    private static float[] Reference(float[] x, int n, int dim, float[] wqkv, float[] wproj, int heads, int hd)
    {
        int a = heads * hd;
        var qkv = TestUtil.LinearRef(x, n, dim, wqkv, 3 * a);
        var o = new float[n * a];
        double scale = 1.0 / Math.Sqrt(hd);
        for (int h = 0; h < heads; h++)
        for (int i = 0; i < n; i++) {
            var s = new double[n];
            double max = double.NegativeInfinity;
            for (int j = 0; j < n; j++) {
                double dot = 0;
                for (int d = 0; d < hd; d++) dot += qkv[i * 3 * a + 0 * a + h * hd + d] * qkv[j * 3 * a + 1 * a + h * hd + d];
                s[j] = dot * scale;
                max = Math.Max(max, s[j]);
            }
            double z = 0;
            for (int j = 0; j < n; j++) { s[j] = Math.Exp(s[j] - max); z += s[j]; }
            for (int d = 0; d < hd; d++) {
                double acc = 0;
                for (int j = 0; j < n; j++) acc += s[j] / z * qkv[j * 3 * a + 2 * a + h * hd + d];
                o[i * a + h * hd + d] = (float)acc;
            }
        }
        return TestUtil.LinearRef(o, n, a, wproj, dim);
    }

    [Fact]
    public void MatchesLoops()
    {
        using var m = new Attention(4, headDim: 2);
        Assert.Equal(2, m.NumHeads);
        Assert.Equal(new[] { "qkv.weight [12,4]", "proj.weight [4,4]" }, TestUtil.KeyLines(m));
        var xs = TestUtil.DetValues(2 * 5 * 4);
        using var x = torch.tensor(xs).reshape(2, 5, 4);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 5, 4 }, y.shape);
        var wq = TestUtil.Values(((Linear)m.qkv).weight);
        var wp = TestUtil.Values(((Linear)m.proj).weight);
        var expected = new float[xs.Length];
        for (int b = 0; b < 2; b++) {
            var r = Reference(xs[(b * 20)..(b * 20 + 20)], 5, 4, wq, wp, 2, 2);
            Array.Copy(r, 0, expected, b * 20, 20);
        }
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void HeadCountsAndKeysAsTimm()
    {
        using var a320 = new Attention(320);
        Assert.Equal(10, a320.NumHeads);
        Assert.Equal(new[] { "qkv.weight [960,320]", "proj.weight [320,320]" }, TestUtil.KeyLines(a320));
        using var small = new Attention(16); // 16 / 32 = 0 heads -> 1 head of 32
        Assert.Equal(1, small.NumHeads);
        Assert.Equal(new[] { "qkv.weight [96,16]", "proj.weight [16,32]" }, TestUtil.KeyLines(small));
        using var biased = new Attention(64, numHeads: 4, qkvBias: true, projBias: true);
        Assert.Equal(new[] { "qkv.weight [384,64]", "qkv.bias [384]", "proj.weight [64,128]", "proj.bias [64]" }, TestUtil.KeyLines(biased));
        using var x = TestUtil.Det(new long[] { 1, 3, 64 });
        using var y = biased.forward(x);
        Assert.Equal(new long[] { 1, 3, 64 }, y.shape);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new Attention(8, headDim: 4, attnDrop: 0.1, projDrop: 0.1);
        using var x = TestUtil.Det(new long[] { 2, 6, 8 });
        TestUtil.AssertBackward(m, x);
        m.eval();
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
