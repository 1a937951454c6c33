using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// The Mamba (S6) selective scan, in the argument convention of <c>mamba_ssm.selective_scan_fn</c>:
    /// <code>
    ///   dt_t   = softplus?(delta_t + deltaBias)                      [batch, d, L]
    ///   h_t    = exp(dt_t · A) ⊙ h_{t-1} + dt_t · B_t · u_t           h: [batch, d, n]
    ///   y_t    = Σ_n h_t[n] · C_t[n] + D · u_t                        [batch, d, L]
    ///   y      = y ⊙ silu(z)                                          (when z is given)
    /// </code>
    /// Shapes: <c>u, delta, z: [batch, d, L]</c>; <c>A: [d, n]</c>; <c>B, C: [batch, n, L]</c> (input dependent);
    /// <c>D, deltaBias: [d]</c>; states <c>[batch, d, n]</c>.
    /// The recurrence is computed in float32 (float64 when <c>u</c> is float64); <c>y</c> is returned in <c>u</c>'s
    /// dtype and the state in the compute dtype. All functions are differentiable with TorchSharp autograd and run on
    /// any device. A fused implementation can be installed with <see cref="Kernel"/>.
    /// </summary>
    public static class SelectiveScan
    {
        /// <summary>Default chunk length of the chunked algorithm.</summary>
        public const int DefaultChunkSize = 64;

        /// <summary>
        /// The algorithm the <c>.mix</c> primitive <c>selective_scan</c> uses off the fused path (process-wide, like
        /// <see cref="Kernel"/>). Chunked by default, because it is the one that scales with the length; the sequential
        /// scan is faster for small models on a CPU (the language example's <c>--scan-chunk 0</c>). Runtime
        /// <see cref="MambaMixer"/> modules keep their own <c>ScanAlgorithm</c>.
        /// </summary>
        public static SelectiveScanAlgorithm DefaultAlgorithm { get; set; } = SelectiveScanAlgorithm.Chunked;

        /// <summary>Chunk length the <c>.mix</c> primitive uses with <see cref="SelectiveScanAlgorithm.Chunked"/>.</summary>
        public static int DefaultChunkLength
        {
            get => s_defaultChunkLength;
            set => s_defaultChunkLength = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "the chunk length must be positive");
        }

        private static int s_defaultChunkLength = DefaultChunkSize;

        /// <summary>
        /// Optional fused implementation (e.g. a CUDA kernel). When set and <see cref="ISelectiveScanKernel.Supports"/>
        /// accepts the inputs, <see cref="Scan"/>, <see cref="ScanWithState"/> and <see cref="Step"/> delegate to it.
        /// </summary>
        public static ISelectiveScanKernel? Kernel { get; set; }

        [ThreadStatic] private static int s_suppressed;

        /// <summary>
        /// Keeps <see cref="Kernel"/> out of scans on this thread until the returned scope is disposed: how a layer
        /// marked <c>@fused(false)</c> runs the reference scan even where the fused kernel is installed.
        /// </summary>
        public static IDisposable SuppressKernel()
        {
            s_suppressed++;
            return new Suppression();
        }

        private sealed class Suppression : IDisposable
        {
            private bool _done;
            public void Dispose()
            {
                if (_done) return;
                _done = true;
                s_suppressed--;
            }
        }

        /// <summary>Whether kernels are kept out on this thread (inside <see cref="SuppressKernel"/>: a <c>@fused(false)</c> layer).</summary>
        public static bool KernelSuppressed => s_suppressed > 0;

        private static ISelectiveScanKernel? ActiveKernel => s_suppressed > 0 ? null : Kernel;

        /// <summary>
        /// Selective scan returning only <c>y</c> <c>[batch, d, L]</c> (dtype of <paramref name="u"/>).
        /// See the class documentation for the shapes and the math.
        /// </summary>
        /// <param name="u">Input <c>[batch, d, L]</c>.</param>
        /// <param name="delta">Time steps before bias/softplus, <c>[batch, d, L]</c>.</param>
        /// <param name="A">State matrix (diagonal per channel) <c>[d, n]</c>; must be ≤ 0 for the chunked algorithm's stability.</param>
        /// <param name="B">Input matrix <c>[batch, n, L]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n, L]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d, L]</c>; the output is multiplied by <c>silu(z)</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c> added to <paramref name="delta"/>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        /// <param name="initialState">Optional state <c>[batch, d, n]</c> before the first step (zeros otherwise).</param>
        /// <param name="algorithm">TorchSharp algorithm used when no <see cref="Kernel"/> applies.</param>
        /// <param name="chunkSize">Chunk length for <see cref="SelectiveScanAlgorithm.Chunked"/>.</param>
        public static Tensor Scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D = null, Tensor? z = null,
            Tensor? deltaBias = null, bool deltaSoftplus = false, Tensor? initialState = null,
            SelectiveScanAlgorithm algorithm = SelectiveScanAlgorithm.Chunked, int chunkSize = DefaultChunkSize)
        {
            using var scope = torch.NewDisposeScope();
            var (y, _) = ScanWithState(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState, algorithm, chunkSize);
            return y.MoveToOuterDisposeScope();
        }

        /// <summary>
        /// Selective scan returning <c>y</c> <c>[batch, d, L]</c> and the state after the last step <c>[batch, d, n]</c>
        /// (compute dtype). Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="u">Input <c>[batch, d, L]</c>.</param>
        /// <param name="delta">Time steps before bias/softplus, <c>[batch, d, L]</c>.</param>
        /// <param name="A">State matrix <c>[d, n]</c>.</param>
        /// <param name="B">Input matrix <c>[batch, n, L]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n, L]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d, L]</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        /// <param name="initialState">Optional initial state <c>[batch, d, n]</c>.</param>
        /// <param name="algorithm">TorchSharp algorithm used when no <see cref="Kernel"/> applies.</param>
        /// <param name="chunkSize">Chunk length for the chunked algorithm.</param>
        public static (Tensor y, Tensor lastState) ScanWithState(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = false,
            Tensor? initialState = null, SelectiveScanAlgorithm algorithm = SelectiveScanAlgorithm.Chunked,
            int chunkSize = DefaultChunkSize)
        {
            var kernel = ActiveKernel;
            if (kernel is not null && kernel.Supports(u, AnyRequiresGrad(u, delta, A, B, C, D, z, deltaBias, initialState)))
                return kernel.Scan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState);
            return algorithm switch
            {
                SelectiveScanAlgorithm.Sequential => SequentialScan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState),
                SelectiveScanAlgorithm.Chunked => ChunkedScan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState, chunkSize),
                _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unknown selective scan algorithm"),
            };
        }

        /// <summary>
        /// Reference implementation: the plain per-time-step recurrence (L sequential steps).
        /// Returns <c>y</c> <c>[batch, d, L]</c> and the last state <c>[batch, d, n]</c>. Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="u">Input <c>[batch, d, L]</c>.</param>
        /// <param name="delta">Time steps <c>[batch, d, L]</c>.</param>
        /// <param name="A">State matrix <c>[d, n]</c>.</param>
        /// <param name="B">Input matrix <c>[batch, n, L]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n, L]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d, L]</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        /// <param name="initialState">Optional initial state <c>[batch, d, n]</c>.</param>
        public static (Tensor y, Tensor lastState) SequentialScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = false,
            Tensor? initialState = null)
        {
            using var scope = torch.NewDisposeScope();
            var p = Prepare(u, delta, A, B, C, deltaBias, deltaSoftplus, initialState);
            long L = p.Length;

            // dA, dBu: [batch, d, L, n]
            var dA = torch.exp(p.Dt.unsqueeze(-1) * p.A.unsqueeze(1));
            var dBu = (p.Dt * p.U).unsqueeze(-1) * p.B.transpose(1, 2).unsqueeze(1);
            var Ct = p.C.transpose(1, 2).unsqueeze(1); // [batch, 1, L, n]

            var h = p.H0;
            var ys = new List<Tensor>((int)L);
            for (long t = 0; t < L; t++)
            {
                h = dA.select(2, t) * h + dBu.select(2, t);
                ys.Add((h * Ct.select(2, t)).sum(-1));
            }
            var y = L > 0 ? torch.stack(ys, -1) : torch.zeros_like(p.U);
            if (L == 0) h = h.clone();
            y = Finish(y, p, u, D, z);
            return (y.MoveToOuterDisposeScope(), h.MoveToOuterDisposeScope());
        }

        /// <summary>Elements a chunk's <c>batch·d·n·T²</c> intermediates may take (64 Mi floats, 256 MiB in fp32).</summary>
        public const long ChunkElementBudget = 64L * 1024 * 1024;

        /// <summary>
        /// The chunk length actually used: the requested one, shortened (not below 4) so that one chunk's
        /// <c>batch·d·n·T²</c> intermediates stay within <see cref="ChunkElementBudget"/>. Training batches of
        /// small models otherwise ask for gigabytes per chunk.
        /// </summary>
        public static int BoundedChunk(int requested, long batchTimesChannelsTimesState)
        {
            if (batchTimesChannelsTimesState <= 0) return requested;
            long fit = (long)Math.Floor(Math.Sqrt((double)ChunkElementBudget / batchTimesChannelsTimesState));
            return (int)Math.Max(Math.Min(requested, Math.Max(fit, 4)), 1);
        }

        /// <summary>
        /// Chunked closed-form scan. Within each chunk of <paramref name="chunkSize"/> steps the states are
        /// <c>h_t = exp(S_t) h_start + Σ_{s≤t} exp(seg(s,t)) · dt_s B_s u_s</c>, where
        /// <c>seg(s,t) = Σ_{k=s+1..t} dt_k A</c> is accumulated by a masked cumulative sum (no differences of large
        /// cumulative sums, every exponent ≤ 0 when A ≤ 0, so it is stable in float32); the state at the end of a chunk
        /// is carried into the next. The last chunk may be shorter. Memory per chunk: <c>batch·d·n·T²</c> elements.
        /// Returns <c>y</c> <c>[batch, d, L]</c> and the last state. Arguments as in <see cref="Scan"/>.
        /// </summary>
        /// <param name="u">Input <c>[batch, d, L]</c>.</param>
        /// <param name="delta">Time steps <c>[batch, d, L]</c>.</param>
        /// <param name="A">State matrix <c>[d, n]</c>, entries ≤ 0.</param>
        /// <param name="B">Input matrix <c>[batch, n, L]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n, L]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d, L]</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        /// <param name="initialState">Optional initial state <c>[batch, d, n]</c>.</param>
        /// <param name="chunkSize">Chunk length T (≥ 1).</param>
        public static (Tensor y, Tensor lastState) ChunkedScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = false,
            Tensor? initialState = null, int chunkSize = DefaultChunkSize)
        {
            if (chunkSize < 1) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "chunk size must be at least 1");
            using var scope = torch.NewDisposeScope();
            var p = Prepare(u, delta, A, B, C, deltaBias, deltaSoftplus, initialState);
            long L = p.Length;
            chunkSize = BoundedChunk(chunkSize, u.shape[0] * u.shape[1] * A.shape[1]);

            // Log-decays and inputs per (channel, state): [batch, d, n, L]
            var logDecay = p.Dt.unsqueeze(2) * p.A.unsqueeze(0).unsqueeze(-1);
            var x = (p.Dt * p.U).unsqueeze(2) * p.B.unsqueeze(1);
            var Cb = p.C.unsqueeze(1); // [batch, 1, n, L]

            var h = p.H0;
            var ys = new List<Tensor>();
            // Explicit Scalars that live to the end of the method: an implicit Scalar argument is unreachable once its
            // handle is read, so the GC may finalize it while the (long) native masked_fill still reads it — seen as
            // "Expected false to be true … toFloat" under parallel test load.
            using Scalar zero = 0.0, minusInfinity = double.NegativeInfinity;
            Tensor? strictLower = null, lowerIncl = null;
            long maskSize = -1;
            for (long c0 = 0; c0 < L; c0 += chunkSize)
            {
                long T = Math.Min(chunkSize, L - c0);
                if (T != maskSize)
                {
                    var ones = torch.ones(T, T, dtype: ScalarType.Bool, device: u.device);
                    strictLower = torch.tril(ones, -1).logical_not(); // true where s ≥ t: zeroed before the cumsum
                    lowerIncl = torch.tril(ones, 0).logical_not();    // true where s > t: -inf after the cumsum
                    maskSize = T;
                }
                var a = logDecay.narrow(-1, c0, T);                       // [b, d, n, T]
                var xc = x.narrow(-1, c0, T);                             // [b, d, n, T]
                // seg[t, s] = Σ_{k=s+1..t} a_k for s ≤ t, -inf above the diagonal.
                var rep = a.unsqueeze(-1).expand(-1, -1, -1, T, T).masked_fill(strictLower!, zero);
                var seg = rep.cumsum(-2).masked_fill(lowerIncl!, minusInfinity);
                var decay = torch.exp(seg);                               // [b, d, n, T, T]
                var states = torch.matmul(decay, xc.unsqueeze(-1)).squeeze(-1);
                states = states + torch.exp(a.cumsum(-1)) * h.unsqueeze(-1);
                ys.Add((states * Cb.narrow(-1, c0, T)).sum(2));          // [b, d, T]
                h = states.select(-1, T - 1);
            }
            var y = ys.Count > 0 ? torch.cat(ys, -1) : torch.zeros_like(p.U);
            if (L == 0) h = h.clone();
            y = Finish(y, p, u, D, z);
            return (y.MoveToOuterDisposeScope(), h.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// One recurrent step (decoding): returns <c>y</c> <c>[batch, d]</c> (dtype of <paramref name="u"/>) and the new
        /// state <c>[batch, d, n]</c> (compute dtype). The input state is not modified.
        /// </summary>
        /// <param name="state">State before the step <c>[batch, d, n]</c>.</param>
        /// <param name="u">Input <c>[batch, d]</c>.</param>
        /// <param name="delta">Time step before bias/softplus <c>[batch, d]</c>.</param>
        /// <param name="A">State matrix <c>[d, n]</c>.</param>
        /// <param name="B">Input matrix <c>[batch, n]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d]</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        public static (Tensor y, Tensor newState) Step(Tensor state, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
            Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = false)
        {
            var kernel = ActiveKernel;
            if (kernel is not null && kernel.Supports(u, AnyRequiresGrad(state, u, delta, A, B, C, D, z, deltaBias)))
                return kernel.Step(state, u, delta, A, B, C, D, z, deltaBias, deltaSoftplus);
            if (u.dim() != 2) throw new ArgumentException($"u must be [batch, d], got [{string.Join(", ", u.shape)}]", nameof(u));
            if (state.dim() != 3) throw new ArgumentException("state must be [batch, d, n]", nameof(state));

            using var scope = torch.NewDisposeScope();
            var cdt = Scans.ScanMath.ComputeType(u);
            var dt = delta.to_type(cdt);
            if (deltaBias is not null) dt = dt + deltaBias.to_type(cdt);
            if (deltaSoftplus) dt = torch.nn.functional.softplus(dt);
            var uf = u.to_type(cdt);
            var dA = torch.exp(dt.unsqueeze(-1) * A.to_type(cdt));                     // [b, d, n]
            var newState = state.to_type(cdt) * dA + (dt * uf).unsqueeze(-1) * B.to_type(cdt).unsqueeze(1);
            var y = (newState * C.to_type(cdt).unsqueeze(1)).sum(-1);                 // [b, d]
            if (D is not null) y = y + uf * D.to_type(cdt);
            if (z is not null) y = y * torch.nn.functional.silu(z.to_type(cdt));
            y = y.to_type(u.dtype);
            return (y.MoveToOuterDisposeScope(), newState.MoveToOuterDisposeScope());
        }

        private sealed class Prepared
        {
            public required Tensor U { get; init; }
            public required Tensor Dt { get; init; }
            public required Tensor A { get; init; }
            public required Tensor B { get; init; }
            public required Tensor C { get; init; }
            public required Tensor H0 { get; init; }
            public required long Length { get; init; }
            public required ScalarType ComputeType { get; init; }
        }

        private static Prepared Prepare(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? deltaBias,
            bool deltaSoftplus, Tensor? initialState)
        {
            if (u.dim() != 3) throw new ArgumentException($"u must be [batch, d, L], got [{string.Join(", ", u.shape)}]", nameof(u));
            long batch = u.shape[0], d = u.shape[1], L = u.shape[2];
            if (!SameShape(delta, batch, d, L)) throw new ArgumentException("delta must have u's shape [batch, d, L]", nameof(delta));
            if (A.dim() != 2 || A.shape[0] != d) throw new ArgumentException("A must be [d, n]", nameof(A));
            long n = A.shape[1];
            if (!SameShape(B, batch, n, L)) throw new ArgumentException("B must be [batch, n, L]", nameof(B));
            if (!SameShape(C, batch, n, L)) throw new ArgumentException("C must be [batch, n, L]", nameof(C));
            if (initialState is not null && !SameShape(initialState, batch, d, n))
                throw new ArgumentException("initialState must be [batch, d, n]", nameof(initialState));

            var cdt = Scans.ScanMath.ComputeType(u);
            var dt = delta.to_type(cdt);
            if (deltaBias is not null) dt = dt + deltaBias.to_type(cdt).unsqueeze(-1);
            if (deltaSoftplus) dt = torch.nn.functional.softplus(dt);
            return new Prepared
            {
                U = u.to_type(cdt),
                Dt = dt,
                A = A.to_type(cdt),
                B = B.to_type(cdt),
                C = C.to_type(cdt),
                H0 = initialState is not null
                    ? initialState.to_type(cdt)
                    : torch.zeros(new[] { batch, d, n }, dtype: cdt, device: u.device),
                Length = L,
                ComputeType = cdt,
            };
        }

        private static Tensor Finish(Tensor y, Prepared p, Tensor u, Tensor? D, Tensor? z)
        {
            if (D is not null) y = y + p.U * D.to_type(p.ComputeType).unsqueeze(-1);
            if (z is not null) y = y * torch.nn.functional.silu(z.to_type(p.ComputeType));
            return y.to_type(u.dtype);
        }

        private static bool SameShape(Tensor t, long a, long b, long c) =>
            t.dim() == 3 && t.shape[0] == a && t.shape[1] == b && t.shape[2] == c;

        private static bool AnyRequiresGrad(params Tensor?[] tensors)
        {
            if (!torch.is_grad_enabled()) return false;
            foreach (var t in tensors)
                if (t is not null && t.requires_grad) return true;
            return false;
        }
    }
}
