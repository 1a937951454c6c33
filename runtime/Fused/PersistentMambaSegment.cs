using System;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>What the persistent kernel reads of one layer's step plan: weight pointers (full precision, the input's
    /// dtype), the block norm's epsilon, the mixer's sizes and whether its projection rows are whole 16-byte vectors.</summary>
    internal readonly record struct PersistentLayer(IntPtr WIn, IntPtr WX, IntPtr WOut, IntPtr NormW, IntPtr BiasIn, IntPtr BiasOut,
        IntPtr ConvW, IntPtr ConvB, IntPtr DtW, IntPtr DtB, IntPtr ALog, IntPtr DSkip, float Eps, int Inner, int Width, int Rank,
        int NState, int Lanes, int VecIn, int VecX, int VecOut);

    /// <summary>
    /// A segment of fused Mamba layers (see <see cref="FusedMambaStack"/>) run as one launch of the persistent kernel
    /// (<see cref="MambaStackKernelSources"/>) per token instead of a graph of four launches per layer: a grid of as many
    /// blocks as the device holds at once (multiprocessors × resident blocks, from the occupancy query), launched
    /// cooperatively, looping over the layers and their four phases.
    /// </summary>
    /// <remarks>
    /// The layers' parameters live in a device table written when the segment is made and again only when the slots' state
    /// buffers are not the pair it names (a step reads one buffer of each pair and writes the other; <c>parity</c> says
    /// which, so the alternating steps reuse the table). Work buffers (the float32 projections, two activation buffers)
    /// and the barrier's two words belong to the segment. Batches of at most <see cref="MaxBatch"/> rows (from 4 on, the
    /// step's projections are library GEMMs, which no kernel of ours replaces), full-precision weights only.
    /// </remarks>
    internal sealed class PersistentMambaSegment : IDisposable
    {
        /// <summary>Most rows a persistent step takes (larger batches keep the graph or the library projections).</summary>
        public const int MaxBatch = 3;

        private static readonly ConcurrentDictionary<(int Dtype, bool FastBarrier, bool FoldXProj), CudaKernelSpec> Specs = new();

        private readonly FusedMambaStep.StepRecord[] steps;
        private readonly PersistentLayer[] layers;
        private readonly int[] splits;   // in_proj, x_proj, out_proj per layer
        private readonly CudaFunction kernel;
        private readonly int device, batch, dim;
        private readonly ScalarType dtype;
        private readonly Dim3 grid, threads;
        private readonly uint smem;
        private readonly IntPtr[] tableStates;   // per layer: conv_state[0], conv_state[1], ssm_state[0], ssm_state[1]
        private Tensor? table, ping, pong, xz, dbc, y, barrier, xpart;
        private bool verified;   // the first launch's barriers all completed (read back once)

        private PersistentMambaSegment(FusedMambaStep.StepRecord[] steps, PersistentLayer[] layers, CudaFunction kernel,
            int blocks, uint smem)
        {
            this.steps = steps; this.layers = layers; this.kernel = kernel; this.smem = smem;
            var first = steps[0];
            device = first.Device; batch = (int)first.Batch; dim = (int)first.Dim; dtype = first.Dtype;
            grid = new Dim3((uint)blocks);
            threads = new Dim3(MambaStackKernelSources.Threads);
            long warps = (long)blocks * (MambaStackKernelSources.Threads / 32);
            long vecElems = dtype == ScalarType.Float32 ? 4 : 8;
            splits = new int[3 * layers.Length];
            for (int i = 0; i < layers.Length; i++)
            {
                var l = layers[i];
                long Vectors(long k, int vec) => vec != 0 ? k / vecElems : k;
                splits[3 * i] = BalancedSplit(2L * l.Inner, warps, Vectors(dim, l.VecIn));
                splits[3 * i + 1] = BalancedSplit(l.Rank + 2L * l.NState, warps, Vectors(l.Inner, l.VecX));
                splits[3 * i + 2] = BalancedSplit(dim, warps, Vectors(l.Inner, l.VecOut));
            }
            tableStates = new IntPtr[4 * layers.Length];
        }

        /// <summary>The resident blocks per multiprocessor this segment was sized for (what <see cref="FusedMambaStack.PersistentBlocksPerSm"/> was).</summary>
        public int BlocksPerSm { get; private init; }

        /// <summary>Whether this segment's kernel was built with the one-atomic grid barrier (what
        /// <see cref="FusedMambaStack.PersistentFastBarrier"/> was).</summary>
        public bool FastBarrier { get; private init; }

        /// <summary>Whether this segment's kernel folds x_proj into the in_proj phase (three phases a layer; what
        /// <see cref="FusedMambaStack.PersistentFoldXProj"/> was).</summary>
        public bool FoldXProj { get; private init; }

        /// <summary>Blocks in the grid.</summary>
        public int Blocks => (int)grid.X;

        /// <summary>
        /// The segment for <paramref name="steps"/> (consecutive fused residual steps of one batch, dtype and width), or null
        /// with the reason when the persistent kernel cannot run it.
        /// </summary>
        /// <param name="steps">The layers' recorded steps.</param>
        /// <param name="blocksPerSm">Most resident blocks per multiprocessor to use (the occupancy query may allow fewer).</param>
        /// <param name="why">Why not, when null.</param>
        /// <param name="fastBarrier">Build the kernel with the one-atomic grid barrier (<see cref="FusedMambaStack.PersistentFastBarrier"/>).</param>
        /// <param name="foldXProj">Build the kernel with x_proj folded into the in_proj phase (<see cref="FusedMambaStack.PersistentFoldXProj"/>).</param>
        public static PersistentMambaSegment? TryCreate(FusedMambaStep.StepRecord[] steps, int blocksPerSm, out string? why, bool fastBarrier = false,
            bool foldXProj = false)
        {
            why = null;
            var first = steps[0];
            if (first.Batch > MaxBatch) { why = $"batch {first.Batch} > {MaxBatch}"; return null; }
            if (!first.Residual) { why = "a step without the residual add"; return null; }
            var layers = new PersistentLayer[steps.Length];
            for (int i = 0; i < steps.Length; i++)
            {
                if (steps[i].Plan.Persistent is not { } l) { why = $"layer {i} has quantized or library projections"; return null; }
                if (steps[i].Batch != first.Batch || steps[i].Dim != first.Dim || steps[i].Dtype != first.Dtype || steps[i].Device != first.Device)
                {
                    why = "the layers differ in batch, width, dtype or device";
                    return null;
                }
                layers[i] = l;
            }
            var driver = KernelRuntime.Shared.Driver;
            if (driver is null || !driver.SupportsCooperativeLaunch) { why = "the CUDA driver has no cooperative launch"; return null; }
            int dev = first.Device;
            if (driver.GetAttribute(dev, CudaDriver.AttributeCooperativeLaunch) == 0) { why = "the device has no cooperative launch"; return null; }
            long widest = Math.Max(first.Dim, layers.Max(l => (long)l.Inner));
            // the fold adds its slots and reduction sums, and the staged rows must hold the summed dbc
            long bytes = (MambaStackKernelSources.SharedHeaderFloats + (foldXProj
                ? MambaStackKernelSources.FoldSharedFloats + Math.Max(first.Batch * widest, layers.Max(l => FoldColumns(first.Batch, l)))
                : first.Batch * widest)) * sizeof(float);
            if (bytes > 48 * 1024) { why = "the staged rows exceed 48 KiB of shared memory"; return null; }
            var kernel = KernelRuntime.Shared.GetFunction(Spec(FusedKernels.DtypeCode(first.Dtype), fastBarrier, foldXProj), "mamba_stack_persistent", dev);
            int resident = kernel.MaxActiveBlocksPerMultiprocessor(MambaStackKernelSources.Threads, (uint)bytes);
            if (resident < 1) { why = "not one block of the persistent kernel fits a multiprocessor"; return null; }
            int perSm = Math.Min(resident, Math.Max(1, blocksPerSm));
            int blocks = driver.GetAttribute(dev, CudaDriver.AttributeMultiprocessorCount) * perSm;
            var segment = new PersistentMambaSegment(steps, layers, kernel, blocks, (uint)bytes) { BlocksPerSm = blocksPerSm, FastBarrier = fastBarrier, FoldXProj = foldXProj };
            if (foldXProj && segment.MostFoldSlots() > MambaStackKernelSources.FoldSlots)
            {
                segment.Dispose();
                why = $"x_proj fold: a block would hold more than {MambaStackKernelSources.FoldSlots} in_proj rows of one layer";
                return null;
            }
            return segment;
        }

        /// <summary>The kernel spec for dtype code <paramref name="dtype"/> (the step kernels' source, whose device functions
        /// the persistent kernel calls, and its own).</summary>
        /// <param name="dtype">dtype code (0 float32, 1 float16, 2 bfloat16).</param>
        /// <param name="fastBarrier">The one-atomic grid barrier (<c>MIX_FAST_BARRIER</c>) instead of the counter and generation.</param>
        /// <param name="foldXProj">x_proj folded into the in_proj phase (<c>MIX_FOLD_XPROJ</c>).</param>
        public static CudaKernelSpec Spec(int dtype, bool fastBarrier = false, bool foldXProj = false) =>
            Specs.GetOrAdd((dtype, fastBarrier, foldXProj), k => new CudaKernelSpec(
                "mix_mamba_stack" + (k.FastBarrier ? "_fb" : "") + (k.FoldXProj ? "_fx" : ""),
                FusedKernelSources.Prelude + MambaStepKernelSources.Source + MambaStackKernelSources.Source,
                new[] { $"-DMIX_T={k.Dtype}" }.Concat(k.FastBarrier ? new[] { "-DMIX_FAST_BARRIER" } : Array.Empty<string>())
                    .Concat(k.FoldXProj ? MambaStackKernelSources.FoldOptions : Array.Empty<string>()).ToArray()));

        /// <summary>Floats of one block's slice of the fold's x_proj partial sums (B × (rank + 2 d_state), whole float4).</summary>
        internal static long FoldColumns(long batch, in PersistentLayer l) => (batch * (l.Rank + 2L * l.NState) + 3) / 4 * 4;

        // The most in_proj x rows one block holds in a layer (the kernel's `slots`: rows a block takes per pass of mix_rows
        // times the passes over the x half).
        private int MostFoldSlots()
        {
            int most = 0;
            for (int i = 0; i < layers.Length; i++)
            {
                int per = MambaStackKernelSources.Threads / 32 / splits[3 * i], stride = (int)grid.X * per;
                most = Math.Max(most, per * ((layers[i].Inner + stride - 1) / stride));
            }
            return most;
        }

        /// <summary>
        /// How many warps share one weight row in the persistent grid (1, 2, 4 or 8): the fewest dependent rounds of loads
        /// per lane, counting the passes of the grid over the rows and the rounds of four 16-byte loads (the unrolled
        /// loop) per slice; ties go to fewer pieces (less reduction).
        /// </summary>
        /// <param name="rows">Weight rows.</param>
        /// <param name="warps">Warps in the grid.</param>
        /// <param name="vectors">Loads per row (16-byte vectors, or elements when the rows are not whole vectors).</param>
        internal static int BalancedSplit(long rows, long warps, long vectors)
        {
            int best = 1;
            long bestCost = long.MaxValue;
            for (int split = 1; split <= 8; split *= 2)
            {
                long passes = (rows * split + warps - 1) / warps;
                long perLane = (vectors + 32L * split - 1) / (32L * split);
                long cost = passes * Math.Max(1, (perLane + 3) / 4);
                if (cost < bestCost) { best = split; bestCost = cost; }
            }
            return best;
        }

        /// <summary>
        /// Queues one step of every layer on <paramref name="x"/> <c>[B, 1, dim]</c> and returns the last layer's output
        /// (a new tensor). The slots' states are read from their current buffers and written to their spares; the caller
        /// swaps them once this returns.
        /// </summary>
        /// <param name="x">The segment's input (contiguous, the steps' dtype and device).</param>
        /// <exception cref="CudaKernelUnavailableException">The launch failed (nothing was queued).</exception>
        public Tensor Run(Tensor x)
        {
            Allocate(x.device);
            int parity = Parity();
            if (parity < 0) { WriteTable(); parity = 0; }
            var output = torch.empty_like(x);
            var f32 = ScalarType.Float32;
            using var a = new KernelArguments(device);
            a.Add((long)TensorPointers.Get(table!, ScalarType.Byte, device, "layers")).Add(layers.Length).Add(parity)
                .Add(x, dtype, "x").Add(output, dtype, "out").Add(ping!, dtype, "ping").Add(pong!, dtype, "pong")
                .Add(xz!, f32, "xz").Add(dbc!, f32, "dbc").Add(y!, f32, "y").Add(barrier!, ScalarType.Int32, "barrier")
                .Add(batch).Add(dim).Add(xpart!, f32, "xpart");
            kernel.LaunchCooperative(grid, threads, smem, a);
            if (!verified)
            {
                // Once per segment, wait for the launch and read whether a barrier gave up (a block that never arrived):
                // then the output and the spares are wrong, and the caller, which has not swapped the states yet, runs
                // the step another way. Later launches are the same grid on the same device.
                if (barrier!.narrow(0, 2, 1).item<int>() != 0)
                    throw new CudaKernelUnavailableException("a grid barrier of the persistent Mamba kernel timed out");
                verified = true;
            }
            return output;
        }

        private void Allocate(Device at)
        {
            if (table is not null) return;
            long inner = layers.Max(l => (long)l.Inner), xRows = layers.Max(l => (long)l.Rank + 2L * l.NState);
            Tensor Keep(Tensor t) => t.DetachFromDisposeScope();
            table = Keep(zeros(new long[] { (long)layers.Length * MambaStackKernelSources.LayerBytes }, ScalarType.Byte, at));
            ping = Keep(empty(new long[] { batch, 1, dim }, dtype, at));
            pong = Keep(empty(new long[] { batch, 1, dim }, dtype, at));
            xz = Keep(empty(new[] { batch * 2 * inner }, ScalarType.Float32, at));
            dbc = Keep(empty(new[] { batch * xRows }, ScalarType.Float32, at));
            y = Keep(empty(new[] { batch * inner }, ScalarType.Float32, at));
            // arrivals, generation, gave-up flag, a spare word, then the fast barrier's 64-bit arrival count (8-byte aligned):
            // both counters start at zero, every completed launch leaves the first at zero and the second a multiple of the grid
            barrier = Keep(zeros(new long[] { 8 }, ScalarType.Int32, at));
            // the fold's per-block x_proj partial sums (one float when the kernel does not fold: the argument is unused)
            xpart = Keep(empty(new[] { FoldXProj ? grid.X * layers.Max(l => FoldColumns(batch, l)) : 1L }, ScalarType.Float32, at));
        }

        // 0 when every layer's current states are the table's first buffers and its spares the second, 1 when the other way
        // round (the step after), -1 when neither (a new cache's slots): the table is rewritten then.
        private int Parity()
        {
            bool even = true, odd = true;
            for (int i = 0; i < steps.Length && (even || odd); i++)
            {
                var slot = steps[i].Slot;
                IntPtr c = TensorPointers.Address(slot.Get("conv_state")), cs = TensorPointers.Address(slot.Spare("conv_state"));
                IntPtr s = TensorPointers.Address(slot.Get("ssm_state")), ss = TensorPointers.Address(slot.Spare("ssm_state"));
                var t = tableStates.AsSpan(4 * i, 4);
                even &= c == t[0] && cs == t[1] && s == t[2] && ss == t[3];
                odd &= c == t[1] && cs == t[0] && s == t[3] && ss == t[2];
            }
            return even ? 0 : odd ? 1 : -1;
        }

        // One MixMambaLayer per layer (the struct of MambaStackKernelSources: 16 pointers, then eps and 11 ints), with the
        // slots' current states as buffer 0 and their spares as buffer 1.
        private void WriteTable()
        {
            var bytes = new byte[layers.Length * MambaStackKernelSources.LayerBytes];
            for (int i = 0; i < layers.Length; i++)
            {
                var slot = steps[i].Slot;
                var states = new[]
                {
                    Checked(slot.Get("conv_state"), "conv_state"), Checked(slot.Spare("conv_state"), "conv_state'"),
                    Checked(slot.Get("ssm_state"), "ssm_state"), Checked(slot.Spare("ssm_state"), "ssm_state'"),
                };
                states.CopyTo(tableStates, 4 * i);
                EncodeLayer(bytes.AsSpan(i * MambaStackKernelSources.LayerBytes, MambaStackKernelSources.LayerBytes),
                    layers[i], states, splits[3 * i], splits[3 * i + 1], splits[3 * i + 2]);
            }
            using var host = torch.tensor(bytes);
            table!.copy_(host);
        }

        /// <summary>One <c>MixMambaLayer</c> as the kernel reads it (little-endian, 64-bit pointers): the layer's pointers,
        /// then the state buffers (conv 0, conv 1, ssm 0, ssm 1), then eps and the sizes, vector flags and splits.</summary>
        internal static void EncodeLayer(Span<byte> dst, in PersistentLayer l, ReadOnlySpan<IntPtr> states, int splitIn, int splitX, int splitOut)
        {
            if (dst.Length < MambaStackKernelSources.LayerBytes || states.Length != 4) throw new ArgumentException("one layer's bytes and four state buffers");
            Span<IntPtr> pointers = stackalloc IntPtr[]
            {
                l.WIn, l.WX, l.WOut, l.NormW, l.BiasIn, l.BiasOut, l.ConvW, l.ConvB, l.DtW, l.DtB, l.ALog, l.DSkip,
                states[0], states[1], states[2], states[3],
            };
            for (int k = 0; k < pointers.Length; k++) BinaryPrimitives.WriteInt64LittleEndian(dst[(8 * k)..], (long)pointers[k]);
            var tail = dst[(8 * pointers.Length)..];
            BinaryPrimitives.WriteSingleLittleEndian(tail, l.Eps);
            Span<int> ints = stackalloc int[] { l.Inner, l.Width, l.Rank, l.NState, l.Lanes, l.VecIn, l.VecX, l.VecOut, splitIn, splitX, splitOut };
            for (int k = 0; k < ints.Length; k++) BinaryPrimitives.WriteInt32LittleEndian(tail[(4 + 4 * k)..], ints[k]);
        }

        private IntPtr Checked(Tensor state, string what) => TensorPointers.Get(state, ScalarType.Float32, device, what);

        public void Dispose()
        {
            foreach (var t in new[] { table, ping, pong, xz, dbc, y, barrier, xpart }) t?.Dispose();
            table = ping = pong = xz = dbc = y = barrier = xpart = null;
        }
    }
}
