using System;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Scans.ScanData;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// Mamba-2 SSD: the chunked and sequential reference paths against a plain-loop recurrence written here (fp32,
/// tolerance 2e-5 relative to 1 + |y|), chunked == sequential, decode steps == full forward, autograd.
/// </summary>
public class SsdScanTests
{
    private sealed record Case(long Batch, long L, long Heads, long P, long Groups, long N, int Chunk, bool Extras, bool PerChannelD = false);

    private sealed class Inputs
    {
        public required Tensor X, Dt, A, B, C;
        public Tensor? D, Z, DtBias, S0;
        public bool Softplus;
    }

    private static Inputs Make(Case c, double salt = 0)
    {
        var i = new Inputs
        {
            X = Det(salt + 1, 1.0, c.Batch, c.L, c.Heads, c.P),
            Dt = c.Extras ? Det(salt + 2, 1.0, c.Batch, c.L, c.Heads) : Dt(salt + 2, c.Batch, c.L, c.Heads),
            A = NegativeRate(salt + 3, c.Heads),
            B = Det(salt + 4, 0.8, c.Batch, c.L, c.Groups, c.N),
            C = Det(salt + 5, 0.8, c.Batch, c.L, c.Groups, c.N),
        };
        if (c.Extras)
        {
            i.D = c.PerChannelD ? Det(salt + 6, 1.0, c.Heads, c.P) : Det(salt + 6, 1.0, c.Heads);
            i.Z = Det(salt + 7, 1.5, c.Batch, c.L, c.Heads, c.P);
            i.DtBias = Det(salt + 8, 0.5, c.Heads) - 1.0;
            i.S0 = Det(salt + 9, 0.5, c.Batch, c.Heads, c.P, c.N);
            i.Softplus = true;
        }
        return i;
    }

    /// <summary>The recurrence written out with scalars (double accumulation).</summary>
    private static (float[] y, float[] state) Naive(Case c, Inputs i)
    {
        var x = F(i.X); var dt = F(i.Dt); var A = F(i.A); var B = F(i.B); var C = F(i.C);
        var D = i.D is null ? null : F(i.D); var z = i.Z is null ? null : F(i.Z);
        var bias = i.DtBias is null ? null : F(i.DtBias); var s0 = i.S0 is null ? null : F(i.S0);
        long Hh = c.Heads, P = c.P, N = c.N, G = c.Groups, L = c.L;
        var y = new float[c.Batch * L * Hh * P];
        var state = new float[c.Batch * Hh * P * N];
        for (long b = 0; b < c.Batch; b++)
        for (long h = 0; h < Hh; h++)
        {
            long g = h / (Hh / G);
            var S = new double[P, N];
            for (long p = 0; p < P; p++)
            for (long n = 0; n < N; n++) S[p, n] = s0?[((b * Hh + h) * P + p) * N + n] ?? 0.0;
            for (long t = 0; t < L; t++)
            {
                double d = dt[(b * L + t) * Hh + h] + (bias?[h] ?? 0.0);
                if (i.Softplus) d = Softplus(d);
                double decay = Math.Exp(d * A[h]);
                for (long p = 0; p < P; p++)
                {
                    long xi = ((b * L + t) * Hh + h) * P + p;
                    double acc = 0;
                    for (long n = 0; n < N; n++)
                    {
                        long bi = ((b * L + t) * G + g) * N + n;
                        S[p, n] = decay * S[p, n] + d * x[xi] * B[bi];
                        acc += S[p, n] * C[bi];
                    }
                    if (D is not null) acc += x[xi] * (c.PerChannelD ? D[h * P + p] : D[h]);
                    if (z is not null) acc *= Silu(z[xi]);
                    y[xi] = (float)acc;
                }
            }
            for (long p = 0; p < P; p++)
            for (long n = 0; n < N; n++) state[((b * Hh + h) * P + p) * N + n] = (float)S[p, n];
        }
        return (y, state);
    }

    public static TheoryData<int> Cases() => new() { 0, 1, 2, 3, 4 };

