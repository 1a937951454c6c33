using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Decoding steps of a whole stack of Mamba layers (a <c>depth x block(...)</c> sequence of .mix, such as the zoo
    /// Mamba LM's 24 layers) replayed as one CUDA graph per token. At batch 1 a token's GPU work is a few hundred
    /// microseconds, while queuing it layer by layer (the generated blocks, the dispatch, four launches and their
    /// argument lists per layer) costs the host more than that; the graph queues every layer's four kernels with one call.
    /// </summary>
    /// <remarks>
    /// <para>How: the first one-token step of a sequence under a <see cref="CausalModel"/> cache runs as usual while
    /// <see cref="FusedMambaStep"/> logs its fused steps. A layer whose whole effect was one fused residual step (its input
    /// went straight into the step and the step's output is what the layer returned) is replayable; runs of such layers
    /// become segments. From the next step on, a segment copies its input into a buffer of its own, launches its graph
    /// (recorded once per arrangement of the layers' state buffers: a step writes each state into its spare, so two
    /// graphs alternate), swaps the states as the step would, and returns a copy of its last output. Other layers (attention,
    /// a mixer with <c>@fused(false)</c>) run as usual between segments.</para>
    /// <para>The graph reads the weight tensors the first step found. A model whose parameters are replaced by other tensors
    /// (not updated in place, which the graph sees) while one cache is decoding keeps the old weights until the next
    /// cache: create a new cache after replacing parameters, as after any change of the model's structure.</para>
    /// <para>With <see cref="Persistent"/> on (the default), a segment the persistent kernel takes (batch 1 by default, at
    /// most three rows; full-precision weights) runs as one cooperative launch per token instead (<see cref="PersistentMambaSegment"/>), with the same
    /// semantics: states read from the current buffers, written to the spares, swapped after.</para>
    /// </remarks>
    public static class FusedMambaStack
    {
        // Per sequence and cache: several caches may decode with one model in turn (two conversations), each with its graphs.
        private static readonly ConditionalWeakTable<MixSequence, ConditionalWeakTable<InferenceCache, State>> s_states = new();
        private static long s_replays;

        /// <summary>Whether sequences replay their fused steps as graphs (on by default; the per-layer fused step still runs
        /// when off).</summary>
        public static bool Enabled { get; set; } = true;

        /// <summary>Segment graphs launched so far in this process (one per segment per token batch).</summary>
        public static long Replays => System.Threading.Interlocked.Read(ref s_replays);

        /// <summary>
        /// Whether a segment of at most <see cref="PersistentMaxBatch"/> rows with full-precision weights runs as one launch
        /// of the persistent kernel per token (<see cref="MambaStackKernelSources"/>: the grid stays resident and loops over
        /// the layers, a grid barrier between phases) instead of its graph; a segment it declines, or whose launch fails,
        /// keeps the graph. On by default since run 17a (H200, mamba-130m, batch 1, with session 16's step kernels): 1,224
        /// against 1,076 tok/s for the graph in fp32, 1,309 against 1,185 in bf16 (on the H100 in run 16j, with the older
        /// kernels, the two were equal).
        /// </summary>
        public static bool Persistent { get; set; } = true;

        /// <summary>
        /// Largest batch that takes the persistent kernel when <see cref="Persistent"/> is on (the kernel itself takes up to
        /// <see cref="PersistentMambaSegment.MaxBatch"/>). Default 1: only batch 1 has been timed against the graph.
        /// </summary>
        public static int PersistentMaxBatch { get; set; } = 1;

        /// <summary>Most resident blocks per multiprocessor in the persistent kernel's grid (the occupancy query may allow
        /// fewer): more warps keep more loads in flight, more blocks make each grid barrier longer. Read when a segment's
        /// persistent launch is first made, and again whenever it changes.</summary>
        public static int PersistentBlocksPerSm { get; set; } = 2;

        /// <summary>
        /// Whether the persistent kernel's grid barrier is the one-atomic form (an arrival count that only grows, polled by
        /// the waiters: one release add and one acquire poll on the path) instead of the counter the last block resets and
        /// the generation word it then advances (four dependent global-memory steps after the last arrival). On by default
        /// since run 18a (H100, mamba-130m batch 1, same process: fp32 1,130 → 1,318 tok/s, bf16 1,262 → 1,474; the
        /// decoded logits against the full forward unchanged, 5.4e-7 / 5.5e-3). Read like <see cref="PersistentBlocksPerSm"/>.
        /// </summary>
        public static bool PersistentFastBarrier { get; set; } = true;

        /// <summary>
        /// Whether the persistent kernel folds x_proj into the in_proj phase: each block computes the conv step of the x
        /// channels its in_proj produced and its share of every x_proj output (a slice of partial sums), and the scan phase
        /// sums the slices in block order, so a layer is three phases and three barriers instead of four. Same sums in
        /// another order (deterministic). On by default since run 18a (H100, fp32 batch 1, same process: with the fast
        /// barrier 1,318 → 1,495 tok/s; alone 1,130 → 1,311; logits against the full forward 5.3e-7). Read like
        /// <see cref="PersistentBlocksPerSm"/>; a segment whose blocks would hold more than
        /// <see cref="MambaStackKernelSources.FoldSlots"/> x rows of a layer keeps the graph (see <see cref="LastPersistentDecline"/>).
        /// </summary>
        public static bool PersistentFoldXProj { get; set; } = true;

        /// <summary>Persistent-kernel launches so far in this process (one per segment per token batch).</summary>
        public static long PersistentLaunches => System.Threading.Interlocked.Read(ref s_persistent);

        /// <summary>Why the last segment that could have run persistently did not (null after one that did).</summary>
        public static string? LastPersistentDecline { get; private set; }

        private static long s_persistent;

#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register() => MixDispatch.FusedCachedSequence ??= TryForward;
#pragma warning restore CA2255

        // Most probes a sequence gets per cache before it is left to run layer by layer.
        private const int MaxProbes = 2;

        /// <summary>The sequence's output for one decoding step, or null to run it layer by layer.</summary>
        /// <param name="sequence">The layers.</param>
        /// <param name="x">Input <c>[B, 1, dim]</c> on CUDA.</param>
        public static Tensor? TryForward(MixSequence sequence, Tensor x)
        {
            if (!Enabled || CacheScope.Current is not { } scope || scope.Mask is not null || is_grad_enabled()) return null;
            // A step being recorded into a CUDA graph (CausalModel.CudaGraphs) is one launch already: its layers are
            // recorded one by one (the persistent kernel's first launch also reads a flag back, which a capture forbids).
            if (Cuda.CapturedGraph.IsRecording) return null;
            if (x.device_type != DeviceType.CUDA || x.dim() != 3 || x.shape[1] != 1 || !x.is_contiguous()) return null;
            var state = s_states.GetValue(sequence, _ => new()).GetValue(scope.Cache, _ => new State());
            if (state.Batch != x.shape[0] || state.Dtype != x.dtype) state.Restart(x);
            if (state.Disabled) return null;
            if (state.Plan is null)
                return state.Probes < MaxProbes ? Probe(sequence, state, x) : null;
            return Replay(sequence, state, x);
        }

        private static Tensor Probe(MixSequence sequence, State state, Tensor x)
        {
            state.Probes++;
            var layers = sequence.Layers;
            var steps = new FusedMambaStep.StepRecord?[layers.Count];
            var log = new List<FusedMambaStep.StepRecord>();
            var outer = FusedMambaStep.Probe;
            var cur = x;
            try
            {
                for (int i = 0; i < layers.Count; i++)
                {
                    log.Clear();
                    FusedMambaStep.Probe = log;
                    Tensor y;
                    try { y = layers[i].call(cur); }
                    finally { FusedMambaStep.Probe = outer; }
                    if (log.Count == 1 && log[0] is { Residual: true } r && ReferenceEquals(r.Input, cur) && ReferenceEquals(r.Output, y)
                        && r.Batch == x.shape[0] && r.Dim == x.shape[2] && r.Dtype == x.dtype)
                        steps[i] = r;
                    outer?.AddRange(log);
                    cur = y;
                }
            }
            finally { FusedMambaStep.Probe = outer; }
            var segments = new List<Segment>();
            for (int i = 0; i < steps.Length;)
            {
                if (steps[i] is null) { i++; continue; }
                int j = i;
                while (j < steps.Length && steps[j] is not null) j++;
                segments.Add(new Segment(i, steps[i..j]!));
                i = j;
            }
            if (segments.Count > 0) state.Plan = segments;
            return cur;
        }

        private static Tensor Replay(MixSequence sequence, State state, Tensor x)
        {
            var layers = sequence.Layers;
            var cur = x;
            int next = 0;
            foreach (var seg in state.Plan!)
            {
                for (; next < seg.Start; next++) cur = layers[next].call(cur);
                if (seg.Run(cur) is Tensor y)
                {
                    cur = y;
                    if (!seg.RanPersistent) System.Threading.Interlocked.Increment(ref s_replays);
                }
                else
                {
                    if (seg.Failure is not null) state.Disabled = true;
                    for (int k = 0; k < seg.Steps.Length; k++) cur = layers[seg.Start + k].call(cur);
                }
                next = seg.Start + seg.Steps.Length;
            }
            for (; next < layers.Count; next++) cur = layers[next].call(cur);
            return cur;
        }

        private sealed class State
        {
            public long Batch = -1;
            public ScalarType Dtype;
            public int Probes;
            public bool Disabled;
            public List<Segment>? Plan;

            public void Restart(Tensor x)
            {
                if (Plan is not null) foreach (var s in Plan) s.Dispose();
                Batch = x.shape[0]; Dtype = x.dtype; Probes = 0; Disabled = false; Plan = null;
            }
        }

        /// <summary>Consecutive layers that are each one fused residual step, replayed as one graph.</summary>
        private sealed class Segment : IDisposable
        {
            private readonly List<(IntPtr[] Key, KernelGraph Graph)> graphs = new();
            private Tensor? input, even, odd;
            private PersistentMambaSegment? persistent;
            private string? persistentDecline;   // set once the persistent kernel declined or failed here: the graph runs

            public Segment(int start, FusedMambaStep.StepRecord[] steps)
            {
                Start = start;
                Steps = steps;
            }

            public int Start { get; }
            public FusedMambaStep.StepRecord[] Steps { get; }
            public string? Failure { get; private set; }

            /// <summary>Whether the last <see cref="Run"/> took the persistent kernel (not the graph).</summary>
            public bool RanPersistent { get; private set; }

            // The slots' current state buffers, which decide what a graph reads and writes.
            private IntPtr[] Key()
            {
                var key = new IntPtr[4 * Steps.Length];
                for (int i = 0; i < Steps.Length; i++)
                {
                    var slot = Steps[i].Slot;
                    key[4 * i] = TensorPointers.Address(slot.Get("conv_state"));
                    key[4 * i + 1] = TensorPointers.Address(slot.Get("ssm_state"));
                    key[4 * i + 2] = TensorPointers.Address(slot.Spare("conv_state"));
                    key[4 * i + 3] = TensorPointers.Address(slot.Spare("ssm_state"));
                }
                return key;
            }

            private static bool Same(IntPtr[] a, IntPtr[] b)
            {
                for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
                return true;
            }

            public Tensor? Run(Tensor x)
            {
                if (Failure is not null || x.dtype != Steps[0].Dtype || x.shape[0] != Steps[0].Batch || x.shape[2] != Steps[0].Dim
                    || x.dim() != 3 || x.shape[1] != 1 || !x.is_contiguous() || (int)x.device_index != Steps[0].Device)
                    return null;
                foreach (var s in Steps) if (s.Failed) return null;
                RanPersistent = false;
                if (Persistent && Steps[0].Batch <= PersistentMaxBatch && TryPersistent(x) is { } result)
                {
                    RanPersistent = true;
                    return result;
                }
                try
                {
                    var key = Key();
                    KernelGraph? graph = null;
                    foreach (var (k, g) in graphs) if (Same(k, key)) { graph = g; break; }
                    if (graph is null)
                    {
                        graph = Record();
                        if (graphs.Count == 4) { graphs[0].Graph.Dispose(); graphs.RemoveAt(0); }
                        graphs.Add((key, graph));
                    }
                    var driver = KernelRuntime.Shared.Driver!;
                    driver.CopyAsync(graph.Device, TensorPointers.Get(input!, x.dtype, graph.Device, "input"),
                        TensorPointers.Get(x, x.dtype, graph.Device, "x"), x.numel() * x.element_size());
                    graph.Launch();
                }
                catch (Exception e) when (e is CudaKernelUnavailableException or ArgumentException)
                {
                    // Nothing was swapped: the layers run one by one from the same states.
                    Failure = e.Message;
                    KernelLog.WarnOnce("mamba_stack:" + e.Message, $"Mix.Runtime.Cuda: replaying the Mamba layers as a CUDA graph failed ({e.Message}); launching them layer by layer.");
                    return null;
                }
                Swap();
                return (Steps.Length % 2 == 1 ? even! : odd!).clone();
            }

            private void Swap()
            {
                foreach (var s in Steps)
                {
                    s.Slot.Swap("conv_state");
                    s.Slot.Swap("ssm_state");
                }
                FusedMambaStep.CountSteps(Steps.Length);
            }

            // One launch of the persistent kernel, or null (the graph runs) when it declines or fails here.
            private Tensor? TryPersistent(Tensor x)
            {
                if (persistentDecline is not null)
                {
                    LastPersistentDecline = persistentDecline;
                    return null;
                }
                try
                {
                    if (persistent is null || persistent.BlocksPerSm != PersistentBlocksPerSm || persistent.FastBarrier != PersistentFastBarrier
                        || persistent.FoldXProj != PersistentFoldXProj)
                    {
                        persistent?.Dispose();
                        persistent = PersistentMambaSegment.TryCreate(Steps, PersistentBlocksPerSm, out var why, PersistentFastBarrier, PersistentFoldXProj);
                        if (persistent is null)
                        {
                            LastPersistentDecline = persistentDecline = why;
                            return null;
                        }
                    }
                    var y = persistent.Run(x);
                    Swap();
                    System.Threading.Interlocked.Increment(ref s_persistent);
                    LastPersistentDecline = null;
                    return y;
                }
                catch (Exception e) when (e is CudaKernelUnavailableException or ArgumentException)
                {
                    // Nothing was queued or swapped: the graph runs this step from the same states.
                    LastPersistentDecline = persistentDecline = "the persistent launch failed: " + e.Message;
                    KernelLog.WarnOnce("mamba_persistent:" + e.Message, $"Mix.Runtime.Cuda: the persistent Mamba kernel failed ({e.Message}); replaying the layer graph.");
                    return null;
                }
            }

            // Layer i reads buffer i (input, even, odd, even, ...) and writes the next one.
            private KernelGraph Record()
            {
                var first = Steps[0];
                var shape = new[] { first.Batch, 1L, first.Dim };
                var device = new Device(DeviceType.CUDA, first.Device);
                input ??= empty(shape, first.Dtype, device).DetachFromDisposeScope();
                even ??= empty(shape, first.Dtype, device).DetachFromDisposeScope();
                odd ??= empty(shape, first.Dtype, device).DetachFromDisposeScope();
                var graph = new KernelGraph(first.Device);
                try
                {
                    var src = input;
                    for (int i = 0; i < Steps.Length; i++)
                    {
                        var dst = i % 2 == 0 ? even : odd;
                        Steps[i].Record(graph, src, dst);
                        src = dst;
                    }
                    graph.Instantiate();
                    return graph;
                }
                catch
                {
                    graph.Dispose();
                    throw;
                }
            }

            public void Dispose()
            {
                persistent?.Dispose();
                persistent = null;
                foreach (var (_, g) in graphs) g.Dispose();
                graphs.Clear();
                input?.Dispose(); even?.Dispose(); odd?.Dispose();
                input = even = odd = null;
            }
        }
    }
}
