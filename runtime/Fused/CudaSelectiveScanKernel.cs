using System;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Fused CUDA selective scan (forward) and decode step, installable as <see cref="SelectiveScan.Kernel"/>.
    /// float32 state in registers, chunks of 64 steps staged in shared memory, softplus/bias of delta, the D skip and
    /// the silu(z) gate fused; I/O in float32, float16 or bfloat16 (<c>delta, B, C, z</c> are cast to <c>u</c>'s dtype,
    /// <c>A, D, deltaBias</c> and the state are float32). Inference only: <see cref="Supports"/> declines when autograd
    /// is needed, and a kernel that cannot run (no NVRTC, failed compile, n &gt; 32) falls back to
    /// <see cref="SelectiveScan.ChunkedScan"/> / the reference step.
    /// </summary>
    public sealed class CudaSelectiveScanKernel : ISelectiveScanKernel
    {
        private const int ChannelsPerBlock = 16;
        private const int ChunkSteps = 64;

        /// <summary>Largest state size the kernel handles.</summary>
        public const int MaxStateSize = 32;

        /// <summary>
        /// Installs a new instance as <see cref="SelectiveScan.Kernel"/> and returns it, or returns null (leaving the
        /// slot unchanged) when fused kernels are unavailable in this process.
        /// </summary>
        public static CudaSelectiveScanKernel? Install()
        {
            if (!KernelRuntime.Shared.IsAvailable) return null;
            var k = new CudaSelectiveScanKernel();
            SelectiveScan.Kernel = k;
            return k;
        }

        /// <inheritdoc />
        public bool Supports(Tensor u, bool requiresGrad) =>
            !requiresGrad && u.device_type == DeviceType.CUDA && FusedKernels.DtypeCode(u.dtype) >= 0 && KernelRuntime.Shared.IsAvailable;

        private static int GroupSize(long n)
        {
            int g = 1;
            while (g < n) g <<= 1;
            return g;
        }

        /// <inheritdoc />
        public (Tensor y, Tensor lastState) Scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z,
            Tensor? deltaBias, bool deltaSoftplus, Tensor? initialState)
        {
            var r = TryScan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState);
            return r ?? SelectiveScan.ChunkedScan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, initialState);
        }

        /// <summary>The fused scan, or null when it cannot run (caller falls back). Arguments as in <see cref="SelectiveScan.Scan"/>.</summary>
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
        public (Tensor y, Tensor lastState)? TryScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z,
            Tensor? deltaBias, bool deltaSoftplus, Tensor? initialState)
        {
            if (u.dim() != 3) throw new ArgumentException($"u must be [batch, d, L], got [{string.Join(", ", u.shape)}]", nameof(u));
            long batch = u.shape[0], dim = u.shape[1], L = u.shape[2];
            if (A.dim() != 2 || A.shape[0] != dim) throw new ArgumentException("A must be [d, n]", nameof(A));
            long n = A.shape[1];
            Require(delta, nameof(delta), batch, dim, L);
            Require(B, nameof(B), batch, n, L);
            Require(C, nameof(C), batch, n, L);
            if (z is not null) Require(z, nameof(z), batch, dim, L);
            if (initialState is not null) Require(initialState, nameof(initialState), batch, dim, n);
            int dt = FusedKernels.DtypeCode(u.dtype);
            if (dt < 0 || u.device_type != DeviceType.CUDA || !KernelRuntime.Shared.IsAvailable) return null;
            if (n < 1 || n > MaxStateSize || batch > 65535 || dim > int.MaxValue || L > int.MaxValue) return null;
            if (FusedOps.NeedsGrad(u, delta, A, B, C, D, z, deltaBias, initialState)) return null;
            int dev = FusedOps.DeviceIndex(u);
            try
            {
                using var scope = torch.NewDisposeScope();
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Scan(dt), "selective_scan_fwd", dev);
                var io = u.dtype;
                var uc = u.contiguous();
                var dc = delta.to_type(io).contiguous();
                var bc = B.to_type(io).contiguous();
                var cc = C.to_type(io).contiguous();
                var zc = z?.to_type(io).contiguous();
                var ac = FusedOps.Param(A, u);
                var Dc = D is null ? null : FusedOps.Param(D, u);
                var bias = deltaBias is null ? null : FusedOps.Param(deltaBias, u);
                var h0 = initialState is null ? null : FusedOps.Param(initialState, u);
                var y = torch.empty(new[] { batch, dim, L }, dtype: io, device: u.device);
                var hlast = torch.empty(new[] { batch, dim, n }, dtype: ScalarType.Float32, device: u.device);
                if (L == 0 || batch == 0 || dim == 0)
                {
                    if (h0 is not null) hlast.copy_(h0); else hlast.zero_();
                    return (y.MoveToOuterDisposeScope(), hlast.MoveToOuterDisposeScope());
                }
                int G = GroupSize(n);
                uint shared = (uint)((4 * ChannelsPerBlock + 2 * n) * (ChunkSteps + 1) * sizeof(float));
                using var args = new KernelArguments(dev);
                args.Add(uc, io, "u").Add(dc, io, "delta").Add(ac, ScalarType.Float32, "A").Add(bc, io, "B").Add(cc, io, "C")
                    .AddOptional(Dc, ScalarType.Float32, "D").AddOptional(zc, io, "z").AddOptional(bias, ScalarType.Float32, "deltaBias")
                    .AddOptional(h0, ScalarType.Float32, "initialState").Add(y, io, "y").Add(hlast, ScalarType.Float32, "lastState")
                    .Add((int)dim).Add((int)n).Add((int)L).Add(G).Add(deltaSoftplus ? 1 : 0);
                fn.Launch(new Dim3((uint)((dim + ChannelsPerBlock - 1) / ChannelsPerBlock), (uint)batch),
                    new Dim3((uint)(ChannelsPerBlock * G)), shared, args);
                return (y.MoveToOuterDisposeScope(), hlast.MoveToOuterDisposeScope());
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <inheritdoc />
        public (Tensor y, Tensor newState) Step(Tensor state, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D,
            Tensor? z, Tensor? deltaBias, bool deltaSoftplus)
        {
            var r = TryStep(state, u, delta, A, B, C, D, z, deltaBias, deltaSoftplus);
            if (r is not null) return r.Value;
            // The reference step, with this kernel suppressed on this thread so that SelectiveScan does not call back here.
            using (SelectiveScan.SuppressKernel())
                return SelectiveScan.Step(state, u, delta, A, B, C, D, z, deltaBias, deltaSoftplus);
        }

        /// <summary>The fused decode step, or null when it cannot run. Arguments as in <see cref="SelectiveScan.Step"/>.</summary>
        /// <param name="state">State <c>[batch, d, n]</c> (not modified).</param>
        /// <param name="u">Input <c>[batch, d]</c>.</param>
        /// <param name="delta">Time step <c>[batch, d]</c>.</param>
        /// <param name="A">State matrix <c>[d, n]</c>.</param>
        /// <param name="B">Input matrix <c>[batch, n]</c>.</param>
        /// <param name="C">Output matrix <c>[batch, n]</c>.</param>
        /// <param name="D">Optional skip <c>[d]</c>.</param>
        /// <param name="z">Optional gate <c>[batch, d]</c>.</param>
        /// <param name="deltaBias">Optional bias <c>[d]</c>.</param>
        /// <param name="deltaSoftplus">Apply softplus to <c>delta + deltaBias</c>.</param>
        public (Tensor y, Tensor newState)? TryStep(Tensor state, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D,
            Tensor? z, Tensor? deltaBias, bool deltaSoftplus)
        {
            if (u.dim() != 2) throw new ArgumentException($"u must be [batch, d], got [{string.Join(", ", u.shape)}]", nameof(u));
            long batch = u.shape[0], dim = u.shape[1];
            if (A.dim() != 2 || A.shape[0] != dim) throw new ArgumentException("A must be [d, n]", nameof(A));
            long n = A.shape[1];
            if (state.dim() != 3 || state.shape[0] != batch || state.shape[1] != dim || state.shape[2] != n)
                throw new ArgumentException("state must be [batch, d, n]", nameof(state));
            int dt = FusedKernels.DtypeCode(u.dtype);
            if (dt < 0 || u.device_type != DeviceType.CUDA || !KernelRuntime.Shared.IsAvailable) return null;
            if (n < 1 || n > MaxStateSize || batch * dim > int.MaxValue) return null;
            if (FusedOps.NeedsGrad(state, u, delta, A, B, C, D, z, deltaBias)) return null;
            int dev = FusedOps.DeviceIndex(u);
            try
            {
                using var scope = torch.NewDisposeScope();
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Scan(dt), "selective_scan_step", dev);
                var io = u.dtype;
                var uc = u.contiguous();
                var dc = delta.to_type(io).contiguous();
                var bc = B.to_type(io).contiguous();
                var cc = C.to_type(io).contiguous();
                var zc = z?.to_type(io).contiguous();
                var ac = FusedOps.Param(A, u);
                var Dc = D is null ? null : FusedOps.Param(D, u);
                var bias = deltaBias is null ? null : FusedOps.Param(deltaBias, u);
                var s = FusedOps.Param(state, u);
                var y = torch.empty(new[] { batch, dim }, dtype: io, device: u.device);
                var ns = torch.empty(new[] { batch, dim, n }, dtype: ScalarType.Float32, device: u.device);
                int G = GroupSize(n);
                int rowsPerBlock = 256 / G;
                using var args = new KernelArguments(dev);
                args.Add(s, ScalarType.Float32, "state").Add(uc, io, "u").Add(dc, io, "delta").Add(ac, ScalarType.Float32, "A")
                    .Add(bc, io, "B").Add(cc, io, "C").AddOptional(Dc, ScalarType.Float32, "D").AddOptional(zc, io, "z")
                    .AddOptional(bias, ScalarType.Float32, "deltaBias").Add(ns, ScalarType.Float32, "newState").Add(y, io, "y")
                    .Add((int)batch).Add((int)dim).Add((int)n).Add(G).Add(deltaSoftplus ? 1 : 0);
                fn.Launch(new Dim3((uint)Math.Max(1, (batch * dim + rowsPerBlock - 1) / rowsPerBlock)), new Dim3(256), 0, args);
                return (y.MoveToOuterDisposeScope(), ns.MoveToOuterDisposeScope());
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        private static void Require(Tensor t, string name, long a, long b, long c)
        {
            if (t.dim() != 3 || t.shape[0] != a || t.shape[1] != b || t.shape[2] != c)
                throw new ArgumentException($"{name} must be [{a}, {b}, {c}], got [{string.Join(", ", t.shape)}]", name);
        }
    }
}
