using System;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Scans.ScanData;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// fft_conv and causal_conv1d against plain-loop sums written here (fp32, tolerance 2e-5 relative to 1 + |y|), their
/// decode steps against the full forward (1e-5), autograd.
/// </summary>
public class ConvScanTests
{
    /// <summary>y[b, d, t] = Σ_s k[d, s] u[b, d, t − s + shift], zero outside the sequence.</summary>
    private static float[] NaiveConv(Tensor ut, Tensor kt, int shift)
    {
        var u = F(ut); var k = F(kt);
        long B = ut.shape[0], D = ut.shape[1], L = ut.shape[2], Lk = kt.shape[^1];
        bool perSample = kt.dim() == 3;
        var y = new float[B * D * L];
        for (long b = 0; b < B; b++)
        for (long d = 0; d < D; d++)
        for (long t = 0; t < L; t++)
        {
            double acc = 0;
            for (long s = 0; s < Lk; s++)
            {
                long i = t - s + shift;
                if (i < 0 || i >= L) continue;
                acc += k[((perSample ? b * D : 0) + d) * Lk + s] * u[(b * D + d) * L + i];
            }
            y[(b * D + d) * L + t] = (float)acc;
        }
        return y;
    }

    [Theory]
    [InlineData(1, 3, 7, 7)]     // batch 1, filter as long as the sequence (Hyena)
    [InlineData(2, 4, 13, 5)]    // short filter, odd length
    [InlineData(3, 2, 16, 1)]    // one tap
    public void CausalFftConvMatchesTheSum(int b, int d, int L, int Lk)
    {
        var u = Det(1, 1.0, b, d, L);
        var k = Det(2, 0.5, d, Lk);
        Close(NaiveConv(u, k, 0), FftConv.Reference(u, k), 2e-5, "y");
        Close(NaiveConv(u, k, 0), FftConv.Scan(u, k), 2e-5, "dispatch y");
        var kb = Det(3, 0.5, b, d, Lk);
        Close(NaiveConv(u, kb, 0), FftConv.Reference(u, kb), 2e-5, "per-sample filter");
    }

    [Theory]
    [InlineData(1, 3, 7, 13)]    // the longest centred filter, 2L − 1
    [InlineData(2, 2, 10, 5)]
    public void BidirectionalFftConvIsCentred(int b, int d, int L, int Lk)
    {
        var u = Det(4, 1.0, b, d, L);
        var k = Det(5, 0.5, d, Lk);
        Close(NaiveConv(u, k, (Lk - 1) / 2), FftConv.Scan(u, k, causal: false), 2e-5, "y");
    }

    [Fact]
    public void FftConvDecodeStepsEqualTheFullForward()
    {
        var u = Det(6, 1.0, 2, 3, 11);
        var k = Det(7, 0.5, 3, 5);
        var y = FftConv.Reference(u, k);
        var history = FftConv.History(u.narrow(2, 0, 3), 5);
        for (long t = 3; t < 11; t++)
        {
            var (yt, next) = FftConv.Step(history, u.select(2, t), k);
            Close(y.select(2, t), yt, 1e-5, $"step {t}");
            history = next;
        }
    }

    [Fact]
    public void FftConvHasGradients()
    {
        var inputs = new[] { Det(8, 1.0, 2, 3, 9), Det(9, 0.5, 3, 9) };
        SameGradients(
            t => (FftConv.Reference(t[0], t[1]) * Det(10, 1.0, 2, 3, 9)).sum(),
            t => (CausalConv1d.Reference(t[0], t[1].flip(-1)).y * Det(10, 1.0, 2, 3, 9)).sum(),
            inputs, 1e-4);
    }

    /// <summary>Dao's causal_conv1d: y = act(bias + Σ_j w[d, j] · x[t − (W−1) + j]), state before t = 0.</summary>
    private static (float[] y, float[] state) NaiveCausal(Tensor xt, Tensor wt, Tensor? biast, bool silu, Tensor? s0t)
    {
        var x = F(xt); var w = F(wt); var bias = biast is null ? null : F(biast); var s0 = s0t is null ? null : F(s0t);
        long B = xt.shape[0], D = xt.shape[1], L = xt.shape[2], W = wt.shape[^1];
        var y = new float[B * D * L];
        var state = new float[B * D * (W - 1)];
        double At(long b, long d, long i) =>
            i >= 0 ? x[(b * D + d) * L + i] : s0?[(b * D + d) * (W - 1) + (W - 1) + i] ?? 0.0;
        for (long b = 0; b < B; b++)
        for (long d = 0; d < D; d++)
        {
            for (long t = 0; t < L; t++)
            {
                double acc = bias?[d] ?? 0.0;
                for (long j = 0; j < W; j++) acc += w[d * W + j] * At(b, d, t - (W - 1) + j);
                y[(b * D + d) * L + t] = (float)(silu ? Silu(acc) : acc);
            }
            for (long j = 0; j < W - 1; j++) state[(b * D + d) * (W - 1) + j] = (float)At(b, d, L - (W - 1) + j);
        }
        return (y, state);
    }

    [Theory]
    [InlineData(1, 3, 7, 4, true, true, true)]
    [InlineData(2, 5, 2, 4, false, false, false)]    // shorter than the filter: the state keeps older inputs
    [InlineData(3, 2, 9, 1, true, false, true)]      // one tap, empty state
    [InlineData(2, 4, 11, 3, false, true, false)]
    public void CausalConv1dMatchesTheSum(int b, int d, int L, int W, bool withBias, bool withState, bool silu)
    {
        var x = Det(11, 1.0, b, d, L);
        var w = Det(12, 0.7, d, W);
        var bias = withBias ? Det(13, 0.3, d) : null;
        var s0 = withState ? Det(14, 1.0, b, d, W - 1) : null;
        var (y, state) = NaiveCausal(x, w, bias, silu, s0);
        var act = silu ? "silu" : null;
        var (yr, sr) = CausalConv1d.Reference(x, w, bias, act, s0);
        Close(y, yr, 2e-5, "y");
        Close(state, sr, 0, "state");
        var (yf, sf) = CausalConv1d.Forward(x, w.unsqueeze(1), bias, act, s0);  // Conv1d's [d, 1, W] layout too
        Close(y, yf, 2e-5, "dispatch y");
        Close(state, sf, 0, "dispatch state");
    }

    [Fact]
    public void CausalConv1dDecodeStepsEqualTheFullForward()
    {
        var x = Det(15, 1.0, 2, 3, 10);
        var w = Det(16, 0.7, 3, 4);
        var bias = Det(17, 0.3, 3);
        var (y, finalState) = CausalConv1d.Reference(x, w, bias, "silu");
        var (_, state) = CausalConv1d.Reference(x.narrow(2, 0, 2), w, bias, "silu");
        for (long t = 2; t < 10; t++)
        {
            var (yt, next) = CausalConv1d.Step(state, x.select(2, t), w, bias, "swish");
            Close(y.select(2, t), yt, 1e-5, $"step {t}");
            state = next;
        }
        Close(finalState, state, 0, "final state");
    }

    [Fact]
    public void CausalConv1dRejectsAnUnknownActivation()
    {
        var e = Assert.Throws<ArgumentException>(() => CausalConv1d.Reference(Det(1, 1, 1, 2, 3), Det(2, 1, 2, 2), null, "gelu"));
        Assert.Contains("gelu", e.Message);
    }
}
