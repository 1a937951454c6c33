using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PoolingTests
{
    private static float[] Reference(float[] x, int b, int c, int h, int w, int k)
    {
        var y = new float[x.Length];
        int r = k / 2;
        for (int p = 0; p < b * c; p++)
        for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double sum = 0; int count = 0;
            for (int di = -r; di <= r; di++) for (int dj = -r; dj <= r; dj++) {
                int yi = i + di, xj = j + dj;
                if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue; // count_include_pad = false
                sum += x[(p * h + yi) * w + xj]; count++;
            }
            int idx = (p * h + i) * w + j;
            y[idx] = (float)(sum / count - x[idx]);
        }
        return y;
    }

    [Fact]
    public void HandValuesOnA3x3Map()
    {
        using var m = new Pooling();
        using var x = torch.arange(1, 10, dtype: ScalarType.Float32).reshape(1, 1, 3, 3);
        using var y = m.forward(x);
        // corner (0,0): avg(1,2,4,5) = 3 -> 3 - 1 = 2; centre: avg(1..9) = 5 -> 0; edge (0,1): avg(1,2,3,4,5,6) = 3.5 -> 1.5
        var v = TestUtil.Values(y);
        Assert.Equal(2f, v[0], 5);
        Assert.Equal(1.5f, v[1], 5);
        Assert.Equal(0f, v[4], 5);
        Assert.Empty(TestUtil.Keys(m));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void MatchesLoops(int poolSize)
    {
        using var m = new Pooling(poolSize);
        var xs = TestUtil.DetValues(2 * 3 * 4 * 5);
        using var x = torch.tensor(xs).reshape(2, 3, 4, 5);
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 3, 4, 5 }, y.shape);
        TestUtil.AssertClose(Reference(xs, 2, 3, 4, 5, poolSize), TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new Pooling();
        using var x = TestUtil.Det(new long[] { 2, 4, 5, 5 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
