using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Scans
{
    /// <summary>
    /// Mamba-2's state-space duality scan (SSD), in the convention of <c>mamba_ssm</c>'s <c>mamba_chunk_scan_combined</c>
    /// (and the paper's <c>ssd_minimal_discrete</c> reference):
    /// <code>
    ///   dt_t  = softplus?(dt_t + dt_bias)                              [b, l, h]
    ///   S_t   = exp(dt_t · A) · S_{t-1} + (dt_t · x_t) ⊗ B_t             S: [b, h, p, n]
    ///   y_t   = S_t · C_t + D · x_t                                     [b, l, h, p]
    ///   y     = y ⊙ silu(z)                                             (when z is given)
    /// </code>
    /// Shapes: <c>x, z: [b, l, h, p]</c>; <c>dt: [b, l, h]</c>; <c>A, dt_bias: [h]</c> (one scalar decay per head);
    /// <c>B, C: [b, l, g, n]</c> with <c>g</c> groups dividing <c>h</c> (head <c>i</c> reads group <c>i / (h / g)</c>);
    /// <c>D: [h]</c> or <c>[h, p]</c>; states <c>[b, h, p, n]</c>.
    /// The recurrence runs in float32 (float64 for float64 input); <c>y</c> keeps <c>x</c>'s dtype, the final state is in
    /// the compute dtype. On CUDA without autograd <see cref="Scan"/> takes the fused kernel
    /// (<see cref="Fused.CudaScanKernels"/>); the chunked and sequential forms are differentiable references.
    /// </summary>
    public static class SsdScan
    {
        /// <summary>Default chunk length (Mamba-2 uses 256 on GPU; 64 keeps CPU chunks small).</summary>
        public const int DefaultChunkSize = 64;

        /// <summary>
        /// The scan, fused where a kernel applies (CUDA, no autograd, <see cref="Builtins.MixDispatch.FusedEnabled"/>) and
        /// is the faster path for this length (<see cref="Fused.ScanDispatch.Ssd"/>), else <see cref="ChunkedScan"/>.
        /// Returns <c>y</c> <c>[b, l, h, p]</c> and the final state <c>[b, h, p, n]</c>.
        /// </summary>
        /// <param name="x">Input <c>[b, l, h, p]</c>.</param>
        /// <param name="dt">Time steps before bias/softplus <c>[b, l, h]</c>.</param>
        /// <param name="A">Per-head decay rate <c>[h]</c> (≤ 0 for a stable scan).</param>
        /// <param name="B">Input matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="C">Output matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="chunkSize">Chunk length of the chunked form (any length; the last chunk is zero-padded).</param>
        /// <param name="D">Optional skip <c>[h]</c> or <c>[h, p]</c>.</param>
        /// <param name="z">Optional gate <c>[b, l, h, p]</c>: the output is multiplied by <c>silu(z)</c>.</param>
        /// <param name="dtBias">Optional bias <c>[h]</c> added to <paramref name="dt"/>.</param>
        /// <param name="dtSoftplus">Apply softplus to <c>dt + dtBias</c>.</param>
        /// <param name="initialState">Optional state <c>[b, h, p, n]</c> before the first step (zeros otherwise).</param>
        public static (Tensor y, Tensor finalState) Scan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C,
            int chunkSize = DefaultChunkSize, Tensor? D = null, Tensor? z = null, Tensor? dtBias = null, bool dtSoftplus = false,
            Tensor? initialState = null)
        {
            Check(x, dt, A, B, C, D, z, dtBias, initialState);
            if (Fused.CudaScanKernels.Applies(x, dt, A, B, C, D, z, dtBias, initialState)
                && Fused.ScanDispatch.Ssd(x.shape[1], Fused.CudaScanKernels.SsdChunkedFits(x, B))
                   != Fused.ScanForward.Reference
                && Fused.CudaScanKernels.TrySsd(x, dt, A, B, C, D, z, dtBias, dtSoftplus, initialState) is { } fused)
                return fused;
            return ChunkedScan(x, dt, A, B, C, chunkSize, D, z, dtBias, dtSoftplus, initialState);
        }

        /// <summary>
        /// Chunked SSD (reference, differentiable): within a chunk of <c>T</c> steps the quadratic "attention" form
        /// <c>y = (C Bᵀ ⊙ exp(segsum(dt·A))) (dt·x)</c>; across chunks the states are carried by the recurrence
        /// <c>S_{c+1} = exp(Σ_chunk dt·A) S_c + Σ_s exp(decay to chunk end) (dt·x)_s ⊗ B_s</c>, one step per chunk.
        /// Memory per chunk <c>b·h·T²</c> (the chunk is shortened if that exceeds 64 Mi elements). Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="x">Input <c>[b, l, h, p]</c>.</param>
        /// <param name="dt">Time steps <c>[b, l, h]</c>.</param>
        /// <param name="A">Decay rate <c>[h]</c>.</param>
        /// <param name="B">Input matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="C">Output matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="chunkSize">Chunk length T ≥ 1.</param>
        /// <param name="D">Optional skip <c>[h]</c> or <c>[h, p]</c>.</param>
        /// <param name="z">Optional gate <c>[b, l, h, p]</c>.</param>
        /// <param name="dtBias">Optional bias <c>[h]</c>.</param>
        /// <param name="dtSoftplus">Apply softplus to <c>dt + dtBias</c>.</param>
        /// <param name="initialState">Optional initial state <c>[b, h, p, n]</c>.</param>
        public static (Tensor y, Tensor finalState) ChunkedScan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C,
            int chunkSize = DefaultChunkSize, Tensor? D = null, Tensor? z = null, Tensor? dtBias = null, bool dtSoftplus = false,
            Tensor? initialState = null)
        {
            Check(x, dt, A, B, C, D, z, dtBias, initialState);
            using var scope = torch.NewDisposeScope();
            var p = Prepare(x, dt, A, B, C, dtBias, dtSoftplus, initialState);
            long b = x.shape[0], L = x.shape[1], h = x.shape[2], hp = x.shape[3], n = B.shape[3];
            int T = ScanMath.BoundedChunk(chunkSize, b * h * Math.Max(1, Math.Max(hp, n)));
            long chunks = (L + T - 1) / T, Lp = chunks * T;

            // Zero padding to whole chunks: a padded step has dt = 0 (decay 1) and no input, so it changes nothing.
            var X = ScanMath.PadTo(p.X * p.Dt.unsqueeze(-1), 1, Lp).reshape(b, chunks, T, h, hp);
            var a = ScanMath.PadTo(p.Dt * p.A, 1, Lp).reshape(b, chunks, T, h).permute(0, 3, 1, 2); // [b, h, c, T]
            var Bc = ScanMath.PadTo(p.B, 1, Lp).reshape(b, chunks, T, h, n);
            var Cc = ScanMath.PadTo(p.C, 1, Lp).reshape(b, chunks, T, h, n);

            var aCum = a.cumsum(-1);                                                   // [b, h, c, T]
            var decay = torch.exp(ScanMath.SegmentSum(a)).permute(0, 2, 1, 3, 4);     // [b, c, h, T(l), T(s)]
            var scores = torch.einsum("bclhn,bcshn->bchls", Cc, Bc) * decay;
            var yDiag = torch.einsum("bchls,bcshp->bclhp", scores, X);

            // Each chunk's own contribution to the state at its end, then the recurrence over chunks.
            var toEnd = torch.exp(aCum.narrow(-1, T - 1, 1) - aCum).permute(0, 2, 3, 1).unsqueeze(-1); // [b, c, T, h, 1]
            var chunkStates = torch.einsum("bclhn,bclhp->bchpn", Bc, X * toEnd);                     // [b, c, h, p, n]
            var chunkDecay = torch.exp(aCum.select(-1, T - 1));                                      // [b, h, c]
            var S = p.S0;
            var entering = new List<Tensor>((int)chunks);
            for (long c = 0; c < chunks; c++)
            {
                entering.Add(S);
                S = S * chunkDecay.select(2, c).unsqueeze(-1).unsqueeze(-1) + chunkStates.select(1, c);
            }
            var yOff = chunks > 0
                ? torch.einsum("bclhn,bchpn->bclhp", Cc, torch.stack(entering, 1))
                  * torch.exp(aCum).permute(0, 2, 3, 1).unsqueeze(-1)
                : torch.zeros_like(X);
            var y = (yDiag + yOff).reshape(b, Lp, h, hp).narrow(1, 0, L);
            y = Finish(y, p, x, D, z);
            if (chunks == 0) S = S.clone();
            return (y.MoveToOuterDisposeScope(), S.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// The plain recurrence, one step at a time (the reference the chunked form and the kernel are tested against).
        /// Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="x">Input <c>[b, l, h, p]</c>.</param>
        /// <param name="dt">Time steps <c>[b, l, h]</c>.</param>
        /// <param name="A">Decay rate <c>[h]</c>.</param>
        /// <param name="B">Input matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="C">Output matrix <c>[b, l, g, n]</c>.</param>
        /// <param name="D">Optional skip <c>[h]</c> or <c>[h, p]</c>.</param>
        /// <param name="z">Optional gate <c>[b, l, h, p]</c>.</param>
        /// <param name="dtBias">Optional bias <c>[h]</c>.</param>
        /// <param name="dtSoftplus">Apply softplus to <c>dt + dtBias</c>.</param>
        /// <param name="initialState">Optional initial state <c>[b, h, p, n]</c>.</param>
        public static (Tensor y, Tensor finalState) SequentialScan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? dtBias = null, bool dtSoftplus = false, Tensor? initialState = null)
        {
            Check(x, dt, A, B, C, D, z, dtBias, initialState);
            using var scope = torch.NewDisposeScope();
            var p = Prepare(x, dt, A, B, C, dtBias, dtSoftplus, initialState);
            long L = x.shape[1];
            var S = p.S0;
            var ys = new List<Tensor>((int)L);
            for (long t = 0; t < L; t++)
            {
                S = Advance(S, p.X.select(1, t), p.Dt.select(1, t), p.A, p.B.select(1, t));
                ys.Add((S * p.C.select(1, t).unsqueeze(2)).sum(-1));
            }
            var y = L > 0 ? torch.stack(ys, 1) : torch.zeros_like(p.X);
            y = Finish(y, p, x, D, z);
            if (L == 0) S = S.clone();
            return (y.MoveToOuterDisposeScope(), S.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// One decoding step: <c>y</c> <c>[b, h, p]</c> (dtype of <paramref name="x"/>) and the new state <c>[b, h, p, n]</c>
        /// (compute dtype). The input state is not modified. Fused on CUDA without autograd (the scan kernel, one step).
        /// </summary>
        /// <param name="state">State before the step <c>[b, h, p, n]</c>.</param>
        /// <param name="x">Input <c>[b, h, p]</c>.</param>
        /// <param name="dt">Time step before bias/softplus <c>[b, h]</c>.</param>
        /// <param name="A">Decay rate <c>[h]</c>.</param>
        /// <param name="B">Input matrix <c>[b, g, n]</c>.</param>
        /// <param name="C">Output matrix <c>[b, g, n]</c>.</param>
        /// <param name="D">Optional skip <c>[h]</c> or <c>[h, p]</c>.</param>
        /// <param name="z">Optional gate <c>[b, h, p]</c>.</param>
        /// <param name="dtBias">Optional bias <c>[h]</c>.</param>
        /// <param name="dtSoftplus">Apply softplus to <c>dt + dtBias</c>.</param>
        public static (Tensor y, Tensor newState) Step(Tensor state, Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? dtBias = null, bool dtSoftplus = false)
        {
            ScanMath.RequireRank(x, nameof(x), "[b, h, p]", 3);
            if (Fused.CudaScanKernels.Applies(x, state, dt, A, B, C, D, z, dtBias)
                && Fused.CudaScanKernels.TrySsd(x.unsqueeze(1), dt.unsqueeze(1), A, B.unsqueeze(1), C.unsqueeze(1), D, z?.unsqueeze(1),
                    dtBias, dtSoftplus, state) is { } fused)
                using (fused.y) return (fused.y.squeeze(1), fused.finalState);
            var (y, s) = SequentialScan(x.unsqueeze(1), dt.unsqueeze(1), A, B.unsqueeze(1), C.unsqueeze(1), D, z?.unsqueeze(1),
                dtBias, dtSoftplus, state);
            using (y) return (y.squeeze(1), s);
        }

        private static Tensor Advance(Tensor S, Tensor x, Tensor dt, Tensor A, Tensor B) =>
            S * torch.exp(dt * A).unsqueeze(-1).unsqueeze(-1) + (x * dt.unsqueeze(-1)).unsqueeze(-1) * B.unsqueeze(2);

        private sealed class Prepared
        {
            public required Tensor X { get; init; }   // [b, l, h, p]
            public required Tensor Dt { get; init; }  // [b, l, h], after bias and softplus
            public required Tensor A { get; init; }   // [h]
            public required Tensor B { get; init; }   // [b, l, h, n], groups repeated per head
            public required Tensor C { get; init; }
            public required Tensor S0 { get; init; }  // [b, h, p, n]
            public required ScalarType ComputeType { get; init; }
        }

        private static Prepared Prepare(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? dtBias, bool dtSoftplus,
            Tensor? initialState)
        {
            var cdt = ScanMath.ComputeType(x);
            long b = x.shape[0], h = x.shape[2], hp = x.shape[3], g = B.shape[2], n = B.shape[3];
            var d = dt.to_type(cdt);
            if (dtBias is not null) d = d + dtBias.to_type(cdt);
            if (dtSoftplus) d = torch.nn.functional.softplus(d);
            return new Prepared
            {
                X = x.to_type(cdt),
                Dt = d,
                A = A.to_type(cdt),
                B = PerHead(B.to_type(cdt), h / g),
                C = PerHead(C.to_type(cdt), h / g),
                S0 = initialState is not null
                    ? initialState.to_type(cdt)
                    : torch.zeros(new[] { b, h, hp, n }, dtype: cdt, device: x.device),
                ComputeType = cdt,
            };
        }

        /// <summary><c>[b, l, g, n] -&gt; [b, l, g·r, n]</c>: head <c>i</c> reads group <c>i / r</c> (mamba_ssm's grouping).</summary>
        internal static Tensor PerHead(Tensor grouped, long headsPerGroup) =>
            headsPerGroup == 1 ? grouped : grouped.repeat_interleave(headsPerGroup, 2);

        private static Tensor Finish(Tensor y, Prepared p, Tensor x, Tensor? D, Tensor? z)
        {
            if (D is not null) y = y + p.X * (D.dim() == 1 ? D.to_type(p.ComputeType).unsqueeze(-1) : D.to_type(p.ComputeType));
            if (z is not null) y = y * torch.nn.functional.silu(z.to_type(p.ComputeType));
            return y.to_type(x.dtype);
        }

        internal static void Check(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, Tensor? dtBias,
            Tensor? initialState)
        {
            ScanMath.RequireRank(x, nameof(x), "[b, l, h, p]", 4);
            long b = x.shape[0], L = x.shape[1], h = x.shape[2], hp = x.shape[3];
            ScanMath.Require(dt, nameof(dt), "[b, l, h]", b, L, h);
            ScanMath.Require(A, nameof(A), "[h]", h);
            ScanMath.RequireRank(B, nameof(B), "[b, l, g, n]", 4);
            long g = B.shape[2], n = B.shape[3];
            ScanMath.Require(B, nameof(B), "[b, l, g, n]", b, L, g, n);
            ScanMath.Require(C, nameof(C), "[b, l, g, n] (B's shape)", b, L, g, n);
            if (g < 1 || h % g != 0) throw new ArgumentException($"the {g} groups of B and C must divide the {h} heads", nameof(B));
            if (D is not null && !(D.dim() == 1 && D.shape[0] == h) && !(D.dim() == 2 && D.shape[0] == h && D.shape[1] == hp))
                throw new ArgumentException($"D must be [h] or [h, p], got {ScanMath.Dims(D)}", nameof(D));
            ScanMath.Require(z, nameof(z), "[b, l, h, p] (x's shape)", b, L, h, hp);
            ScanMath.Require(dtBias, nameof(dtBias), "[h]", h);
            ScanMath.Require(initialState, nameof(initialState), "[b, h, p, n]", b, h, hp, n);
        }
    }
}
