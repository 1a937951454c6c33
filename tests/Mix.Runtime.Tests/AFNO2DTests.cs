using System;
using System.Linq;
using System.Numerics;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class AFNO2DTests
{
    [Theory]
    [InlineData(1.0, 4)]
    [InlineData(0.5, 4)]
    [InlineData(1.0, 5)]
    public void MatchesDirectDftAndBlockMlp(double fraction, int W)
    {
        int batch = 1, H = 3, C = 4, nb = 2, bs = 2, factor = 2, hf = bs * factor, Wf = W / 2 + 1;
        double lambda = 0.05;
        using var afno = new AFNO2D(C, nb, lambda, fraction, factor);
        RandomizeParameters(afno, 31, -0.8, 0.8);
        afno.to(ScalarType.Float64);
        var x = RandomArray(new Random(32), batch * H * W * C);
        using var xt = FromArray(x, new long[] { batch, H, W, C });
        using var y = afno.forward(xt);
        Assert.Equal(xt.shape, y.shape);

        var p = ParameterArrays(afno);
        int kept = (int)(Wf * fraction);
        var spectra = new Complex[C][,];
        for (int c = 0; c < C; c++)
        {
            var grid = new double[H, W];
            for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) grid[i, j] = x[(i * W + j) * C + c];
            spectra[c] = SpectralLoops.Rfft2(grid);
        }
        var outSpectra = Enumerable.Range(0, C).Select(_ => new Complex[H, Wf]).ToArray();
        for (int i = 0; i < H; i++)
        for (int k = 0; k < kept; k++)
        {
            var v = SpectralLoops.BlockMlp(Enumerable.Range(0, C).Select(c => spectra[c][i, k]).ToArray(), nb, bs, hf,
                p["w1"], p["b1"], p["w2"], p["b2"], lambda);
            for (int c = 0; c < C; c++) outSpectra[c][i, k] = v[c];
        }
        var expected = (double[])x.Clone();
        for (int c = 0; c < C; c++)
        {
            var g = SpectralLoops.Irfft2(outSpectra[c], H, W);
            for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) expected[(i * W + j) * C + c] += g[i, j];
        }
        AssertClose(expected, ToArray(y), 1e-10, 1e-10);
    }

    [Fact]
    public void KeysTokensInputAndAutograd()
    {
        using var afno = new AFNO2D(hiddenSize: 16, numBlocks: 4, hiddenSizeFactor: 2);
        var sd = afno.state_dict();
        Assert.Equal(new[] { "b1", "b2", "w1", "w2" }, sd.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 2, 4, 4, 8 }, sd["w1"].shape);
        Assert.Equal(new long[] { 2, 4, 8 }, sd["b1"].shape);
        Assert.Equal(new long[] { 2, 4, 8, 4 }, sd["w2"].shape);
        Assert.Equal(new long[] { 2, 4, 4 }, sd["b2"].shape);
        using var x = torch.randn(2, 16, 16).requires_grad_(true);   // [B, N = 4·4, C]
        using var y = afno.forward(x);
        Assert.Equal(x.shape, y.shape);
        using var loss = y.pow(2).sum();
        loss.backward();
        Assert.NotNull(x.grad);
        Assert.All(afno.parameters(), q => Assert.NotNull(q.grad));
        Assert.Throws<ArgumentException>(() => new AFNO2D(10, 4));
    }
}
