using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using Mix.Runtime.Builtins;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Fused CUDA forward of the scan primitives (<see cref="Scans.SsdScan"/>, <see cref="Scans.GlaScan"/>,
    /// <see cref="Scans.CausalConv1d"/>, short causal <see cref="Scans.FftConv"/>): inference only, I/O in float32,
    /// float16 or bfloat16, float32 state. Every method returns null when its kernel cannot run (then the caller takes
    /// the reference path); a kernel that fails to compile is reported once by <see cref="KernelRuntime"/>.
    /// </summary>
    public static class CudaScanKernels
    {
        private const int ValueColumns = 32;     // GS_VB
        private const int SharedFloats = 8192;   // 32 KiB of staging per block
        private const int MaxKeys = 256;         // 8 lanes × 32 registers

        /// <summary>
        /// Whether bfloat16 GLA takes the tensor-core chunked kernels (<c>chunk_state_gla_tc</c>,
        /// <c>chunk_output_gla_tc</c>) rather than the float32-FMA ones; on by default. A switch so that the two can be
        /// compared in one process (benchmarks, tests); half-precision SSD always takes its tensor-core kernels.
        /// </summary>
        public static bool UseGlaTensorCores { get; set; } = true;

        /// <summary>
        /// Whether bfloat16 GLA on tensor cores takes the second form of the chunked kernels (<c>chunk_state_gla_tc2</c>,
        /// <c>chunk_state_pass_t</c>, <c>chunk_output_gla_tc2</c>: the intra-chunk scores by secondary chunking, on tensor
        /// cores below the diagonal 16-step blocks, formed once per 128 value columns; the entering states passed to the
        /// output in the I/O type) rather than the first (<c>chunk_state_gla_tc</c>, <c>chunk_state_pass</c>,
        /// <c>chunk_output_gla_tc</c>). On by default since run 18a (H100, bf16, same process, `--only scans-vs-triton`):
        /// 0.080 → 0.073 ms at b1 2K, 0.609 → 0.244 at b1 16K, 0.293 → 0.115 at b4 2K, 2.262 → 0.783 at b4 16K, relative
        /// error against the reference path 3.05e-3 (first form 2.69e-3); the g++ emulation covers partial chunks and
        /// tiles, initial states and steep gates. Needs key and value sizes that are multiples of 8 and 16-byte aligned
        /// inputs, else the first form runs.
        /// </summary>
        public static bool UseGlaSecondForm { get; set; } = true;

        /// <summary>
        /// Diagnostics only (the <c>ssd-debug</c> benchmark): false sends half-precision SSD to the float32-FMA chunked
        /// kernels instead of its tensor-core ones.
        /// </summary>
        internal static bool UseSsdTensorCores { get; set; } = true;

        /// <summary>
        /// Diagnostics only (the <c>ssd-debug</c> benchmark): called after each chunked launch with the stage's name
        /// (<c>chunk_state</c>, <c>chunk_state_pass</c>) and the workspace it wrote (the float32 states
        /// <c>[b·h, chunks, K, V]</c>; the decays <c>[b·h, chunks, 1 or K]</c> after chunk_state). The tensors belong to the
        /// launch's dispose scope: copy what must outlive it.
        /// </summary>
        internal static Action<string, Tensor>? StageProbe { get; set; }

        /// <summary>Steps per chunk of the chunked kernels (fixed: a caller's chunk size changes only the reference's rounding).</summary>
        public const int ChunkSize = ChunkScanKernelSources.Chunk;

        /// <summary>Steps per chunk of half-precision SSD's tensor-core kernels.</summary>
        public const int SsdTensorCoreChunkSize = ChunkScanKernelSources.SsdTensorCoreChunk;

        private static readonly ConcurrentDictionary<(string, int), CudaKernelSpec> Specs = new();

        private static CudaKernelSpec Spec(string name, string body, int dtype) =>
            Specs.GetOrAdd((name, dtype), _ => new CudaKernelSpec(name, FusedKernelSources.Prelude + body, $"-DMIX_T={dtype}"));

        /// <summary>The kernel specs for the given dtype codes (for <see cref="KernelRuntime.WarmUp"/>).</summary>
        /// <param name="dtypes">dtype codes (0 float32, 1 float16, 2 bfloat16).</param>
        public static IEnumerable<CudaKernelSpec> All(IEnumerable<int> dtypes)
        {
            foreach (var d in dtypes)
            {
                yield return Spec("mix_gated_scan", ScanKernelSources.GatedScan, d);
                yield return Spec("mix_chunk_scan", ChunkScanKernelSources.Source, d);
                yield return Spec("mix_causal_conv1d", ScanKernelSources.CausalConv, d);
            }
        }

        /// <summary>
        /// Whether a fused scan may run: the first tensor on CUDA in a supported dtype, no autograd through any of them,
        /// <see cref="MixDispatch.FusedEnabled"/> on and the kernel runtime available.
        /// </summary>
        /// <param name="tensors">The call's tensors, the main input first.</param>
        public static bool Applies(params Tensor?[] tensors) =>
            MixDispatch.FusedEnabled && tensors[0] is { } t && t.device_type == DeviceType.CUDA
            && FusedKernels.DtypeCode(t.dtype) >= 0 && !FusedOps.NeedsGrad(tensors) && KernelRuntime.Shared.IsAvailable;

        /// <summary>
        /// Whether the chunked kernels take a call of <paramref name="batch"/> × <paramref name="heads"/> sequences with
        /// <paramref name="keys"/> × <paramref name="values"/> states (grid limits only: any length, key or value size).
        /// </summary>
        /// <param name="batch">Batch size.</param>
        /// <param name="heads">Heads.</param>
        /// <param name="keys">State rows (GLA's K, SSD's d_state).</param>
        /// <param name="values">State columns (GLA's V, SSD's head dim).</param>
        public static bool ChunkedFits(long batch, long heads, long keys, long values) =>
            keys >= 1 && values >= 1 && batch * heads <= 65535
            && Ceil(values, ChunkScanKernelSources.Values) * Ceil(keys, ChunkScanKernelSources.StateKeys) <= 65535;

        private static long Ceil(long a, long b) => (a + b - 1) / b;

        /// <summary>
        /// Whether the chunked kernels take an SSD call (<see cref="ChunkedFits"/> and the dtype: float32 on the FMA
        /// kernels, bfloat16 on the tensor-core ones; float16 is not dispatched there, see <see cref="TrySsd"/>).
        /// </summary>
        /// <param name="x">Input <c>[b, l, h, p]</c>.</param>
        /// <param name="B">Input matrix <c>[b, l, g, n]</c>.</param>
        public static bool SsdChunkedFits(Tensor x, Tensor B) =>
            x.dtype != ScalarType.Float16 && ChunkedFits(x.shape[0], x.shape[2], B.shape[3], x.shape[3]);

        /// <summary>
        /// Fused SSD; arguments and result as <see cref="Scans.SsdScan.Scan"/>. The chunked kernels (chunks of
        /// <see cref="ChunkSize"/> steps, whatever the caller's chunk size: it changes only rounding)
        /// or the recurrent one, as <see cref="ScanDispatch.Ssd"/> picks unless <paramref name="chunked"/> says.
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
        /// <param name="chunked">Force the chunked (true) or recurrent (false) kernels; null: by length.</param>
        public static (Tensor y, Tensor finalState)? TrySsd(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z,
            Tensor? dtBias, bool dtSoftplus, Tensor? initialState, bool? chunked = null)
        {
            Scans.SsdScan.Check(x, dt, A, B, C, D, z, dtBias, initialState);
            if (!Applies(x, dt, A, B, C, D, z, dtBias, initialState)) return null;
            long b = x.shape[0], L = x.shape[1], h = x.shape[2], p = x.shape[3], g = B.shape[2], n = B.shape[3];
            using var scope = torch.NewDisposeScope();
            var d = dt.to(ScalarType.Float32, x.device);
            if (dtBias is not null) d = d + dtBias.to(ScalarType.Float32, x.device);
            if (dtSoftplus) d = torch.nn.functional.softplus(d);
            var Dp = D is null ? null : (D.dim() == 1 ? D.unsqueeze(-1).expand(h, p) : D).to(ScalarType.Float32, x.device).contiguous();
            // The kernels keep the state as [keys, values] = [n, p]; SSD's convention is [p, n].
            // Chunked: float32 on the FMA kernels, bfloat16 on the tensor-core ones. float16 is not dispatched there: the
            // tensor-core output rounds the entering state to the I/O type, and a float32 state can leave float16's range.
            bool useChunked = chunked ?? ScanDispatch.Ssd(L, SsdChunkedFits(x, B)) == ScanForward.Chunked;
            var r = useChunked
                ? LaunchChunked(C, B, x, null, d.contiguous(), FusedOps.Param(A, x), Dp, z, initialState?.transpose(-1, -2), b, L, h, h / g, n, p, 1.0)
                : Launch(C, B, x, null, d.contiguous(), FusedOps.Param(A, x), Dp, z, initialState?.transpose(-1, -2), b, L, h, h / g, n, p, 1.0);
            if (r is null) return null;
            return (r.Value.o.MoveToOuterDisposeScope(), r.Value.state.transpose(-1, -2).contiguous().MoveToOuterDisposeScope());
        }

        /// <summary>
        /// Fused GLA; arguments and result as <see cref="Scans.GlaScan.Scan"/>, with the scale resolved. The chunked or
        /// the recurrent kernels, as <see cref="ScanDispatch.Gla"/> picks unless <paramref name="chunked"/> says.
        /// </summary>
        /// <param name="q">Queries <c>[b, T, h, K]</c>.</param>
        /// <param name="k">Keys <c>[b, T, h, K]</c>.</param>
        /// <param name="v">Values <c>[b, T, h, V]</c>.</param>
        /// <param name="g">Log forget gates <c>[b, T, h, K]</c>.</param>
        /// <param name="scale">Query scale.</param>
        /// <param name="initialState">Optional initial state <c>[b, h, K, V]</c>.</param>
        /// <param name="chunked">Force the chunked (true) or recurrent (false) kernels; null: by length.</param>
        public static (Tensor o, Tensor finalState)? TryGla(Tensor q, Tensor k, Tensor v, Tensor g, double scale, Tensor? initialState,
            bool? chunked = null)
        {
            Scans.GlaScan.Check(q, k, v, g, initialState);
            if (!Applies(q, k, v, g, initialState)) return null;
            using var scope = torch.NewDisposeScope();
            long b = q.shape[0], L = q.shape[1], h = q.shape[2], K = q.shape[3], V = v.shape[3];
            bool useChunked = chunked ?? ScanDispatch.Gla(L, ChunkedFits(b, h, K, V)) == ScanForward.Chunked;
            var r = useChunked
                ? LaunchChunked(q, k, v, g, null, null, null, null, initialState, b, L, h, 1, K, V, scale)
                : Launch(q, k, v, g, null, null, null, null, initialState, b, L, h, 1, K, V, scale);
            if (r is null) return null;
            return (r.Value.o.MoveToOuterDisposeScope(), r.Value.state.MoveToOuterDisposeScope());
        }

        private static (Tensor o, Tensor state)? Launch(Tensor q, Tensor k, Tensor v, Tensor? g, Tensor? dt, Tensor? A, Tensor? Dp,
            Tensor? z, Tensor? s0, long b, long L, long h, long headsPerGroup, long K, long V, double scale)
        {
            if (K < 1 || K > MaxKeys || V < 1 || h > 65535 || b > 65535 || b * L * h * Math.Max(K, V) > int.MaxValue * 8L) return null;
            int code = FusedKernels.DtypeCode(v.dtype);
            var io = v.dtype;
            int dev = FusedOps.DeviceIndex(v);
            try
            {
                var fn = KernelRuntime.Shared.GetFunction(Spec("mix_gated_scan", ScanKernelSources.GatedScan, code), "gated_scan", dev);
                var o = torch.empty(new[] { b, L, h, V }, dtype: io, device: v.device);
                var state = torch.empty(new[] { b, h, K, V }, dtype: ScalarType.Float32, device: v.device);
                if (L == 0)
                {
                    if (s0 is not null) state.copy_(s0); else state.zero_();
                    return (o, state);
                }
                int kpt = 1;
                while (kpt * 8 < K) kpt <<= 1;
                int perStep = (int)(3 * K + 2 + 2 * ValueColumns);
                int TC = (int)Math.Clamp(SharedFloats / perStep, 1, 64);
                uint shared = (uint)((2 * TC * K + (g is null ? TC : TC * K) + TC + 2 * TC * ValueColumns) * sizeof(float));
                using var args = new KernelArguments(dev);
                args.Add(q.to_type(io).contiguous(), io, "q").Add(k.to_type(io).contiguous(), io, "k").Add(v.contiguous(), io, "v")
                    .AddOptional(g?.to_type(io).contiguous(), io, "g")
                    .AddOptional(dt, ScalarType.Float32, "dt").AddOptional(A, ScalarType.Float32, "A").AddOptional(Dp, ScalarType.Float32, "D")
                    .AddOptional(z?.to_type(io).contiguous(), io, "z")
                    .AddOptional(s0 is null ? null : FusedOps.Param(s0, v), ScalarType.Float32, "initialState")
                    .Add(o, io, "o").Add(state, ScalarType.Float32, "finalState")
                    .Add((int)L).Add((int)h).Add((int)headsPerGroup).Add((int)K).Add((int)V).Add(TC).Add((float)scale).Add(kpt);
                fn.Launch(new Dim3((uint)((V + ValueColumns - 1) / ValueColumns), (uint)h, (uint)b), new Dim3(256), shared, args);
                return (o, state);
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        // chunk_state, chunk_state_pass, chunk_output (ChunkScanKernelSources); workspace: the float32 state at each
        // chunk boundary, [b·h, chunks, K, V], and each chunk's total decay.
        private static (Tensor o, Tensor state)? LaunchChunked(Tensor q, Tensor k, Tensor v, Tensor? g, Tensor? dt, Tensor? A,
            Tensor? Dp, Tensor? z, Tensor? s0, long b, long L, long h, long headsPerGroup, long K, long V, double scale)
        {
            if (!ChunkedFits(b, h, K, V) || L > int.MaxValue) return null;
            int code = FusedKernels.DtypeCode(v.dtype);
            var io = v.dtype;
            int dev = FusedOps.DeviceIndex(v);
            // half precision: the tensor-core kernels (SSD: no query scale, its dt and D; GLA: no groups). float16 GLA
            // keeps the FMA kernels: the tensor-core output rounds the entering float32 state to the I/O type.
            bool tensorCores = g is null
                ? io != ScalarType.Float32 && UseSsdTensorCores
                : io == ScalarType.BFloat16 && headsPerGroup == 1 && UseGlaTensorCores;
            string kind = g is null ? "ssd" : "gla";
            if (tensorCores && g is not null && UseGlaSecondForm && K % 8 == 0 && V % 8 == 0 && L > 0)
            {
                var r2 = LaunchGlaSecondForm(q, k, v, g, s0, b, L, h, K, V, scale);
                if (r2 is not null) return r2;
            }
            try
            {
                var spec = Spec("mix_chunk_scan", ChunkScanKernelSources.Source, code);
                var fState = KernelRuntime.Shared.GetFunction(spec, tensorCores ? $"chunk_state_{kind}_tc" : "chunk_state", dev);
                var fPass = KernelRuntime.Shared.GetFunction(spec, "chunk_state_pass", dev);
                var fOut = KernelRuntime.Shared.GetFunction(spec, tensorCores ? $"chunk_output_{kind}_tc" : "chunk_output", dev);
                var o = torch.empty(new[] { b, L, h, V }, dtype: io, device: v.device);
                var state = torch.empty(new[] { b, h, K, V }, dtype: ScalarType.Float32, device: v.device);
                if (L == 0)
                {
                    if (s0 is not null) state.copy_(s0); else state.zero_();
                    return (o, state);
                }
                // SSD's tensor-core kernels take chunks of 256 (row blocks of 64 in chunk_output), the others of 64
                bool longChunks = tensorCores && g is null;
                long chunks = Ceil(L, longChunks ? ChunkScanKernelSources.SsdTensorCoreChunk : ChunkScanKernelSources.Chunk);
                bool scalarDecay = g is null;
                var states = torch.empty(new[] { b * h, chunks, K, V }, dtype: ScalarType.Float32, device: v.device);
                var decays = torch.empty(new[] { b * h, chunks, scalarDecay ? 1 : K }, dtype: ScalarType.Float32, device: v.device);
                var qc = q.to_type(io).contiguous();
                var kc = k.to_type(io).contiguous();
                var vc = v.contiguous();
                var gc = g?.to_type(io).contiguous();
                uint vTiles = (uint)Ceil(V, ChunkScanKernelSources.Values), kTiles = (uint)Ceil(K, ChunkScanKernelSources.StateKeys);
                using (var args = new KernelArguments(dev))
                {
                    // chunk_state (k, v, g, dt, A, …, hpg, K, V); chunk_state_ssd_tc without g; chunk_state_gla_tc with
                    // neither dt, A nor hpg
                    args.Add(kc, io, "k").Add(vc, io, "v");
                    if (!tensorCores || !scalarDecay) args.AddOptional(gc, io, "g");
                    if (!tensorCores || scalarDecay) args.AddOptional(dt, ScalarType.Float32, "dt").AddOptional(A, ScalarType.Float32, "A");
                    args.Add(states, ScalarType.Float32, "states").Add(decays, ScalarType.Float32, "decays").Add((int)L).Add((int)h);
                    if (!tensorCores || scalarDecay) args.Add((int)headsPerGroup);
                    args.Add((int)K).Add((int)V);
                    fState.Launch(new Dim3((uint)chunks, vTiles * kTiles, (uint)(b * h)), new Dim3(256), 0, args);
                }
                if (StageProbe is { } probe)
                {
                    probe("chunk_state", states);
                    probe("decays", decays);
                }
                using (var args = new KernelArguments(dev))
                {
                    args.Add(states, ScalarType.Float32, "states").Add(decays, ScalarType.Float32, "decays")
                        .AddOptional(s0 is null ? null : FusedOps.Param(s0, v), ScalarType.Float32, "initialState")
                        .Add(state, ScalarType.Float32, "finalState")
                        .Add((int)chunks).Add((int)K).Add((int)V).Add(scalarDecay ? 1 : 0);
                    fPass.Launch(new Dim3((uint)Ceil(K * V, 256), (uint)(b * h)), new Dim3(256), 0, args);
                }
                StageProbe?.Invoke("chunk_state_pass", states);
                using (var args = new KernelArguments(dev))
                {
                    // chunk_output (q, k, v, g, dt, A, D, z, …, hpg, K, V, scale); chunk_output_ssd_tc without g and scale;
                    // chunk_output_gla_tc without dt, A, D, z and hpg
                    args.Add(qc, io, "q").Add(kc, io, "k").Add(vc, io, "v");
                    if (!tensorCores || !scalarDecay) args.AddOptional(gc, io, "g");
                    if (!tensorCores || scalarDecay)
                        args.AddOptional(dt, ScalarType.Float32, "dt").AddOptional(A, ScalarType.Float32, "A")
                            .AddOptional(Dp, ScalarType.Float32, "D").AddOptional(z?.to_type(io).contiguous(), io, "z");
                    args.Add(states, ScalarType.Float32, "states").Add(o, io, "o").Add((int)L).Add((int)h);
                    if (!tensorCores || scalarDecay) args.Add((int)headsPerGroup);
                    args.Add((int)K).Add((int)V);
                    if (!tensorCores || !scalarDecay) args.Add((float)scale);
                    uint rowBlocks = longChunks ? (uint)(ChunkScanKernelSources.SsdTensorCoreChunk / ChunkScanKernelSources.Chunk) : 1;
                    fOut.Launch(new Dim3((uint)chunks * rowBlocks, vTiles, (uint)(b * h)), new Dim3(256), 0, args);
                }
                return (o, state);
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        // chunk_state_gla_tc2, chunk_state_pass_t, chunk_output_gla_tc2 (ChunkScanKernelSources): bfloat16 I/O, K and V
        // multiples of 8, inputs read as 16-byte vectors. Workspace: each chunk's float32 contribution, tile-major
        // [b·h, ⌈K·V/512⌉, chunks, 512] over the element index v·K + k, the decays [b·h, chunks, K] and the entering
        // states in the I/O type [b·h, chunks, V, K]. Null (the first form runs) when an input is not 16-byte aligned.
        private static (Tensor o, Tensor state)? LaunchGlaSecondForm(Tensor q, Tensor k, Tensor v, Tensor g, Tensor? s0, long b, long L,
            long h, long K, long V, double scale)
        {
            var io = v.dtype;
            int code = FusedKernels.DtypeCode(io);
            int dev = FusedOps.DeviceIndex(v);
            try
            {
                var qc = q.to_type(io).contiguous();
                var kc = k.to_type(io).contiguous();
                var vc = v.contiguous();
                var gc = g.to_type(io).contiguous();
                foreach (var (t, what) in new[] { (qc, "q"), (kc, "k"), (vc, "v"), (gc, "g") })
                    if (((long)TensorPointers.GetDense(t, io, dev, what) & 15) != 0) return null;
                var spec = Spec("mix_chunk_scan", ChunkScanKernelSources.Source, code);
                var fState = KernelRuntime.Shared.GetFunction(spec, "chunk_state_gla_tc2", dev);
                var fPass = KernelRuntime.Shared.GetFunction(spec, "chunk_state_pass_t", dev);
                var fOut = KernelRuntime.Shared.GetFunction(spec, "chunk_output_gla_tc2", dev);
                long chunks = Ceil(L, ChunkScanKernelSources.Chunk);
                var o = torch.empty(new[] { b, L, h, V }, dtype: io, device: v.device);
                var state = torch.empty(new[] { b, h, K, V }, dtype: ScalarType.Float32, device: v.device);
                long tiles = Ceil(K * V, ChunkScanKernelSources.PassTile);
                var states = torch.empty(new[] { b * h, tiles, chunks, ChunkScanKernelSources.PassTile }, dtype: ScalarType.Float32, device: v.device);
                var decays = torch.empty(new[] { b * h, chunks, K }, dtype: ScalarType.Float32, device: v.device);
                var entering = torch.empty(new[] { b * h, chunks, V, K }, dtype: io, device: v.device);
                uint vTiles = (uint)Ceil(V, ChunkScanKernelSources.OutputValues), kTiles = (uint)Ceil(K, ChunkScanKernelSources.StateKeys);
                using (var args = new KernelArguments(dev))
                {
                    args.Add(kc, io, "k").Add(vc, io, "v").Add(gc, io, "g")
                        .Add(states, ScalarType.Float32, "states").Add(decays, ScalarType.Float32, "decays")
                        .Add((int)L).Add((int)h).Add((int)K).Add((int)V);
                    fState.Launch(new Dim3((uint)chunks, vTiles * kTiles, (uint)(b * h)), new Dim3(256), 0, args);
                }
                using (var args = new KernelArguments(dev))
                {
                    args.Add(states, ScalarType.Float32, "states").Add(decays, ScalarType.Float32, "decays")
                        .AddOptional(s0 is null ? null : FusedOps.Param(s0, v), ScalarType.Float32, "initialState")
                        .Add(state, ScalarType.Float32, "finalState").Add(entering, io, "entering")
                        .Add((int)chunks).Add((int)K).Add((int)V);
                    fPass.Launch(new Dim3((uint)tiles, (uint)(b * h)), new Dim3(256), 0, args);
                }
                using (var args = new KernelArguments(dev))
                {
                    args.Add(qc, io, "q").Add(kc, io, "k").Add(vc, io, "v").Add(gc, io, "g").Add(entering, io, "entering")
                        .Add(o, io, "o").Add((int)L).Add((int)h).Add((int)K).Add((int)V).Add((float)scale);
                    fOut.Launch(new Dim3((uint)chunks, (uint)Ceil(V, ChunkScanKernelSources.OutputValues), (uint)(b * h)), new Dim3(256), 0, args);
                }
                return (o, state);
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>Fused depthwise causal convolution; arguments and result as <see cref="Scans.CausalConv1d.Forward"/>.</summary>
        /// <param name="x">Input <c>[b, d, L]</c>.</param>
        /// <param name="weight">Taps <c>[d, W]</c>.</param>
        /// <param name="bias">Optional bias <c>[d]</c>.</param>
        /// <param name="silu">Apply silu.</param>
        /// <param name="initialState">Optional previous inputs <c>[b, d, W − 1]</c>.</param>
        public static (Tensor y, Tensor finalState)? TryCausalConv(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor? initialState)
        {
            var w = Scans.CausalConv1d.Taps(weight);
            Scans.CausalConv1d.Check(x, w, bias, initialState);
            if (!Applies(x, w, bias, initialState)) return null;
            long b = x.shape[0], d = x.shape[1], L = x.shape[2], W = w.shape[1];
            if (d > 65535 || b > 65535 || L > int.MaxValue || W > 4096) return null;
            int code = FusedKernels.DtypeCode(x.dtype);
            var io = x.dtype;
            int dev = FusedOps.DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var fn = KernelRuntime.Shared.GetFunction(Spec("mix_causal_conv1d", ScanKernelSources.CausalConv, code), "causal_conv1d_fwd", dev);
                var xc = x.contiguous();
                var s0 = W > 1 ? initialState?.to_type(io).contiguous() : null;
                var y = torch.empty(new[] { b, d, L }, dtype: io, device: x.device);
                if (L > 0 && b > 0 && d > 0)
                {
                    using var args = new KernelArguments(dev);
                    args.Add(xc, io, "x").Add(FusedOps.Param(w, x), ScalarType.Float32, "weight")
                        .AddOptional(bias is null ? null : FusedOps.Param(bias, x), ScalarType.Float32, "bias")
                        .AddOptional(s0, io, "initialState").Add(y, io, "y")
                        .Add((int)d).Add((int)L).Add((int)W).Add(silu ? 1 : 0);
                    fn.Launch(new Dim3((uint)((L + 255) / 256), (uint)d, (uint)b), new Dim3(256), 0, args);
                }
                var state = Scans.CausalConv1d.LastInputs(xc, s0, W - 1);
                return (y.MoveToOuterDisposeScope(), state.MoveToOuterDisposeScope());
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }
    }
}
