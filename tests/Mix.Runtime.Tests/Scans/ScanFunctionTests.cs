using System;
using Mix.Runtime.Builtins;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Scans.ScanData;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>The generated-code entry points (<c>Fn.SelectiveScan</c>, <c>Fn.SsdScan</c>, ...) compute what the runtime does.</summary>
public class ScanFunctionTests
{
    [Fact]
    public void SelectiveScanFollowsSelectiveScanFn()
    {
        long b = 2, d = 3, n = 4, L = 9;
        var u = Det(1, 1, b, d, L); var delta = Det(2, 1, b, d, L); var A = NegativeRate(3, d, n);
        var B = Det(4, 0.8, b, n, L); var C = Det(5, 0.8, b, n, L); var D = Det(6, 1, d); var z = Det(7, 1, b, d, L);
        var bias = Det(8, 0.5, d);
        var y = Fn.SelectiveScan(u, delta, A, B, C, D, z, bias, true);
        var (expected, _) = SelectiveScan.SequentialScan(u, delta, A, B, C, D, z, bias, true);
        Close(expected, y, 1e-5, "y");
    }

    [Fact]
    public void SelectiveScanPrimitiveTakesTheProcessWideAlgorithm()
    {
        long b = 2, d = 3, n = 4, L = 9;
        var u = Det(1, 1, b, d, L); var delta = Det(2, 1, b, d, L); var A = NegativeRate(3, d, n);
        var B = Det(4, 0.8, b, n, L); var C = Det(5, 0.8, b, n, L);
        var (sequential, _) = SelectiveScan.SequentialScan(u, delta, A, B, C, null, null, null, true);
        var (chunked, _) = SelectiveScan.ChunkedScan(u, delta, A, B, C, null, null, null, true, null, 4);
        var saved = (SelectiveScan.DefaultAlgorithm, SelectiveScan.DefaultChunkLength);
        try
        {
            SelectiveScan.DefaultAlgorithm = SelectiveScanAlgorithm.Sequential;
            Assert.True(sequential.eq(Fn.SelectiveScan(u, delta, A, B, C, deltaSoftplus: true)).all().item<bool>(), "sequential");
            SelectiveScan.DefaultAlgorithm = SelectiveScanAlgorithm.Chunked;
            SelectiveScan.DefaultChunkLength = 4;
            Assert.True(chunked.eq(Fn.SelectiveScanWithState(u, delta, A, B, C, deltaSoftplus: true)[0]).all().item<bool>(), "chunked");
            Assert.Throws<ArgumentOutOfRangeException>(() => SelectiveScan.DefaultChunkLength = 0);
        }
        finally
        {
            (SelectiveScan.DefaultAlgorithm, SelectiveScan.DefaultChunkLength) = saved;
        }
    }

    [Fact]
    public void SsdAndGlaReturnOutputAndState()
    {
        var x = Det(1, 1, 1, 5, 2, 3); var dt = Dt(2, 1, 5, 2); var A = NegativeRate(3, 2);
        var B = Det(4, 1, 1, 5, 1, 4); var C = Det(5, 1, 1, 5, 1, 4);
        var r = Fn.SsdScan(x, dt, A, B, C, chunkSize: 2);
        var (y, s) = SsdScan.SequentialScan(x, dt, A, B, C);
        Assert.Equal(2, r.Length);
        Close(y, r[0], 1e-5, "y");
        Close(s, r[1], 1e-5, "state");

        var q = Det(6, 1, 1, 5, 2, 3); var g = LogGate(7, 1, 5, 2, 3); var v = Det(8, 1, 1, 5, 2, 4);
        var o = Fn.GlaScan(q, q, v, g, chunkSize: 2);
        var (oe, se) = GlaScan.SequentialScan(q, q, v, g);
        Close(oe, o[0], 1e-5, "o");
        Close(se, o[1], 1e-5, "gla state");
    }

    [Fact]
    public void ConvolutionsKeepTheInputShape()
    {
        var u = Det(1, 1, 2, 3, 8);
        Assert.Equal(u.shape, Fn.FftConv(u, Det(2, 1, 3, 8)).shape);
        Assert.Equal(u.shape, Fn.FftConv(u, Det(2, 1, 3, 15), causal: false).shape);
        Assert.Equal(u.shape, Fn.CausalConv1d(u, Det(3, 1, 3, 4), Det(4, 1, 3), "silu").shape);
    }
}
