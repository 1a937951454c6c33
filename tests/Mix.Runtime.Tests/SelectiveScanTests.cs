using System;
using System.Collections.Generic;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class SelectiveScanTests
{
    /// <summary>Plain-loop selective scan over flat row-major arrays; returns (y, lastState).</summary>
    internal static (double[] y, double[] h) LoopScan(int batch, int d, int n, int L, double[] u, double[] delta,
        double[] A, double[] B, double[] C, double[]? D, double[]? z, double[]? deltaBias, bool softplus, double[]? h0)
    {
        var y = new double[batch * d * L];
        var hOut = new double[batch * d * n];
        for (int b = 0; b < batch; b++)
        for (int c = 0; c < d; c++)
        {
            var h = new double[n];
            if (h0 is not null) for (int k = 0; k < n; k++) h[k] = h0[(b * d + c) * n + k];
            for (int t = 0; t < L; t++)
            {
                int i = (b * d + c) * L + t;
                double dt = delta[i] + (deltaBias?[c] ?? 0);
                if (softplus) dt = Softplus(dt);
                double acc = 0;
                for (int k = 0; k < n; k++)
                {
                    double bk = B[(b * n + k) * L + t], ck = C[(b * n + k) * L + t];
                    h[k] = Math.Exp(dt * A[c * n + k]) * h[k] + dt * bk * u[i];
                    acc += h[k] * ck;
                }
                if (D is not null) acc += D[c] * u[i];
                if (z is not null) acc *= Silu(z[i]);
                y[i] = acc;
            }
            for (int k = 0; k < n; k++) hOut[(b * d + c) * n + k] = h[k];
        }
        return (y, hOut);
    }

    private sealed record Case(int Batch, int D, int N, int L, double[] U, double[] Delta, double[] A, double[] B,
        double[] C, double[] Dskip, double[] Z, double[] DeltaBias, double[] H0);

    private static Case MakeCase(int seed, int batch, int d, int n, int L, double aScale = 1.0)
    {
        var rng = new Random(seed);
        var a = RandomArray(rng, d * n, 0.1, 2.0);
        for (int i = 0; i < a.Length; i++) a[i] = -a[i] * aScale;
        return new Case(batch, d, n, L,
            RandomArray(rng, batch * d * L), RandomArray(rng, batch * d * L, -2, 1), a,
            RandomArray(rng, batch * n * L), RandomArray(rng, batch * n * L), RandomArray(rng, d),
            RandomArray(rng, batch * d * L), RandomArray(rng, d, -0.5, 0.5), RandomArray(rng, batch * d * n));
    }

    private sealed class Tensors : IDisposable
    {
        public required Tensor U, Delta, A, B, C, D, Z, DeltaBias, H0;
        public void Dispose() { foreach (var t in new[] { U, Delta, A, B, C, D, Z, DeltaBias, H0 }) t.Dispose(); }
    }

    private static Tensors ToTensors(Case c, ScalarType dtype, bool requiresGrad = false)
    {
        Tensor T(double[] x, params long[] s) => FromArray(x, s, dtype).requires_grad_(requiresGrad);
        return new Tensors
        {
            U = T(c.U, c.Batch, c.D, c.L), Delta = T(c.Delta, c.Batch, c.D, c.L), A = T(c.A, c.D, c.N),
            B = T(c.B, c.Batch, c.N, c.L), C = T(c.C, c.Batch, c.N, c.L), D = T(c.Dskip, c.D),
            Z = T(c.Z, c.Batch, c.D, c.L), DeltaBias = T(c.DeltaBias, c.D), H0 = T(c.H0, c.Batch, c.D, c.N),
        };
    }

    [Fact]
    public void HandCheckedSingleChannel()
    {
        // d = n = 1, A = -1, B = C = 1, delta = ln 2 (no softplus): h_t = 0.5 h_{t-1} + ln2 · u_t
        double ln2 = Math.Log(2);
        using var u = torch.tensor(new double[] { 1, 2, 3 }).reshape(1, 1, 3);
        using var delta = torch.full(new long[] { 1, 1, 3 }, ln2, dtype: ScalarType.Float64);
        using var A = torch.full(new long[] { 1, 1 }, -1.0, dtype: ScalarType.Float64);
        using var B = torch.ones(new long[] { 1, 1, 3 }, dtype: ScalarType.Float64);
        using var C = torch.ones(new long[] { 1, 1, 3 }, dtype: ScalarType.Float64);
        double h1 = ln2 * 1, h2 = 0.5 * h1 + ln2 * 2, h3 = 0.5 * h2 + ln2 * 3;
        foreach (var alg in new[] { SelectiveScanAlgorithm.Sequential, SelectiveScanAlgorithm.Chunked })
        {
            var (y, last) = SelectiveScan.ScanWithState(u, delta, A, B, C, algorithm: alg, chunkSize: 2);
            AssertClose(new[] { h1, h2, h3 }, ToArray(y), 1e-12, what: alg.ToString());
            AssertClose(new[] { h3 }, ToArray(last), 1e-12);
            y.Dispose(); last.Dispose();
        }
    }

    [Theory]
    [InlineData(SelectiveScanAlgorithm.Sequential, 64)]
    [InlineData(SelectiveScanAlgorithm.Chunked, 4)]
    [InlineData(SelectiveScanAlgorithm.Chunked, 64)]
    public void MatchesPlainLoopsWithAllOptions(SelectiveScanAlgorithm algorithm, int chunkSize)
    {
        var c = MakeCase(1, batch: 2, d: 3, n: 4, L: 11);
        using var t = ToTensors(c, ScalarType.Float64);
        var (expectedY, expectedH) = LoopScan(c.Batch, c.D, c.N, c.L, c.U, c.Delta, c.A, c.B, c.C, c.Dskip, c.Z,
            c.DeltaBias, true, c.H0);
        var (y, h) = SelectiveScan.ScanWithState(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0,
            algorithm, chunkSize);
        Assert.Equal(new long[] { 2, 3, 11 }, y.shape);
        Assert.Equal(new long[] { 2, 3, 4 }, h.shape);
        AssertClose(expectedY, ToArray(y), 1e-10, 1e-10, "y");
        AssertClose(expectedH, ToArray(h), 1e-10, 1e-10, "h");
        y.Dispose(); h.Dispose();

        // without the optional inputs
        var (ey2, _) = LoopScan(c.Batch, c.D, c.N, c.L, c.U, c.Delta, c.A, c.B, c.C, null, null, null, false, null);
        using var y2 = SelectiveScan.Scan(t.U, t.Delta.abs(), t.A, t.B, t.C, algorithm: algorithm, chunkSize: chunkSize);
        var absDelta = Array.ConvertAll(c.Delta, Math.Abs);
        (ey2, _) = LoopScan(c.Batch, c.D, c.N, c.L, c.U, absDelta, c.A, c.B, c.C, null, null, null, false, null);
        AssertClose(ey2, ToArray(y2), 1e-10, 1e-10, "y (no options)");
    }

    public static IEnumerable<object[]> Shapes() => new[]
    {
        new object[] { 1, 1, 1, 1, 4 },
        new object[] { 2, 3, 4, 7, 4 },     // L not a multiple of the chunk
        new object[] { 1, 5, 8, 16, 16 },   // exactly one chunk
        new object[] { 2, 4, 16, 37, 8 },   // several chunks plus a remainder
        new object[] { 3, 2, 3, 50, 64 },   // chunk longer than L
        new object[] { 1, 8, 16, 100, 32 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ChunkedEqualsSequentialInFloat32(int batch, int d, int n, int L, int chunk)
    {
        var c = MakeCase(batch * 1000 + L, batch, d, n, L);
        using var t = ToTensors(c, ScalarType.Float32);
        var (ys, hs) = SelectiveScan.SequentialScan(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0);
        var (yc, hc) = SelectiveScan.ChunkedScan(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0, chunk);
        Assert.Equal(ScalarType.Float32, yc.dtype);
        AssertClose(ys, yc, 1e-5, 1e-4, "y");
        AssertClose(hs, hc, 1e-5, 1e-4, "h");
        foreach (var x in new[] { ys, hs, yc, hc }) x.Dispose();
    }

    [Fact]
    public void ChunkedIsStableForStrongDecayAndLongChunks()
    {
        // log-decays down to about -2·40·5 = -400 per step: exp of cumulative sums would underflow/overflow if
        // the chunked form used differences of large cumulative sums.
        var c = MakeCase(7, batch: 1, d: 4, n: 8, L: 96, aScale: 40);
        for (int i = 0; i < c.Delta.Length; i++) c.Delta[i] = 5 * Math.Abs(c.Delta[i]);
        using var t = ToTensors(c, ScalarType.Float32);
        var (ys, hs) = SelectiveScan.SequentialScan(t.U, t.Delta, t.A, t.B, t.C, t.D, null, null, false, t.H0);
        var (yc, hc) = SelectiveScan.ChunkedScan(t.U, t.Delta, t.A, t.B, t.C, t.D, null, null, false, t.H0, 96);
        Assert.False(yc.isnan().any().item<bool>());
        Assert.False(yc.isinf().any().item<bool>());
        AssertClose(ys, yc, 1e-5, 1e-4, "y");
        AssertClose(hs, hc, 1e-5, 1e-4, "h");
        foreach (var x in new[] { ys, hs, yc, hc }) x.Dispose();
    }

    [Fact]
    public void ChunkedGradientsEqualSequentialGradients()
    {
        var c = MakeCase(3, batch: 2, d: 3, n: 4, L: 10);
        var grads = new List<double[]>[2];
        for (int pass = 0; pass < 2; pass++)
        {
            using var t = ToTensors(c, ScalarType.Float64, requiresGrad: true);
            var (y, h) = pass == 0
                ? SelectiveScan.SequentialScan(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0)
                : SelectiveScan.ChunkedScan(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0, 3);
            using var w = torch.linspace(-1, 1, y.numel(), dtype: ScalarType.Float64).reshape(y.shape);
            using var loss = (y * w).sum() + h.pow(2).sum();
            loss.backward();
            grads[pass] = new List<double[]>();
            foreach (var p in new[] { t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, t.H0 })
            {
                Assert.NotNull(p.grad);
                grads[pass].Add(ToArray(p.grad!));
            }
            y.Dispose(); h.Dispose();
        }
        for (int i = 0; i < grads[0].Count; i++)
        {
            foreach (var g in grads[1][i]) Assert.True(double.IsFinite(g));
            AssertClose(grads[0][i], grads[1][i], 1e-9, 1e-9, $"grad #{i}");
        }
    }

    [Fact]
    public void StepByStepEqualsScanAndStateCarriesOver()
    {
        var c = MakeCase(5, batch: 2, d: 3, n: 4, L: 9);
        using var t = ToTensors(c, ScalarType.Float64);
        var (yFull, hFull) = SelectiveScan.ScanWithState(t.U, t.Delta, t.A, t.B, t.C, t.D, t.Z, t.DeltaBias, true, t.H0);

        // (1) single steps
        var state = t.H0.clone();
        var ys = new List<Tensor>();
        for (int i = 0; i < c.L; i++)
        {
            var (yi, next) = SelectiveScan.Step(state, t.U.select(2, i), t.Delta.select(2, i), t.A,
                t.B.select(2, i), t.C.select(2, i), t.D, t.Z.select(2, i), t.DeltaBias, true);
            state.Dispose();
            state = next;
            ys.Add(yi);
        }
        using (var yStep = torch.stack(ys, -1)) AssertClose(yFull, yStep, 1e-12, 1e-12, "step y");
        AssertClose(hFull, state, 1e-12, 1e-12, "step state");
        foreach (var x in ys) x.Dispose();
        state.Dispose();

        // (2) two scans joined by the state
        int k = 4;
        Tensor N(Tensor x, int start, int len) => x.narrow(2, start, len);
        var (y1, h1) = SelectiveScan.ScanWithState(N(t.U, 0, k), N(t.Delta, 0, k), t.A, N(t.B, 0, k), N(t.C, 0, k),
            t.D, N(t.Z, 0, k), t.DeltaBias, true, t.H0, SelectiveScanAlgorithm.Chunked, 3);
        int r = c.L - k;
        var (y2, h2) = SelectiveScan.ScanWithState(N(t.U, k, r), N(t.Delta, k, r), t.A, N(t.B, k, r), N(t.C, k, r),
            t.D, N(t.Z, k, r), t.DeltaBias, true, h1, SelectiveScanAlgorithm.Chunked, 3);
        using (var joined = torch.cat(new[] { y1, y2 }, 2)) AssertClose(yFull, joined, 1e-12, 1e-12, "joined y");
        AssertClose(hFull, h2, 1e-12, 1e-12, "joined state");
        foreach (var x in new[] { y1, h1, y2, h2, yFull, hFull }) x.Dispose();
    }

    [Fact]
    public void RejectsBadShapes()
    {
        using var u = torch.zeros(2, 3, 5);
        using var A = torch.zeros(3, 4);
        using var B = torch.zeros(2, 4, 5);
        using var badB = torch.zeros(2, 5, 5);
        Assert.Throws<ArgumentException>(() => SelectiveScan.Scan(u, u, A, badB, B));
        Assert.Throws<ArgumentException>(() => SelectiveScan.Scan(u, u, torch.zeros(2, 4), B, B));
        Assert.Throws<ArgumentOutOfRangeException>(() => SelectiveScan.ChunkedScan(u, u, A, B, B, chunkSize: 0));
    }
}
