using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Scans
{
    /// <summary>
    /// Gated linear attention (GLA, Yang et al. 2024) in flash-linear-attention's convention (<c>fla.ops.gla</c>,
    /// <c>chunk_gla</c> / <c>fused_recurrent_gla</c>, sequence-first layout):
    /// <code>
    ///   S_t = diag(exp g_t) · S_{t-1} + k_tᵀ v_t                        S: [b, h, K, V]
    ///   o_t = (scale · q_t) · S_t                                      [b, t, h, V]
    /// </code>
    /// Shapes: <c>q, k, g: [b, T, h, K]</c>; <c>v: [b, T, h, V]</c>; states <c>[b, h, K, V]</c>. <c>g</c> is the
    /// log forget gate (≤ 0, e.g. <c>logsigmoid(...) / 16</c> as in GLA). <c>scale</c> defaults to <c>K^-1/2</c>, as fla's
    /// (pass 1 for an unscaled readout). The output includes step t's own update (<c>o_t</c> reads <c>S_t</c>, not
    /// <c>S_{t-1}</c>). The recurrence runs in float32 (float64 for float64 input); <c>o</c> keeps <c>q</c>'s dtype.
    /// </summary>
    public static class GlaScan
    {
        /// <summary>Default chunk length of the chunked form (fla's chunk size).</summary>
        public const int DefaultChunkSize = 64;

        /// <summary>
        /// The scan, fused where a kernel applies (CUDA, no autograd, <see cref="Builtins.MixDispatch.FusedEnabled"/>),
        /// else <see cref="ChunkedScan"/>. Returns <c>o</c> <c>[b, T, h, V]</c> and the final state <c>[b, h, K, V]</c>.
        /// </summary>
        /// <param name="q">Queries <c>[b, T, h, K]</c>.</param>
        /// <param name="k">Keys <c>[b, T, h, K]</c>.</param>
        /// <param name="v">Values <c>[b, T, h, V]</c>.</param>
        /// <param name="g">Log forget gates <c>[b, T, h, K]</c> (≤ 0).</param>
        /// <param name="scale">Query scale; null means <c>K^-1/2</c>.</param>
        /// <param name="chunkSize">Chunk length of the chunked form (any length; the last chunk is zero-padded).</param>
        /// <param name="initialState">Optional state <c>[b, h, K, V]</c> before the first step (zeros otherwise).</param>
        public static (Tensor o, Tensor finalState) Scan(Tensor q, Tensor k, Tensor v, Tensor g, double? scale = null,
            int chunkSize = DefaultChunkSize, Tensor? initialState = null)
        {
            Check(q, k, v, g, initialState);
            if (Fused.CudaScanKernels.Applies(q, k, v, g, initialState)
                && Fused.CudaScanKernels.TryGla(q, k, v, g, Scale(q, scale), initialState) is { } fused)
                return fused;
            return ChunkedScan(q, k, v, g, scale, chunkSize, initialState);
        }

        /// <summary>
        /// Chunked GLA (reference, differentiable). Within a chunk of T steps, with <c>Γ</c> the inclusive cumulative sum
        /// of <c>g</c>: <c>o = (A ⊙ causal) v + (q ⊙ exp Γ) S</c> where <c>A[t, s] = Σ_k q_t[k] k_s[k] exp(Γ_t[k] − Γ_s[k])</c>
        /// is formed explicitly (<c>[T, T, K]</c>, every exponent ≤ 0, so it is stable in float32 without fla's secondary
        /// chunking); then <c>S ← diag(exp Γ_T) S + (k ⊙ exp(Γ_T − Γ))ᵀ v</c>. Memory per chunk <c>b·h·T²·K</c> (the chunk
        /// is shortened if that exceeds 64 Mi elements). Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="q">Queries <c>[b, T, h, K]</c>.</param>
        /// <param name="k">Keys <c>[b, T, h, K]</c>.</param>
        /// <param name="v">Values <c>[b, T, h, V]</c>.</param>
        /// <param name="g">Log forget gates <c>[b, T, h, K]</c>.</param>
        /// <param name="scale">Query scale; null means <c>K^-1/2</c>.</param>
        /// <param name="chunkSize">Chunk length ≥ 1.</param>
        /// <param name="initialState">Optional initial state <c>[b, h, K, V]</c>.</param>
        public static (Tensor o, Tensor finalState) ChunkedScan(Tensor q, Tensor k, Tensor v, Tensor g, double? scale = null,
            int chunkSize = DefaultChunkSize, Tensor? initialState = null)
        {
            Check(q, k, v, g, initialState);
            using var scope = torch.NewDisposeScope();
            var p = Prepare(q, k, v, g, scale, initialState);
            long b = q.shape[0], L = q.shape[1], h = q.shape[2], K = q.shape[3], V = v.shape[3];
            int T = ScanMath.BoundedChunk(chunkSize, b * h * Math.Max(K, V));
            long chunks = (L + T - 1) / T, Lp = chunks * T;

            // [b, h, c, T, ·]; padded steps have g = 0 (decay 1) and k = 0 (no input), so they change nothing.
            Tensor Chunk(Tensor t) => ScanMath.PadTo(t, 1, Lp).reshape(b, chunks, T, h, t.shape[3]).permute(0, 3, 1, 2, 4);
            var Q = Chunk(p.Q);
            var Kc = Chunk(p.K);
            var Vc = Chunk(p.V);
            var G = Chunk(p.G).cumsum(-2);

            using var ones = torch.ones(T, T, dtype: ScalarType.Bool, device: q.device);
            using var above = torch.tril(ones, 0).logical_not().unsqueeze(-1); // [T(t), T(s), 1]: s > t
            using Scalar minusInfinity = double.NegativeInfinity;
            var S = p.S0;
            var outs = new List<Tensor>((int)chunks);
            for (long c = 0; c < chunks; c++)
            {
                var q1 = Q.select(2, c); var k1 = Kc.select(2, c); var v1 = Vc.select(2, c); var G1 = G.select(2, c); // [b, h, T, ·]
                var gap = (G1.unsqueeze(-2) - G1.unsqueeze(-3)).masked_fill(above, minusInfinity);          // [b, h, T, T, K]
                var scores = (q1.unsqueeze(-2) * k1.unsqueeze(-3) * torch.exp(gap)).sum(-1);                // [b, h, T, T]
                var last = G1.narrow(-2, T - 1, 1);                                                          // [b, h, 1, K]
                outs.Add(torch.matmul(scores, v1) + torch.matmul(q1 * torch.exp(G1), S));
                S = torch.exp(last).transpose(-1, -2) * S + torch.matmul((k1 * torch.exp(last - G1)).transpose(-1, -2), v1);
            }
            var o = chunks > 0
                ? torch.stack(outs, 2).permute(0, 2, 3, 1, 4).reshape(b, Lp, h, V).narrow(1, 0, L)
                : torch.zeros(new[] { b, 0L, h, V }, dtype: p.ComputeType, device: q.device);
            if (chunks == 0) S = S.clone();
            return (o.to_type(q.dtype).MoveToOuterDisposeScope(), S.MoveToOuterDisposeScope());
        }

        /// <summary>The plain recurrence, one step at a time (fla's <c>fused_recurrent_gla</c>). Arguments as in <see cref="Scan"/>.</summary>
        /// <param name="q">Queries <c>[b, T, h, K]</c>.</param>
        /// <param name="k">Keys <c>[b, T, h, K]</c>.</param>
        /// <param name="v">Values <c>[b, T, h, V]</c>.</param>
        /// <param name="g">Log forget gates <c>[b, T, h, K]</c>.</param>
        /// <param name="scale">Query scale; null means <c>K^-1/2</c>.</param>
        /// <param name="initialState">Optional initial state <c>[b, h, K, V]</c>.</param>
        public static (Tensor o, Tensor finalState) SequentialScan(Tensor q, Tensor k, Tensor v, Tensor g, double? scale = null,
            Tensor? initialState = null)
        {
            Check(q, k, v, g, initialState);
            using var scope = torch.NewDisposeScope();
            var p = Prepare(q, k, v, g, scale, initialState);
            long L = q.shape[1];
            var S = p.S0;
            var outs = new List<Tensor>((int)L);
            for (long t = 0; t < L; t++)
            {
                S = torch.exp(p.G.select(1, t)).unsqueeze(-1) * S + p.K.select(1, t).unsqueeze(-1) * p.V.select(1, t).unsqueeze(-2);
                outs.Add(torch.matmul(p.Q.select(1, t).unsqueeze(-2), S).squeeze(-2));
            }
            var o = L > 0 ? torch.stack(outs, 1)
                : torch.zeros(new[] { q.shape[0], 0L, q.shape[2], v.shape[3] }, dtype: p.ComputeType, device: q.device);
            if (L == 0) S = S.clone();
            return (o.to_type(q.dtype).MoveToOuterDisposeScope(), S.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// One decoding step: <c>o</c> <c>[b, h, V]</c> (dtype of <paramref name="q"/>) and the new state <c>[b, h, K, V]</c>
        /// (compute dtype). The input state is not modified. Fused on CUDA without autograd (the scan kernel, one step).
        /// </summary>
        /// <param name="state">State before the step <c>[b, h, K, V]</c>.</param>
        /// <param name="q">Query <c>[b, h, K]</c>.</param>
        /// <param name="k">Key <c>[b, h, K]</c>.</param>
        /// <param name="v">Value <c>[b, h, V]</c>.</param>
        /// <param name="g">Log forget gate <c>[b, h, K]</c>.</param>
        /// <param name="scale">Query scale; null means <c>K^-1/2</c>.</param>
        public static (Tensor o, Tensor newState) Step(Tensor state, Tensor q, Tensor k, Tensor v, Tensor g, double? scale = null)
        {
            ScanMath.RequireRank(q, nameof(q), "[b, h, K]", 3);
            if (Fused.CudaScanKernels.Applies(q, state, k, v, g)
                && Fused.CudaScanKernels.TryGla(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), g.unsqueeze(1), Scale(q, scale), state) is { } fused)
                using (fused.o) return (fused.o.squeeze(1), fused.finalState);
            var (o, s) = SequentialScan(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), g.unsqueeze(1), scale, state);
            using (o) return (o.squeeze(1), s);
        }

        /// <summary>The scale actually applied: <paramref name="scale"/>, or <c>K^-1/2</c>.</summary>
        internal static double Scale(Tensor q, double? scale) => scale ?? 1.0 / Math.Sqrt(q.shape[^1]);

        private sealed class Prepared
        {
            public required Tensor Q { get; init; }
            public required Tensor K { get; init; }
            public required Tensor V { get; init; }
            public required Tensor G { get; init; }
            public required Tensor S0 { get; init; }
            public required ScalarType ComputeType { get; init; }
        }

        private static Prepared Prepare(Tensor q, Tensor k, Tensor v, Tensor g, double? scale, Tensor? initialState)
        {
            var cdt = ScanMath.ComputeType(q);
            return new Prepared
            {
                Q = q.to_type(cdt) * Scale(q, scale),
                K = k.to_type(cdt),
                V = v.to_type(cdt),
                G = g.to_type(cdt),
                S0 = initialState is not null
                    ? initialState.to_type(cdt)
                    : torch.zeros(new[] { q.shape[0], q.shape[2], q.shape[3], v.shape[3] }, dtype: cdt, device: q.device),
                ComputeType = cdt,
            };
        }

        internal static void Check(Tensor q, Tensor k, Tensor v, Tensor g, Tensor? initialState)
        {
            ScanMath.RequireRank(q, nameof(q), "[b, T, h, K]", 4);
            long b = q.shape[0], L = q.shape[1], h = q.shape[2], K = q.shape[3];
            ScanMath.Require(k, nameof(k), "[b, T, h, K] (q's shape)", b, L, h, K);
            ScanMath.Require(g, nameof(g), "[b, T, h, K] (q's shape)", b, L, h, K);
            ScanMath.RequireRank(v, nameof(v), "[b, T, h, V]", 4);
            ScanMath.Require(v, nameof(v), "[b, T, h, V]", b, L, h, -1);
            ScanMath.Require(initialState, nameof(initialState), "[b, h, K, V]", b, h, K, v.shape[3]);
        }
    }
}
