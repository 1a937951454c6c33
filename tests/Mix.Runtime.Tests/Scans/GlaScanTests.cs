using System;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Scans.ScanData;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// Gated linear attention: chunked and recurrent forms against a plain-loop recurrence written here (fp32, tolerance
/// 2e-5 relative to 1 + |o|), chunked == recurrent, decode steps == full forward, autograd, fla's default scale.
/// </summary>
public class GlaScanTests
{
    private sealed record Case(long Batch, long L, long Heads, long K, long V, int Chunk, bool WithState, double? Scale);

    private static (Tensor q, Tensor k, Tensor v, Tensor g, Tensor? s0) Make(Case c, double salt = 0) => (
        Det(salt + 1, 1.0, c.Batch, c.L, c.Heads, c.K),
        Det(salt + 2, 1.0, c.Batch, c.L, c.Heads, c.K),
        Det(salt + 3, 1.0, c.Batch, c.L, c.Heads, c.V),
        LogGate(salt + 4, c.Batch, c.L, c.Heads, c.K),
        c.WithState ? Det(salt + 5, 0.5, c.Batch, c.Heads, c.K, c.V) : null);

    /// <summary>S_t = diag(exp g_t) S_{t-1} + k_tᵀ v_t, o_t = scale · q_t S_t, with scalars.</summary>
    private static (float[] o, float[] state) Naive(Case c, Tensor qt, Tensor kt, Tensor vt, Tensor gt, Tensor? s0t)
    {
        var q = F(qt); var k = F(kt); var v = F(vt); var g = F(gt); var s0 = s0t is null ? null : F(s0t);
        long H = c.Heads, K = c.K, V = c.V, L = c.L;
        double scale = c.Scale ?? 1.0 / Math.Sqrt(K);
        var o = new float[c.Batch * L * H * V];
        var state = new float[c.Batch * H * K * V];
        for (long b = 0; b < c.Batch; b++)
        for (long h = 0; h < H; h++)
        {
            var S = new double[K, V];
            for (long i = 0; i < K; i++)
            for (long j = 0; j < V; j++) S[i, j] = s0?[((b * H + h) * K + i) * V + j] ?? 0.0;
            for (long t = 0; t < L; t++)
            {
                long qk = ((b * L + t) * H + h) * K, vv = ((b * L + t) * H + h) * V;
                for (long i = 0; i < K; i++)
                for (long j = 0; j < V; j++) S[i, j] = Math.Exp(g[qk + i]) * S[i, j] + k[qk + i] * v[vv + j];
                for (long j = 0; j < V; j++)
                {
                    double acc = 0;
                    for (long i = 0; i < K; i++) acc += scale * q[qk + i] * S[i, j];
                    o[vv + j] = (float)acc;
                }
            }
            for (long i = 0; i < K; i++)
            for (long j = 0; j < V; j++) state[((b * H + h) * K + i) * V + j] = (float)S[i, j];
        }
        return (o, state);
    }

    private static readonly Case[] All =
    {
        new(1, 7, 2, 4, 3, 3, false, null),     // batch 1, chunk does not divide L, fla's K^-1/2 scale
        new(2, 13, 3, 5, 6, 4, true, 1.0),      // initial state, unscaled
        new(3, 16, 2, 8, 4, 8, true, 0.3),      // chunk divides L
        new(2, 5, 1, 3, 2, 64, false, null),    // one chunk longer than L
    };

    public static TheoryData<int> Cases() => new() { 0, 1, 2, 3 };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReferencePathsMatchTheRecurrence(int index)
    {
        var c = All[index];
        var (q, k, v, g, s0) = Make(c, index);
        var (o, state) = Naive(c, q, k, v, g, s0);
        var (oc, sc) = GlaScan.ChunkedScan(q, k, v, g, c.Scale, c.Chunk, s0);
        Close(o, oc, 2e-5, "chunked o");
        Close(state, sc, 2e-5, "chunked state");
        var (os, ss) = GlaScan.SequentialScan(q, k, v, g, c.Scale, s0);
        Close(o, os, 2e-5, "recurrent o");
        Close(state, ss, 2e-5, "recurrent state");
        var (od, _) = GlaScan.Scan(q, k, v, g, c.Scale, c.Chunk, s0);
        Close(oc, od, 1e-6, "dispatch o");
        Assert.Equal(new[] { c.Batch, c.Heads, c.K, c.V }, sc.shape);
    }

    [Fact]
    public void ChunkedEqualsRecurrentOnALongSequence()
    {
        var c = new Case(2, 150, 2, 16, 8, 32, true, null);
        var (q, k, v, g, s0) = Make(c, 7);
        var (oc, sc) = GlaScan.ChunkedScan(q, k, v, g, null, c.Chunk, s0);
        var (os, ss) = GlaScan.SequentialScan(q, k, v, g, null, s0);
        Close(os, oc, 1e-5, "o");
        Close(ss, sc, 1e-5, "state");
    }

    [Fact]
    public void DecodeStepsEqualTheFullForward()
    {
        var c = new Case(2, 12, 2, 4, 5, 5, true, null);
        var (q, k, v, g, s0) = Make(c, 17);
        var (o, finalState) = GlaScan.ChunkedScan(q, k, v, g, null, c.Chunk, s0);
        var (_, state) = GlaScan.ChunkedScan(q.narrow(1, 0, 7), k.narrow(1, 0, 7), v.narrow(1, 0, 7), g.narrow(1, 0, 7), null, c.Chunk, s0);
        for (long t = 7; t < c.L; t++)
        {
            var (ot, next) = GlaScan.Step(state, q.select(1, t), k.select(1, t), v.select(1, t), g.select(1, t));
            Close(o.select(1, t), ot, 1e-5, $"step {t}");
            state = next;
        }
        Close(finalState, state, 1e-5, "final state");
    }

    [Fact]
    public void GradientsOfChunkedAndRecurrentAgree()
    {
        var c = new Case(2, 9, 2, 3, 4, 4, true, null);
        var (q, k, v, g, s0) = Make(c, 27);
        var weight = Det(98, 1.0, c.Batch, c.L, c.Heads, c.V);
        SameGradients(
            t => { var (o, s) = GlaScan.ChunkedScan(t[0], t[1], t[2], t[3], null, c.Chunk, t[4]); return (o * weight).sum() + s.square().sum(); },
            t => { var (o, s) = GlaScan.SequentialScan(t[0], t[1], t[2], t[3], null, t[4]); return (o * weight).sum() + s.square().sum(); },
            new[] { q, k, v, g, s0! }, 1e-4);
    }
}
