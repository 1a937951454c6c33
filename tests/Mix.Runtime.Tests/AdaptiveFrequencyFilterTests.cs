using System;
using System.Linq;
using System.Numerics;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class AdaptiveFrequencyFilterTests
{
    [Fact]
    public void MaskFromBlockMlpMultipliesTheSpectrum()
    {
        int batch = 2, C = 4, H = 3, W = 4, nb = 2, bs = 2, hf = 2, Wf = W / 2 + 1;
        double lambda = 0.01;
        using var aff = new AdaptiveFrequencyFilter(C, nb, lambda);
        RandomizeParameters(aff, 41, -1, 1);
        aff.to(ScalarType.Float64);
        var x = RandomArray(new Random(42), batch * C * H * W);
        using var xt = FromArray(x, new long[] { batch, C, H, W });
        using var y = aff.forward(xt);
        Assert.Equal(xt.shape, y.shape);

        var p = ParameterArrays(aff);
        var expected = (double[])x.Clone();
        for (int b = 0; b < batch; b++)
        {
            var spectra = new Complex[C][,];
            for (int c = 0; c < C; c++)
            {
                var grid = new double[H, W];
                for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) grid[i, j] = x[((b * C + c) * H + i) * W + j];
                spectra[c] = SpectralLoops.Rfft2(grid);
            }
            var masked = Enumerable.Range(0, C).Select(_ => new Complex[H, Wf]).ToArray();
            for (int i = 0; i < H; i++)
            for (int k = 0; k < Wf; k++)
            {
                var v = Enumerable.Range(0, C).Select(c => spectra[c][i, k]).ToArray();
                var m = SpectralLoops.BlockMlp(v, nb, bs, hf, p["w1"], p["b1"], p["w2"], p["b2"], lambda);
                for (int c = 0; c < C; c++) masked[c][i, k] = m[c] * v[c];
            }
            for (int c = 0; c < C; c++)
            {
                var g = SpectralLoops.Irfft2(masked[c], H, W);
                for (int i = 0; i < H; i++) for (int j = 0; j < W; j++) expected[((b * C + c) * H + i) * W + j] += g[i, j];
            }
        }
        AssertClose(expected, ToArray(y), 1e-10, 1e-10);
    }

    [Fact]
    public void KeysAutogradAndShapeErrors()
    {
        using var aff = new AdaptiveFrequencyFilter(hiddenSize: 8, numBlocks: 2);
        Assert.Equal(new[] { "b1", "b2", "w1", "w2" }, aff.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        using var x = torch.randn(2, 8, 5, 6).requires_grad_(true);
        using var loss = aff.forward(x).pow(2).sum();
        loss.backward();
        Assert.NotNull(x.grad);
        Assert.All(aff.parameters(), q => Assert.NotNull(q.grad));
        using var channelsLast = torch.randn(2, 5, 6, 8);
        Assert.Throws<ArgumentException>(() => aff.forward(channelsLast));
    }
}
