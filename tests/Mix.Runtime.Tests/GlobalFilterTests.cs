using System;
using System.Linq;
using System.Numerics;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class GlobalFilterTests
{
    [Theory]
    [InlineData(4, 5, false)]  // odd W
    [InlineData(2, 4, false)]  // even W (Nyquist column)
    [InlineData(3, 3, true)]   // [B, N, C] with N = 9
    public void MatchesDirectDft(int H, int W, bool tokens)
    {
        int batch = 2, C = 3, Wf = W / 2 + 1;
        using var gf = new GlobalFilter(C, H, Wf);
        RandomizeParameters(gf, 21, -1, 1);
        var x = RandomArray(new Random(22), batch * H * W * C);
        using var xt = FromArray(x, tokens ? new long[] { batch, H * W, C } : new long[] { batch, H, W, C });
        using var y = gf.forward(xt);
        Assert.Equal(xt.shape, y.shape);
        Assert.Equal(ScalarType.Float64, y.dtype);

        var cw = ParameterArrays(gf)["complex_weight"];   // [H, Wf, C, 2]
        var expected = new double[x.Length];
        for (int b = 0; b < batch; b++)
        for (int c = 0; c < C; c++)
        {
            var grid = new double[H, W];
            for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) grid[i, j] = x[((b * H + i) * W + j) * C + c];
            var X = SpectralLoops.Rfft2(grid);
            for (int i = 0; i < H; i++)
                for (int k = 0; k < Wf; k++)
                    X[i, k] *= new Complex(cw[((i * Wf + k) * C + c) * 2], cw[((i * Wf + k) * C + c) * 2 + 1]);
            var g = SpectralLoops.Irfft2(X, H, W);
            for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) expected[((b * H + i) * W + j) * C + c] = g[i, j];
        }
        AssertClose(expected, ToArray(y), 1e-6, 1e-6);   // weight is float32
    }

    [Fact]
    public void KeyShapeAutogradAndErrors()
    {
        using var gf = new GlobalFilter(dim: 4, h: 6, w: 4);
        Assert.Equal(new[] { "complex_weight" }, gf.state_dict().Keys.ToArray());
        Assert.Equal(new long[] { 6, 4, 4, 2 }, gf.state_dict()["complex_weight"].shape);
        using var x = torch.randn(2, 6, 6, 4).requires_grad_(true);
        using var loss = gf.forward(x).pow(2).sum();
        loss.backward();
        Assert.NotNull(x.grad);
        Assert.NotNull(gf.parameters().Single().grad);
        using var wrong = torch.randn(1, 5, 6, 4);
        Assert.Throws<ArgumentException>(() => gf.forward(wrong));
        using var notSquare = torch.randn(1, 10, 4);
        Assert.Throws<ArgumentException>(() => gf.forward(notSquare));
    }
}
