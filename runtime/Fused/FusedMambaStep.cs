using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The decoding step of a Mamba mixer (the standard library's <c>@kernel("mamba")</c> mixer, whose states live in a
    /// <see cref="StateCacheSlot"/>) as four kernel launches (<see cref="MambaStepKernelSources"/>): one token per row,
    /// on CUDA, without autograd, with full-precision weights. Inside a residual sub-block <c>x + mamba(rmsnorm(x))</c>
    /// the norm and the add run in the first and last launch, so a Mamba LM's layer costs four launches and one output
    /// allocation per token. Declines (null: the reference forward runs) for anything else: several tokens (prefill),
    /// a padding mask, rerouted projections or ones with an AWQ input scale (int8 per-channel and int4 grouped ones are read
    /// as codes, scales and zero points), other dtypes or layouts.
    /// </summary>
    public static class FusedMambaStep
    {
        private static readonly ConcurrentDictionary<int, CudaKernelSpec> Specs = new();
        private static readonly ConditionalWeakTable<nn.Module, Parts?> s_parts = new();
        private static long s_steps;

        /// <summary>Fused steps run so far in this process (one per mixer per token batch): what tests and benchmarks check
        /// to know that the fused path, not the reference, ran.</summary>
        public static long Steps => Interlocked.Read(ref s_steps);

        /// <summary>Why the last cached step of a Mamba mixer on CUDA did not take the fused path (null after one that
        /// did): what a test or a user checks when <see cref="Steps"/> does not move.</summary>
        public static string? LastDecline { get; private set; }

        // Set by FusedMambaStack while it watches a layer sequence run: every fused step taken on this thread.
        [ThreadStatic] private static System.Collections.Generic.List<StepRecord>? s_probe;

        internal static System.Collections.Generic.List<StepRecord>? Probe { get => s_probe; set => s_probe = value; }

        /// <summary>
        /// From this batch size on, a step's two large projections (in_proj after the norm, out_proj with the residual) are
        /// library GEMMs (cuBLAS through TorchSharp) instead of the step's own kernels, which read the weights once per
        /// block of staged rows and lose to a GEMM as the batch grows; conv, x_proj, dt and the state update stay in the
        /// step's kernels. Such steps are not replayed as a CUDA graph (<see cref="FusedMambaStack"/>): the library calls
        /// cannot be recorded there, and at these batch sizes the host's launches hide behind the GPU's work. Unquantized
        /// projections only (quantized ones keep the step's kernels). <c>int.MaxValue</c>: never. Default 128, above every
        /// batch measured: with session 16's step kernels on the H200 (run 17a, mamba-130m fp32) the step's kernels with the
        /// layer graph won at every batch timed — 4 (2,924 against 1,194 tok/s), 16 (7,180 / 4,287), 32 (9,916 / 8,404) and
        /// 64 (12,081 / 8,508); on the H100 with the older kernels (run 16j) the library GEMMs had won at 64.
        /// </summary>
        public static int LibraryProjectionsFromBatch { get; set; } = 128;

        /// <summary>
        /// Opt-in (off until a GPU run has timed it, <c>--only mamba-kernels</c>): the projections' grids are sized from each
        /// kernel's occupancy query (registers included; the projection kernels hold ~100 registers a thread, two blocks a
        /// multiprocessor, where the default heuristic counts eight): the split heuristic counts those blocks, and a grid
        /// is capped at one wave of them, its blocks striding over the remaining weight rows (the same sums, in the same
        /// order) instead of a second and third wave each staging and normalizing the rows again. Read when a plan is made
        /// (a change re-plans the next step).
        /// </summary>
        public static bool SplitsFromOccupancy { get; set; }

        internal static void CountSteps(int n) => Interlocked.Add(ref s_steps, n);

        /// <summary>One fused step as it ran: its input and output tensors, whether it added the residual and normalised
        /// first, and what a replay needs to launch it again (its plan and slot).</summary>
        internal sealed record StepRecord(Tensor Input, Tensor Output, bool Residual, Plan Plan, StateCacheSlot Slot)
        {
            /// <summary>Appends this step's four launches to <paramref name="graph"/>, reading <paramref name="x"/> (also the
            /// residual) and writing <paramref name="output"/>, from the slot's current states into their spares.</summary>
            public void Record(KernelGraph graph, Tensor x, Tensor output) =>
                Plan.Run(Slot, x, Residual ? x : null, output, Slot.Get("conv_state"), Slot.Get("ssm_state"),
                    Slot.Spare("conv_state"), Slot.Spare("ssm_state"), graph);

            public long Batch => Plan.Batch;
            public long Dim => Plan.Dim;
            public ScalarType Dtype => Plan.Dtype;
            public int Device => Plan.Device;
            public bool Failed => Plan.Failure is not null;
        }

        private static Tensor? Decline(string why)
        {
            LastDecline = why;
            return null;
        }

#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register()
        {
            MixDispatch.FusedCachedMixer ??= (mixer, x) => TryStep(null, mixer, x, residual: false);
            MixDispatch.FusedCachedResidual ??= TryResidual;
        }
#pragma warning restore CA2255

        /// <summary>The kernel spec for dtype code <paramref name="dtype"/> (0 float32, 1 float16, 2 bfloat16).</summary>
        /// <param name="dtype">dtype code.</param>
        public static CudaKernelSpec Spec(int dtype) =>
            Specs.GetOrAdd(dtype, d => new CudaKernelSpec("mix_mamba_step", FusedKernelSources.Prelude + MambaStepKernelSources.Source, $"-DMIX_T={d}"));

        /// <summary>The sub-block <c>x + mixer(norm(x))</c> as one fused step, or null to run the reference.</summary>
        /// <param name="parts">The sub-block's layers (no layer or residual scale).</param>
        /// <param name="x">Input <c>[B, 1, dim]</c>, the shortcut.</param>
        public static Tensor? TryResidual(ResidualParts parts, Tensor x)
        {
            if (!parts.BranchIsMixer || parts.LayerScale is not null || parts.ResScale is not null) return null;
            if (parts.Norm is not RMSNorm norm) return null;
            return TryStep(norm, parts.Branch, x, residual: true);
        }

        /// <summary>
        /// One decoding step of <paramref name="mixer"/> on <paramref name="x"/> <c>[B, 1, dim]</c> against its slot in the
        /// running <see cref="CausalModel"/> cache: <c>mixer(norm(x))</c>, plus <c>x</c> when <paramref name="residual"/>;
        /// null when the fused step does not apply.
        /// </summary>
        /// <param name="norm">An RMSNorm applied to <paramref name="x"/> first, or null.</param>
        /// <param name="mixer">The Mamba mixer.</param>
        /// <param name="x">Input.</param>
        /// <param name="residual">Add <paramref name="x"/> to the result.</param>
        public static Tensor? TryStep(RMSNorm? norm, nn.Module mixer, Tensor x, bool residual)
        {
            if (!KernelModules.IsMamba(mixer) || mixer is MambaMixer) return null;   // the C# built-in has its own slot type
            if (x.device_type != DeviceType.CUDA) return null;
            if (torch.is_grad_enabled()) return Decline("autograd is on");
            var shape = x.shape;
            if (shape.Length != 3 || shape[1] != 1) return Decline($"input [{string.Join(", ", shape)}] is not one token per row");
            if (CacheScope.Current is not { } scope || scope.StateSlot(mixer) is not { } slot) return Decline("no state slot in a running cache");
            if (scope.Mask is not null) return Decline("the step has a padding mask");
            if (s_parts.GetValue(mixer, Read) is not { } parts) return Decline("the mixer's layers are not mamba's (in_proj, conv1d, x_proj, dt_proj, out_proj)");
            var plan = parts.Plan;
            if (plan is null || !plan.Matches(parts, mixer, norm, x.dtype, (int)x.device_index, shape[0], shape[2]))
            {
                plan = Plan.Make(parts, mixer, norm, x, shape[0], out var why);
                parts.Plan = plan;
                if (plan is null) return Decline(why!);
            }
            if (plan.Failure is { } failure) return Decline(failure);
            var convState = slot.Get("conv_state"); var ssmState = slot.Get("ssm_state");
            if (!plan.FitsStates(convState, ssmState)) return Decline("the slot's states are not [B, inner, d_conv - 1] / [B, inner, d_state] float32");
            try
            {
                var xin = x.is_contiguous() ? x : x.contiguous();
                var output = torch.empty_like(xin);
                plan.Run(slot, xin, residual ? xin : null, output, convState, ssmState, slot.Spare("conv_state"), slot.Spare("ssm_state"));
                slot.Swap("conv_state");
                slot.Swap("ssm_state");
                Interlocked.Increment(ref s_steps);
                LastDecline = null;
                if (!plan.LibraryProjections) s_probe?.Add(new StepRecord(x, output, residual, plan, slot));
                return output;
            }
            catch (CudaKernelUnavailableException e)
            {
                // The slot is untouched (its states are swapped only after the last launch); this plan stays off.
                plan.Failure = "a launch failed: " + e.Message;
                KernelLog.WarnOnce("mamba_step:" + e.Message, $"Mix.Runtime.Cuda: the fused Mamba step failed ({e.Message}); using the reference step.");
                return Decline(plan.Failure);
            }
        }

        /// <summary>The step's four launches, as <see cref="Plan.Run"/> selects them (the kernel bench times each alone).</summary>
        [Flags]
        internal enum Phase
        {
            InProj = 1,
            XProj = 2,
            Scan = 4,
            OutProj = 8,
            All = InProj | XProj | Scan | OutProj,
        }

        /// <summary>
        /// What one mixer's step launches, worked out once (shapes, dtypes, weight pointers, grid shapes, the compiled
        /// kernels) and reused while the same weight tensors, norm, dtype, device and batch come back: the step's host
        /// work is then four argument lists and the states' pointers.
        /// </summary>
        internal sealed class Plan
        {
            private readonly Tensor?[] weights;   // the tensors the pointers below belong to (kept, to compare identity)
            private readonly RMSNorm? norm;
            private readonly nn.Module<Tensor, Tensor>? libraryIn, libraryOut;   // set when the projections are library GEMMs
            private readonly ScalarType dtype;
            private readonly int device;
            private readonly long batch, dim, inner, width, rank, nState, xRows;
            private readonly IntPtr wIn, wX, wOut, dtW, convW, aLog, dSkip, normW, biasIn, biasOut, convB, dtB, sIn, sX, sOut, zIn, zX, zOut;
            private readonly float eps;
            private readonly CudaFunction inProj, xProj, scan, outProj;
            private readonly Dim3 gridIn, gridX, gridScan, gridOut, threads;
            private readonly uint smemIn, smemInner;
            private readonly int nbIn, nbInner, vecIn, vecX, vecOut, splitIn, splitX, splitOut, lanes, qIn, qX, qOut, gIn, gX, gOut, sms;
            private readonly bool occupancySplits;

            /// <summary>Why this plan's launches failed, once they have (then the mixer takes the reference step).</summary>
            public string? Failure { get; set; }

            private Plan(Tensor?[] weights, RMSNorm? norm, Tensor x, long batch, long dim, long inner, long width, long rank,
                long nState, DeviceLimits limits, Parts parts)
            {
                this.weights = weights; this.norm = norm;
                if (TakesLibraryProjections(weights, batch)
                    && parts.InProj is nn.Module<Tensor, Tensor> li && parts.OutProj is nn.Module<Tensor, Tensor> lo)
                    (libraryIn, libraryOut) = (li, lo);
                dtype = x.dtype; device = FusedOps.DeviceIndex(x);
                this.batch = batch; this.dim = dim; this.inner = inner; this.width = width; this.rank = rank; this.nState = nState;
                xRows = rank + 2 * nState;
                // int8 / packed int4 codes keep their own dtype; every other weight is in the input's
                IntPtr P(Tensor? t) => t is null ? IntPtr.Zero : TensorPointers.GetDense(t, IsCodes(t) ? t.dtype : dtype, device, "weight");
                IntPtr S(Tensor? t) => t is null ? IntPtr.Zero : TensorPointers.GetDense(t, ScalarType.Float32, device, "scales");
                IntPtr Z(Tensor? t) => t is null ? IntPtr.Zero : TensorPointers.GetDense(t, ScalarType.Byte, device, "zeros");
                (wIn, wX, wOut, dtW, convW, aLog, dSkip, normW, biasIn, biasOut, convB, dtB) =
                    (P(weights[0]), P(weights[1]), P(weights[2]), P(weights[3]), P(weights[4]), P(weights[5]), P(weights[6]),
                     P(weights[7]), P(weights[8]), P(weights[9]), P(weights[10]), P(weights[11]));
                (sIn, sX, sOut) = (S(weights[12]), S(weights[13]), S(weights[14]));
                (zIn, zX, zOut) = (Z(weights[15]), Z(weights[16]), Z(weights[17]));
                static int Mode(Tensor w) => w.dtype == ScalarType.Int8 ? 1 : w.dtype == ScalarType.Byte ? 2 : 0;
                (qIn, qX, qOut) = (Mode(weights[0]!), Mode(weights[1]!), Mode(weights[2]!));
                // int4: the group size is the codes' logical width over the scales' columns
                static int Group(Tensor w, Tensor? s) => w.dtype == ScalarType.Byte ? (int)(w.shape[1] * 2 / s!.shape[1]) : 0;
                (gIn, gX, gOut) = (Group(weights[0]!, weights[12]), Group(weights[1]!, weights[13]), Group(weights[2]!, weights[14]));
                eps = (float)(norm?.Eps ?? 0.0);
                var spec = Spec(FusedKernels.DtypeCode(dtype));
                var rt = KernelRuntime.Shared;
                inProj = rt.GetFunction(spec, "mamba_step_in_proj", device);
                xProj = rt.GetFunction(spec, "mamba_step_x_proj", device);
                scan = rt.GetFunction(spec, "mamba_step_scan", device);
                outProj = rt.GetFunction(spec, "mamba_step_out_proj", device);
                // no more staged rows than the batch has: the shared memory a block asks for limits how many fit an SM
                nbIn = (int)Math.Min(RowsPerBlock(dim), batch); nbInner = (int)Math.Min(RowsPerBlock(inner), batch);
                vecIn = Vectorizable(dim, weights[0]!.dtype, gIn); vecX = Vectorizable(inner, weights[1]!.dtype, gX); vecOut = Vectorizable(inner, weights[2]!.dtype, gOut);
                uint yIn = FusedOps.Blocks(batch, nbIn), yInner = FusedOps.Blocks(batch, nbInner);
                // Split weight rows over more warps while the grid would leave multiprocessors idle (x_proj has ~80 rows),
                // and while a lane would wait for more than one round of loads (a warp's slice > 4 vectors a lane: the
                // unrolled loop issues four at once) and the split grid still fits on the device at once.
                long vIn = VectorElements(weights[0]!.dtype, dtype), vX = VectorElements(weights[1]!.dtype, dtype), vOut = VectorElements(weights[2]!.dtype, dtype);
                smemIn = (uint)(nbIn * dim * sizeof(float)); smemInner = (uint)(nbInner * inner * sizeof(float));
                sms = limits.Sms;
                occupancySplits = SplitsFromOccupancy;
                long Resident(CudaFunction f, uint smem) => occupancySplits
                    ? (long)sms * Math.Max(1, f.MaxActiveBlocksPerMultiprocessor(MambaStepKernelSources.Threads, smem))
                    : limits.Resident(smem);
                long residentIn = Resident(inProj, smemIn), residentX = Resident(xProj, smemInner), residentOut = Resident(outProj, smemInner);
                splitIn = Split(2 * inner, yIn, sms, residentIn, dim / vIn);
                splitX = Split(xRows, yInner, sms, residentX, inner / vX);
                splitOut = Split(dim, yInner, sms, residentOut, inner / vOut);
                const int Warps = MambaStepKernelSources.Threads / 32;
                // one wave at most under SplitsFromOccupancy: mix_rows strides its blocks over the rows
                uint Cap(uint blocks, long resident, uint gridY) => occupancySplits ? (uint)Math.Min(blocks, Math.Max(1, resident / gridY)) : blocks;
                gridIn = new Dim3(Cap(FusedOps.Blocks(2 * inner, Warps / splitIn), residentIn, yIn), yIn);
                gridX = new Dim3(Cap(FusedOps.Blocks(xRows, Warps / splitX), residentX, yInner), yInner);
                gridOut = new Dim3(Cap(FusedOps.Blocks(dim, Warps / splitOut), residentOut, yInner), yInner);
                lanes = 1;
                while (lanes < nState) lanes <<= 1;
                gridScan = new Dim3(FusedOps.Blocks(inner * lanes, MambaStepKernelSources.Threads), (uint)batch);
                threads = new Dim3(MambaStepKernelSources.Threads);
            }

            private static int Split(long rows, uint gridY, int sms, long resident, long vectors)
            {
                int split = 1;
                while (split < 8 && FusedOps.Blocks(rows, 8 / split) * gridY < 2L * sms) split *= 2;
                while (split < 8 && vectors / split > 4 * 32 && FusedOps.Blocks(rows, 8 / (2 * split)) * gridY <= resident) split *= 2;
                return split;
            }

            /// <summary>What the split heuristic reads of the device: multiprocessors, and how many of the projection kernels'
            /// blocks (256 threads, <paramref name="MaxThreads"/> and <paramref name="SharedBytes"/> per multiprocessor) fit at once.</summary>
            internal readonly record struct DeviceLimits(int Sms, int MaxThreads, int SharedBytes)
            {
                public long Resident(uint dynamicShared) =>
                    (long)Sms * Math.Max(1, Math.Min(MaxThreads / MambaStepKernelSources.Threads,
                        SharedBytes / (int)(dynamicShared + MambaStepKernelSources.StaticSharedBytes)));
            }

            // Elements in one 16-byte weight vector: 4 float32, 8 half, 16 int8, 32 int4 codes.
            private static long VectorElements(ScalarType weight, ScalarType io) => weight switch
            {
                ScalarType.Byte => 32,
                ScalarType.Int8 => 16,
                _ => io == ScalarType.Float32 ? 4 : 8,
            };

            private static Tensor?[] Current(Parts p, nn.Module mixer, RMSNorm? norm) => new[]
            {
                Weight(p.InProj) ?? Codes(p.InProj), Weight(p.XProj) ?? Codes(p.XProj), Weight(p.OutProj) ?? Codes(p.OutProj),
                Weight(p.DtProj), p.Conv.weight, Param(mixer, "A_log"), Param(mixer, "D"), norm?.weight,
                Bias(p.InProj), Bias(p.OutProj), p.Conv.bias, Bias(p.DtProj),
                Scales(p.InProj), Scales(p.XProj), Scales(p.OutProj),
                Zeros(p.InProj), Zeros(p.XProj), Zeros(p.OutProj),
            };

            public bool Matches(Parts p, nn.Module mixer, RMSNorm? norm, ScalarType dt, int dev, long b, long d)
            {
                if (!ReferenceEquals(norm, this.norm) || dt != dtype || dev != device || b != batch || d != dim) return false;
                if (occupancySplits != SplitsFromOccupancy) return false;
                if (TakesLibraryProjections(weights, b) != LibraryProjections) return false;
                var now = Current(p, mixer, norm);
                for (int i = 0; i < now.Length; i++) if (!ReferenceEquals(now[i], weights[i])) return false;
                return true;
            }

            public static Plan? Make(Parts p, nn.Module mixer, RMSNorm? norm, Tensor x, long batch, out string? why)
            {
                var dtype = x.dtype;
                why = null;
                if (FusedKernels.DtypeCode(dtype) < 0) { why = $"{dtype} input"; return null; }
                if (!KernelRuntime.Shared.IsAvailable) { why = "CUDA kernels are unavailable: " + KernelRuntime.Shared.UnavailableReason; return null; }
                var w = Current(p, mixer, norm);
                var (wIn, wX, wOut, dtW, convW, aLog, dSkip) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6]);
                if (wIn is null || wX is null || wOut is null || dtW is null || convW is null || aLog is null || dSkip is null)
                {
                    why = "a projection has an AWQ input scale or is rerouted, or A_log / D is missing";
                    return null;
                }
                for (int i = 0; i < w.Length; i++)
                    if (w[i] is { } t && (t.dtype != (i >= 15 ? ScalarType.Byte : i >= 12 ? ScalarType.Float32 : i <= 2 && IsCodes(t) ? t.dtype : dtype)
                        || t.device_type != DeviceType.CUDA || t.device_index != x.device_index || !t.is_contiguous()))
                    {
                        why = $"a weight is {t.dtype} on {t.device} (input {dtype} on {x.device}) or not contiguous";
                        return null;
                    }
                long dim = x.shape[2], inner = wIn.shape[0] / 2, width = convW.shape[^1], rank = dtW.shape[1], nState = aLog.shape[1];
                // packed int4 rows hold two codes per byte
                static long In(Tensor w) => w.dtype == ScalarType.Byte ? 2 * w.shape[1] : w.shape[1];
                if (In(wIn) != dim || wOut.shape[0] != dim || In(wOut) != inner || In(wX) != inner
                    || wX.shape[0] != rank + 2 * nState || dtW.shape[0] != inner || aLog.shape[0] != inner || nState > 32
                    || convW.numel() != inner * width || dSkip.numel() != inner || batch > 65535 || inner > int.MaxValue / 64)
                {
                    why = "the mixer's shapes are outside the kernels' limits (d_state <= 32, batch <= 65535)";
                    return null;
                }
                if (RowsPerBlock(dim) == 0 || RowsPerBlock(inner) == 0) { why = "a row does not fit shared memory"; return null; }
                try
                {
                    var driver = KernelRuntime.Shared.Driver!;
                    int dev = FusedOps.DeviceIndex(x);
                    int sms = driver.GetAttribute(dev, CudaDriver.AttributeMultiprocessorCount);
                    var limits = new DeviceLimits(sms, driver.GetAttribute(dev, CudaDriver.AttributeMaxThreadsPerMultiprocessor),
                        driver.GetAttribute(dev, CudaDriver.AttributeMaxSharedMemoryPerMultiprocessor));
                    return new Plan(w, norm, x, batch, dim, inner, width, rank, nState, limits, p);
                }
                catch (CudaKernelUnavailableException e)
                {
                    why = "the kernels are unavailable: " + e.Message;
                    return null;
                }
            }

            private static void Launch(KernelGraph? graph, CudaFunction f, Dim3 grid, Dim3 block, uint smem, KernelArguments a)
            {
                if (graph is null) f.Launch(grid, block, smem, a);
                else graph.Add(f, grid, block, smem, a);
            }

            // unquantized in_proj and out_proj at a batch from LibraryProjectionsFromBatch on
            private static bool TakesLibraryProjections(Tensor?[] w, long batch) =>
                batch >= LibraryProjectionsFromBatch && !IsCodes(w[0]!) && !IsCodes(w[2]!);

            /// <summary>Whether this plan's projections are library GEMMs (see <see cref="LibraryProjectionsFromBatch"/>).</summary>
            public bool LibraryProjections => libraryIn is not null;

            /// <summary>What the persistent stack kernel reads of this layer (<see cref="PersistentMambaSegment"/>), or null
            /// when it cannot run it: quantized projections (codes, scales, zero points) or library GEMMs.</summary>
            public PersistentLayer? Persistent => qIn != 0 || qX != 0 || qOut != 0 || LibraryProjections ? null
                : new PersistentLayer(wIn, wX, wOut, normW, biasIn, biasOut, convW, convB, dtW, dtB, aLog, dSkip, eps,
                    (int)inner, (int)width, (int)rank, (int)nState, lanes, vecIn, vecX, vecOut);

            public long Batch => batch;
            public long Dim => dim;
            public ScalarType Dtype => dtype;
            public int Device => device;

            public bool FitsStates(Tensor conv, Tensor ssm) =>
                conv.dtype == ScalarType.Float32 && ssm.dtype == ScalarType.Float32
                && conv.shape.SequenceEqual(new[] { batch, inner, width - 1 }) && ssm.shape.SequenceEqual(new[] { batch, inner, nState });

            /// <summary>Bytes one launch of <paramref name="phase"/> must move at least (each weight, state and activation it
            /// reads once, each output written once): what the kernel bench divides by its time.</summary>
            public long Bytes(Phase phase)
            {
                long io = dtype == ScalarType.Float32 ? 4 : 2, f = sizeof(float);
                long Weight(int q, int group, long rows, long k) =>
                    q == 1 ? rows * k + rows * f : q == 2 ? rows * k / 2 + rows * (k / group) * (f + 1) : rows * k * io;
                long conv = batch * inner * (width - 1) * f, ssmBytes = batch * inner * nState * f;
                return phase switch
                {
                    Phase.InProj => Weight(qIn, gIn, 2 * inner, dim) + batch * dim * io + dim * io + 2 * inner * io + batch * 2 * inner * f,
                    Phase.XProj => Weight(qX, gX, xRows, inner) + batch * inner * f + conv + inner * (width + 1) * io + batch * xRows * f,
                    Phase.Scan => batch * 2 * inner * f + 2 * conv + inner * (width + 1) * io + batch * xRows * f + inner * (rank + 1) * io
                        + inner * nState * io + inner * io + 2 * ssmBytes + batch * inner * f,
                    Phase.OutProj => Weight(qOut, gOut, dim, inner) + batch * inner * f + dim * io + 2 * batch * dim * io,
                    _ => Bytes(Phase.InProj) + Bytes(Phase.XProj) + Bytes(Phase.Scan) + Bytes(Phase.OutProj),
                };
            }

            /// <summary>The launch shape of <paramref name="phase"/> (grid, and how many warps share a weight row), for the
            /// kernel bench's rows.</summary>
            public string Describe(Phase phase)
            {
                string Occupancy(CudaFunction f, Dim3 grid, uint smem)
                {
                    int resident = f.MaxActiveBlocksPerMultiprocessor(MambaStepKernelSources.Threads, smem);
                    long waves = resident > 0 ? ((long)grid.X * grid.Y + (long)sms * resident - 1) / ((long)sms * resident) : 0;
                    return $"grid {grid.X}x{grid.Y}, {f.Registers} regs, {resident}/SM, {waves} wave(s)";
                }
                return phase switch
                {
                    Phase.InProj => $"{Occupancy(inProj, gridIn, smemIn)}, split {splitIn}",
                    Phase.XProj => $"{Occupancy(xProj, gridX, smemInner)}, split {splitX}",
                    Phase.Scan => $"{Occupancy(scan, gridScan, 0)}, {lanes} lanes/ch",
                    Phase.OutProj => $"{Occupancy(outProj, gridOut, smemInner)}, split {splitOut}",
                    _ => "four launches",
                };
            }

            // graph null: launch now; otherwise append the launches to it (KernelGraph: replayed by FusedMambaStack). phases:
            // which of the four (the kernel bench times each alone; a step always runs all of them).
            public void Run(StateCacheSlot slot, Tensor x, Tensor? residual, Tensor output, Tensor conv, Tensor ssm, Tensor convNext, Tensor ssmNext,
                KernelGraph? graph = null, Phase phases = Phase.All)
            {
                var f32 = ScalarType.Float32;
                var xz = slot.Workspace("mamba.xz", new[] { batch, 2 * inner }, f32, x.device);
                var dbc = slot.Workspace("mamba.dbc", new[] { batch, xRows }, f32, x.device);
                var y = slot.Workspace("mamba.y", new[] { batch, inner }, f32, x.device);
                if (phases != Phase.All && libraryIn is not null) throw new InvalidOperationException("a step with library projections runs whole");
                if ((phases & Phase.InProj) != 0) RunInProj(x, xz, graph);
                if ((phases & Phase.XProj) != 0) RunXProj(xz, conv, dbc, graph);
                if ((phases & Phase.Scan) != 0) RunScan(xz, conv, convNext, dbc, ssm, ssmNext, y, graph);
                if ((phases & Phase.OutProj) != 0) RunOutProj(y, residual, output, graph);
            }

            private void RunInProj(Tensor x, Tensor xz, KernelGraph? graph)
            {
                if (libraryIn is not null)
                {
                    if (graph is not null) throw new InvalidOperationException("a step with library projections cannot be recorded");
                    // the reference's own norm and linear (cuBLAS), into the float32 workspace the kernels read
                    using var scope = torch.NewDisposeScope();
                    var rows = x.view(batch, dim);
                    xz.copy_(libraryIn.call(norm is null ? rows : norm.call(rows)));
                    return;
                }
                using var a = new KernelArguments(device);
                a.Add(x, dtype, "x").Add((long)normW).Add(eps).Add((long)wIn).Add((long)sIn).Add(qIn).Add((long)zIn).Add(gIn).Add((long)biasIn).Add(xz, ScalarType.Float32, "xz")
                    .Add((int)batch).Add((int)dim).Add((int)(2 * inner)).Add(nbIn).Add(vecIn).Add(splitIn);
                Launch(graph, inProj, gridIn, threads, smemIn, a);
            }

            private void RunXProj(Tensor xz, Tensor conv, Tensor dbc, KernelGraph? graph)
            {
                var f32 = ScalarType.Float32;
                using var a = new KernelArguments(device);
                a.Add(xz, f32, "xz").Add(conv, f32, "conv_state").Add((long)convW).Add((long)convB).Add((long)wX).Add((long)sX).Add(qX).Add((long)zX).Add(gX).Add(dbc, f32, "dbc")
                    .Add((int)batch).Add((int)inner).Add((int)width).Add((int)xRows).Add(nbInner).Add(vecX).Add(splitX);
                Launch(graph, xProj, gridX, threads, smemInner, a);
            }

            private void RunScan(Tensor xz, Tensor conv, Tensor convNext, Tensor dbc, Tensor ssm, Tensor ssmNext, Tensor y, KernelGraph? graph)
            {
                var f32 = ScalarType.Float32;
                using var a = new KernelArguments(device);
                a.Add(xz, f32, "xz").Add(conv, f32, "conv_state").Add(convNext, f32, "conv_state'").Add((long)convW).Add((long)convB)
                    .Add(dbc, f32, "dbc").Add((long)dtW).Add((long)dtB).Add((long)aLog).Add((long)dSkip)
                    .Add(ssm, f32, "ssm_state").Add(ssmNext, f32, "ssm_state'").Add(y, f32, "y")
                    .Add((int)batch).Add((int)inner).Add((int)width).Add((int)rank).Add((int)nState).Add(lanes);
                Launch(graph, scan, gridScan, threads, 0, a);
            }

            private void RunOutProj(Tensor y, Tensor? residual, Tensor output, KernelGraph? graph)
            {
                if (libraryOut is not null)
                {
                    using var scope = torch.NewDisposeScope();
                    var o = libraryOut.call(y.to_type(dtype));
                    if (residual is not null) o = o.add_(residual.view(batch, dim));
                    output.view(batch, dim).copy_(o);
                    return;
                }
                using var a = new KernelArguments(device);
                a.Add(y, ScalarType.Float32, "y").Add((long)wOut).Add((long)sOut).Add(qOut).Add((long)zOut).Add(gOut).Add((long)biasOut).AddOptional(residual, dtype, "residual").Add(output, dtype, "out")
                    .Add((int)batch).Add((int)inner).Add((int)dim).Add(nbInner).Add(vecOut).Add(splitOut);
                Launch(graph, outProj, gridOut, threads, smemInner, a);
            }
        }

        // Rows of the batch staged per block: as many as fit the 48 KiB of shared memory every CUDA device gives a block
        // without opting in, less the kernels' own static arrays, at most MaxRowsPerBlock; 0 when not even one row fits.
        private static int RowsPerBlock(long k) =>
            (int)Math.Min(MambaStepKernelSources.MaxRowsPerBlock, (48 * 1024 - MambaStepKernelSources.StaticSharedBytes) / (k * sizeof(float)));

        // 16-byte weight loads need whole vectors per row (the allocations themselves are 256-byte aligned).
        // int4: 32 codes per vector, inside one group.
        private static int Vectorizable(long k, ScalarType dtype, int group) => dtype == ScalarType.Byte
            ? (k % 32 == 0 && group % 32 == 0 ? 1 : 0)
            : k % (16 / (dtype switch { ScalarType.Float32 => 4, ScalarType.Int8 => 1, _ => 2 })) == 0 ? 1 : 0;

        private static bool IsCodes(Tensor t) => t.dtype is ScalarType.Int8 or ScalarType.Byte;

        private static Tensor? Weight(nn.Module linear) => linear switch
        {
            QuantizableLinear { IsQuantized: false, IsRouted: false } q => q.weight,
            Linear l => l.weight,
            _ => null,
        };

        // The library's quantized formats as stored (no AWQ input scale): int8 per-channel codes [out, in] with float32 scales
        // [out], or int4 codes packed two per byte [out, in / 2] with float32 scales and uint8 zero points [out, in / group].
        // The projection kernels read them as they are; an unfolded input scale is not supported (null: decline).
        private static Tensor? Codes(nn.Module linear) =>
            linear is QuantizableLinear { IsQuantized: true, IsRouted: false, HasInputScale: false } q
            && (q.QuantMode == Quantization.WeightQuantMode.Int8PerChannel
                || q.QuantMode == Quantization.WeightQuantMode.Int4Grouped && q.QZeros is not null)
                ? q.QWeight : null;

        private static Tensor? Scales(nn.Module linear) => Codes(linear) is null ? null : ((QuantizableLinear)linear).QScales;

        private static Tensor? Zeros(nn.Module linear) =>
            Codes(linear) is null || ((QuantizableLinear)linear).QuantMode != Quantization.WeightQuantMode.Int4Grouped ? null : ((QuantizableLinear)linear).QZeros;

        private static Tensor? Bias(nn.Module linear) => linear switch
        {
            QuantizableLinear { IsQuantized: true } q => q.QuantizedBias,
            QuantizableLinear q => q.bias,
            Linear l => l.bias,
            _ => null,
        };

        private static Tensor? Param(nn.Module module, string name)
        {
            foreach (var (n, t) in module.named_parameters(recurse: false))
                if (n == name) return t;
            return null;
        }

        private static Parts? Read(nn.Module mixer)
        {
            var c = mixer.named_children().ToDictionary(x => x.name, x => x.module);
            static bool IsLinear(nn.Module m) => m is QuantizableLinear or Linear;
            return c.TryGetValue("in_proj", out var inProj) && IsLinear(inProj)
                && c.TryGetValue("x_proj", out var xProj) && IsLinear(xProj)
                && c.TryGetValue("dt_proj", out var dtProj) && IsLinear(dtProj)
                && c.TryGetValue("out_proj", out var outProj) && IsLinear(outProj)
                && c.TryGetValue("conv1d", out var conv) && conv is Conv1d conv1d
                    ? new Parts(inProj, conv1d, xProj, dtProj, outProj)
                    : null;
        }

        // The mixer's layers (stable across dtype and device moves, which replace parameters, not modules), and the plan of
        // its last step.
        internal sealed record Parts(nn.Module InProj, Conv1d Conv, nn.Module XProj, nn.Module DtProj, nn.Module OutProj)
        {
            public Plan? Plan { get; set; }
        }
    }
}