    private static readonly Case[] All =
    {
        new(1, 7, 2, 3, 1, 4, 3, false),          // batch 1, chunk does not divide L
        new(2, 13, 4, 2, 2, 3, 5, true),          // groups, D, z, dt_bias + softplus, initial state
        new(3, 16, 3, 4, 3, 2, 4, false),         // chunk divides L, one group per head
        new(2, 9, 4, 3, 1, 5, 64, true, true),    // one chunk longer than L, D per channel [h, p]
        new(1, 1, 2, 2, 2, 2, 1, true),           // a single step
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReferencePathsMatchTheRecurrence(int index)
    {
        var c = All[index];
        var i = Make(c, index);
        var (y, state) = Naive(c, i);
        var (yc, sc) = SsdScan.ChunkedScan(i.X, i.Dt, i.A, i.B, i.C, c.Chunk, i.D, i.Z, i.DtBias, i.Softplus, i.S0);
        Close(y, yc, 2e-5, "chunked y");
        Close(state, sc, 2e-5, "chunked state");
        var (ys, ss) = SsdScan.SequentialScan(i.X, i.Dt, i.A, i.B, i.C, i.D, i.Z, i.DtBias, i.Softplus, i.S0);
        Close(y, ys, 2e-5, "sequential y");
        Close(state, ss, 2e-5, "sequential state");
        var (yd, sd) = SsdScan.Scan(i.X, i.Dt, i.A, i.B, i.C, c.Chunk, i.D, i.Z, i.DtBias, i.Softplus, i.S0);
        Close(yc, yd, 1e-6, "dispatch y");
        Close(sc, sd, 1e-6, "dispatch state");
        Assert.Equal(new[] { c.Batch, c.Heads, c.P, c.N }, sc.shape);
    }

    [Fact]
    public void ChunkedEqualsSequentialOnALongSequence()
    {
        var c = new Case(2, 101, 4, 8, 2, 16, 16, true);
        var i = Make(c, 11);
        var (yc, sc) = SsdScan.ChunkedScan(i.X, i.Dt, i.A, i.B, i.C, c.Chunk, i.D, i.Z, i.DtBias, true, i.S0);
        var (ys, ss) = SsdScan.SequentialScan(i.X, i.Dt, i.A, i.B, i.C, i.D, i.Z, i.DtBias, true, i.S0);
        Close(ys, yc, 1e-5, "y");
        Close(ss, sc, 1e-5, "state");
    }

    [Fact]
    public void DecodeStepsEqualTheFullForward()
    {
        var c = new Case(2, 11, 4, 3, 2, 5, 4, true);
        var i = Make(c, 21);
        var (y, finalState) = SsdScan.ChunkedScan(i.X, i.Dt, i.A, i.B, i.C, c.Chunk, i.D, i.Z, i.DtBias, true, i.S0);
        // Prefill the first 6 steps with the chunked scan, then decode the rest one step at a time.
        var (yPrefix, state) = SsdScan.ChunkedScan(i.X.narrow(1, 0, 6), i.Dt.narrow(1, 0, 6), i.A, i.B.narrow(1, 0, 6),
            i.C.narrow(1, 0, 6), c.Chunk, i.D, i.Z!.narrow(1, 0, 6), i.DtBias, true, i.S0);
        Close(y.narrow(1, 0, 6), yPrefix, 1e-5, "prefix");
        for (long t = 6; t < c.L; t++)
        {
            var (yt, next) = SsdScan.Step(state, i.X.select(1, t), i.Dt.select(1, t), i.A, i.B.select(1, t), i.C.select(1, t),
                i.D, i.Z.select(1, t), i.DtBias, true);
            Close(y.select(1, t), yt, 1e-5, $"step {t}");
            state = next;
        }
        Close(finalState, state, 1e-5, "final state");
    }

    [Fact]
    public void GradientsOfChunkedAndSequentialAgree()
    {
        var c = new Case(2, 10, 4, 3, 2, 4, 4, true);
        var i = Make(c, 31);
        var weight = Det(99, 1.0, c.Batch, c.L, c.Heads, c.P);
        var inputs = new[] { i.X, i.Dt, i.A, i.B, i.C, i.D!, i.Z!, i.DtBias!, i.S0! };
        SameGradients(
            t => { var (y, s) = SsdScan.ChunkedScan(t[0], t[1], t[2], t[3], t[4], c.Chunk, t[5], t[6], t[7], true, t[8]); return (y * weight).sum() + s.square().sum(); },
            t => { var (y, s) = SsdScan.SequentialScan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], true, t[8]); return (y * weight).sum() + s.square().sum(); },
            inputs, 1e-4);
    }

    [Fact]
    public void EmptySequenceKeepsTheInitialState()
    {
        var c = new Case(1, 0, 2, 3, 1, 4, 8, true);
        var i = Make(c);
        var (y, s) = SsdScan.ChunkedScan(i.X, i.Dt, i.A, i.B, i.C, c.Chunk, i.D, i.Z, i.DtBias, true, i.S0);
        Assert.Equal(new long[] { 1, 0, 2, 3 }, y.shape);
        Close(i.S0!, s, 0, "state");
    }

    [Fact]
    public void BadShapesAreNamed()
    {
        var c = new Case(1, 5, 4, 2, 3, 2, 4, false);
        var i = Make(c);
        var e = Assert.Throws<ArgumentException>(() => SsdScan.ChunkedScan(i.X, i.Dt, i.A, i.B, i.C));
        Assert.Contains("groups", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => SsdScan.ChunkedScan(i.X, i.Dt.narrow(1, 0, 4), i.A, i.B, i.C));
        Assert.Contains("dt must be [b, l, h]", e2.Message);
    }
}
