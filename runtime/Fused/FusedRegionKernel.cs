using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The kernel of one fused region of a generated forward: the generator's CUDA of its arithmetic
    /// (<see cref="Source"/>) inside the launch skeleton (<see cref="RegionKernelSources"/>), compiled through
    /// <see cref="KernelRuntime"/> (NVRTC, disk cache) at first use for each combination of input dtypes. A
    /// <see cref="FusedRegion"/> binds it to a module instance's numbers.
    /// </summary>
    public sealed class FusedRegionKernel
    {
        private const int Threads = 256;
        private readonly ConcurrentDictionary<string, CudaKernelSpec> _specs = new();
        private readonly int[] _reductions;

        private FusedRegionKernel(string name, int inputs, int scalars, bool isRow, int axis, bool reduced, int[] reductions, string source)
        {
            if (inputs is < 1 or > 6) throw new ArgumentOutOfRangeException(nameof(inputs), "a region reads 1 to 6 tensors");
            if (scalars is < 0 or > RegionArgs.MaxScalars) throw new ArgumentOutOfRangeException(nameof(scalars));
            Name = name;
            Inputs = inputs;
            Scalars = scalars;
            IsRow = isRow;
            Axis = axis;
            Reduced = reduced;
            _reductions = reductions;
            Source = source ?? throw new ArgumentNullException(nameof(source));
        }

        /// <summary>A region of pointwise ops (broadcasting inputs).</summary>
        /// <param name="name">Display name (<c>definition.regionK</c>).</param>
        /// <param name="inputs">Number of tensors it reads.</param>
        /// <param name="scalars">Number of per-instance numbers.</param>
        /// <param name="source">The generator's CUDA (<c>mix_eval</c>).</param>
        public static FusedRegionKernel Pointwise(string name, int inputs, int scalars, string source) =>
            new(name, inputs, scalars, false, 0, false, Array.Empty<int>(), source);

        /// <summary>A region with reductions or softmax along <paramref name="axis"/>.</summary>
        /// <param name="name">Display name.</param>
        /// <param name="inputs">Number of tensors it reads.</param>
        /// <param name="scalars">Number of per-instance numbers.</param>
        /// <param name="axis">The axis (negative from the end).</param>
        /// <param name="reduced">Whether the output drops the axis.</param>
        /// <param name="reductions">Per reduction or softmax: a bit mask of the inputs below it; one of them must have the full
        /// size along the axis (otherwise the reference's reduction runs over a broadcast operand and counts differently).</param>
        /// <param name="source">The generator's CUDA (<c>mix_phase</c>, <c>mix_eval</c>, ...).</param>
        public static FusedRegionKernel Row(string name, int inputs, int scalars, int axis, bool reduced, int[] reductions, string source) =>
            new(name, inputs, scalars, true, axis, reduced, reductions, source);

        /// <summary>Display name.</summary>
        public string Name { get; }
        /// <summary>Number of tensor inputs.</summary>
        public int Inputs { get; }
        /// <summary>Number of per-instance numbers.</summary>
        public int Scalars { get; }
        /// <summary>Whether it reduces along <see cref="Axis"/>.</summary>
        public bool IsRow { get; }
        /// <summary>The reduction axis of a row region.</summary>
        public int Axis { get; }
        /// <summary>Whether the output drops the axis.</summary>
        public bool Reduced { get; }
        /// <summary>The generator's CUDA of the region.</summary>
        public string Source { get; }
        /// <summary>The whole translation unit compiled by NVRTC.</summary>
        public string FullSource => RegionKernelSources.Compose(Source);

        /// <summary>This region for one module instance.</summary>
        /// <param name="scalars">The instance's numbers, in the kernel's order.</param>
        public FusedRegion Bind(params double[] scalars)
        {
            if (scalars.Length != Scalars) throw new ArgumentException($"{Name} takes {Scalars} numbers, got {scalars.Length}", nameof(scalars));
            return new FusedRegion(this, scalars);
        }

        /// <summary>The compile unit for a launch: its dtypes and, pointwise, its inputs' access classes.</summary>
        internal CudaKernelSpec Spec(LaunchPlan plan)
        {
            if (plan.Spec is { } known) return known;
            var defines = plan.Defines();
            return plan.Spec = _specs.GetOrAdd(string.Join(" ", defines), _ => new CudaKernelSpec("mix_region_" + Name, FullSource, defines));
        }

        /// <summary>How a row region maps rows to threads (<see cref="RegionKernelSources.Kernels"/>).</summary>
        internal enum RowMapping
        {
            /// <summary>A block per row: long rows along the innermost axis.</summary>
            Block,
            /// <summary>A warp per row, eight rows per block, or a smaller group of lanes per short row (<c>Split</c>): rows of up to <see cref="WarpRowMax"/> along the innermost axis.</summary>
            Warp,
            /// <summary>A thread (or a split of up to eight) per row, consecutive rows on consecutive lanes: an axis that is not innermost.</summary>
            Cols,
        }

        /// <summary>Longest row a warp takes alone (32 elements a lane); longer rows take a block.</summary>
        internal const int WarpRowMax = 1024;

        /// <summary>Blocks the column mapping aims for before it splits rows over more threads.</summary>
        internal const int ColsTargetBlocks = 1024;

        /// <summary>
        /// Vectors per thread and loop iteration of <c>mix_region_vec</c>. 1 (the default, as measured in run 17a): one
        /// vector an iteration over a grid-stride grid of at most four waves. 2: two vectors an iteration, both loaded
        /// before either is computed, over a grid that covers the tensor in one pass (<c>ceil(n / (2 · V · 256))</c> blocks)
        /// — the hand-written <c>bias_act_vec</c>'s shape, which was 10–20 % faster at ConvFormer-S18's large shapes.
        /// The same arithmetic either way (each element is computed by the same <c>mix_eval</c>).
        /// </summary>
        public static int PointwiseUnroll { get => s_unroll; set => s_unroll = value is 1 or 2 or 4 ? value : throw new ArgumentOutOfRangeException(nameof(value), "1, 2 or 4"); }
        private static volatile int s_unroll = 1;

        /// <summary>
        /// Whether the warp and block row mappings of a region whose inputs and output are all float16/bfloat16 read eight
        /// elements a load (16 bytes, as the hand-written <c>layer_norm_rows</c> does) instead of four (8 bytes). Off by
        /// default (run 17a's kernels); the arithmetic and its order within a lane's elements are the same.
        /// </summary>
        public static bool RowVector16 { get; set; }

        /// <summary>
        /// Whether the warp mapping's vector entry keeps each lane's part of the row in registers (up to eight vectors a
        /// lane) and runs every phase from them, reading the row once as the hand-written <c>layer_norm_rows</c> does,
        /// instead of once per phase. Off by default (run 17a's kernels); the same sums in the same order.
        /// </summary>
        public static bool RowInRegisters { get; set; }

        /// <summary>Tests only, this thread only: <see cref="RowInRegisters"/> for launches planned on this thread.</summary>
        internal static bool? ForceRowInRegisters { get => s_forceRowInRegisters; set => s_forceRowInRegisters = value; }
        [ThreadStatic] private static bool? s_forceRowInRegisters;

        /// <summary>Most vectors a lane holds with <see cref="RowInRegisters"/>; rows needing more read per phase.</summary>
        internal const int RowRegisterVectors = 8;

        /// <summary>Tests only, this thread only: <see cref="RowVector16"/> for launches planned on this thread.</summary>
        internal static bool? ForceRowVector16 { get => s_forceRowVector16; set => s_forceRowVector16 = value; }
        [ThreadStatic] private static bool? s_forceRowVector16;

        /// <summary>Tests only, this thread only: <see cref="PointwiseUnroll"/> for launches planned on this thread.</summary>
        internal static int? ForcePointwiseUnroll { get => s_forceUnroll; set => s_forceUnroll = value; }
        [ThreadStatic] private static int? s_forceUnroll;

        /// <summary>
        /// Whether a launch reuses the plan of an earlier call with the same shapes, strides, dtypes and device (a few
        /// per kernel) instead of planning again (merging dims, classifying inputs, choosing the row mapping: LINQ and
        /// allocations, a few µs of host time per call, which the device waits for at batch 1). Off by default until a
        /// GPU run times it; the kernels and their arguments are the same either way.
        /// </summary>
        public static bool CachePlans { get; set; }

        /// <summary>Tests only, this thread only: the row mapping to use whatever the shapes (every mapping computes every row region).</summary>
        internal static RowMapping? ForceRowMapping { get => s_forceMapping; set => s_forceMapping = value; }
        [ThreadStatic] private static RowMapping? s_forceMapping;

        /// <summary>Tests only, this thread only: the split of the column mapping (1, 2, 4 or 8), or the lanes per row of the warp mapping (1 to 32, a power of two).</summary>
        internal static int? ForceSplit { get => s_forceSplit; set => s_forceSplit = value; }
        [ThreadStatic] private static int? s_forceSplit;

        /// <summary>How one call launches: the argument block without pointers, the output, the kernel and its sizes.</summary>
        internal sealed class LaunchPlan
        {
            public RegionArgs Args;
            public long[] OutShape = Array.Empty<long>();
            /// <summary>The output's strides (elements, logical order): the layout of the input the region walks in memory order.</summary>
            public long[] OutStrides = Array.Empty<long>();
            public ScalarType OutType;
            public int[] InputCodes = Array.Empty<int>();
            /// <summary>Pointwise: each input's access class in <c>mix_region_vec</c> (<see cref="Access"/>).</summary>
            public Access[] Classes = Array.Empty<Access>();
            /// <summary>Pointwise: every index of <c>mix_region_vec</c> fits an int.</summary>
            public bool Index32;
            /// <summary>Pointwise: elements per thread and vector in <c>mix_region_vec</c> (16 bytes of the output's dtype).</summary>
            public int Vector = 4;
            /// <summary>Most blocks of a grid-stride launch (the runtime sets it from the SM count).</summary>
            public int MaxBlocks = 1 << 16;
            public bool Row;
            /// <summary>Pointwise: vectors per thread and iteration of <c>mix_region_vec</c> (<see cref="PointwiseUnroll"/>).</summary>
            public int Unroll = 1;
            /// <summary>The compile unit, once chosen (a cached plan keeps it).</summary>
            public CudaKernelSpec? Spec;
            public RowMapping Mapping;
            /// <summary>Row, warp or block mapping: every input walks the row densely or not at all, rows of whole vectors: <see cref="RowVector"/> elements a load, if the pointers are 16-byte aligned.</summary>
            public bool VectorRows;
            /// <summary>Row: elements a vector load of the warp and block mappings (4, or 8 with <see cref="RowVector16"/> on half types).</summary>
            public int RowVector = 4;
            /// <summary>Row, warp mapping: vectors a lane keeps in registers (<see cref="RowInRegisters"/>; 0: the row is read per phase).</summary>
            public int RowRegisters;
            public uint RowThreads;

            /// <summary>The -D options of the compile unit: dtypes, then (pointwise) access classes and index width.</summary>
            public string[] Defines()
            {
                var d = InputCodes.Select((c, i) => $"-DMIX_T{i}={c}").Append($"-DMIX_TO={FusedKernels.DtypeCode(OutType)}");
                if (!Row)
                    d = d.Concat(Classes.Select((c, i) => $"-DMIX_A{i}={(int)c}")).Append($"-DMIX_V={Vector}").Append($"-DMIX_IX32={(Index32 ? 1 : 0)}");
                // only where it is on, so the default build's options (and its kernel cache key) stay as they were
                if (!Row && Unroll > 1) d = d.Append($"-DMIX_U={Unroll}");
                if (Row && RowVector != 4) d = d.Append($"-DMIX_RV={RowVector}");
                if (Row && RowRegisters > 0) d = d.Append($"-DMIX_RNV={RowRegisters}");
                return d.ToArray();
            }

            /// <summary>Pointwise: whether input <paramref name="i"/> takes vector loads in <c>mix_region_vec</c> (its pointer must be 16-byte aligned).</summary>
            public bool VectorLoads(int i) => Classes[i] is Access.Dense or Access.ChannelRun;

            public string Entry(bool aligned) => !Row
                ? aligned ? "mix_region_vec" : "mix_region_strided"
                : Mapping switch
                {
                    RowMapping.Warp => VectorRows && aligned ? "mix_region_warp4" : "mix_region_warp",
                    RowMapping.Cols => "mix_region_cols",
                    _ => VectorRows && aligned ? "mix_region_row4" : "mix_region_row",
                };

            public (uint Grid, uint Block) Dims(string entry) => entry switch
            {
                "mix_region_row" or "mix_region_row4" => ((uint)Math.Min(Args.N, 1 << 20), RowThreads),
                "mix_region_warp" or "mix_region_warp4" => (Grid(Args.N, Threads / Args.Split), Threads),
                "mix_region_cols" => (Grid(Args.N, Threads / Args.Split), Threads),
                "mix_region_vec" when Unroll > 1 => ((uint)Math.Clamp((Args.N / Vector + Unroll * Threads - 1) / (Unroll * Threads), 1, Math.Max(1, Math.Min(MaxBlocks, int.MaxValue))), Threads),
                "mix_region_vec" => ((uint)Math.Clamp((Args.N / Vector + Threads - 1) / Threads, 1, Math.Max(1, MaxBlocks)), Threads),
                _ => (Grid(Args.N, Threads), Threads),
            };
        }

        /// <summary>The fused result, or null when these inputs are not for the kernel (dtype, rank, shapes).</summary>
        internal unsafe Tensor? Launch(Tensor[] xs, float[] scalars)
        {
            if (xs.Length != Inputs) throw new ArgumentException($"{Name} reads {Inputs} tensors, got {xs.Length}", nameof(xs));
            var layout = new (long[] Shape, long[] Strides, ScalarType Dtype)[xs.Length];
            for (int i = 0; i < xs.Length; i++) layout[i] = (xs[i].shape, xs[i].stride(), xs[i].dtype);
            int dev = FusedOps.DeviceIndex(xs[0]);
            for (int i = 1; i < xs.Length; i++) if (FusedOps.DeviceIndex(xs[i]) != dev) return null;
            if (!FusedOps.IsAvailable(xs[0].device)) return null;
            // forced mappings (tests) plan every call; the unroll is part of a pointwise plan, so a changed switch misses
            bool cache = CachePlans && ForceRowMapping is null && ForceSplit is null && ForcePointwiseUnroll is null && ForceRowVector16 is null
                && ForceRowInRegisters is null;
            int rowSwitches = (RowVector16 ? 1 : 0) | (RowInRegisters ? 2 : 0);
            var plan = cache ? _plans.Find(layout, dev, PointwiseUnroll, rowSwitches) : null;
            if (plan is null)
            {
                plan = Prepare(layout, scalars);
                if (plan is null) return null;
                if (!plan.Row) plan.MaxBlocks = plan.Unroll > 1 ? int.MaxValue : GridStrideBlocks(dev);
                if (cache) _plans.Add(layout, dev, rowSwitches, plan);
            }
            try
            {
                var spec = Spec(plan);
                var y = torch.empty_strided(plan.OutShape, plan.OutStrides, plan.OutType, xs[0].device);
                // a cached plan is shared: this call's pointers and numbers go into a copy of its argument block
                var args = plan.Args;
                for (int k = 0; k < scalars.Length; k++) args.S[k] = scalars[k];
                bool aligned = true;
                for (int i = 0; i < xs.Length; i++)
                {
                    var p = TensorPointers.GetDense(xs[i], xs[i].dtype, dev, Name);
                    args.In[i] = (long)p;
                    if (plan.Row || plan.VectorLoads(i)) aligned &= p % 16 == 0;
                }
                var po = TensorPointers.GetDense(y, plan.OutType, dev, Name);
                args.Out = (long)po;
                aligned &= po % 16 == 0;
                var entry = plan.Entry(aligned);
                var fn = KernelRuntime.Shared.GetFunction(spec, entry, dev);
                var (grid, block) = plan.Dims(entry);
                using var list = new KernelArguments(dev);
                list.AddBlock(args);
                fn.Launch(new Dim3(grid), new Dim3(block), 0, list);
                return y;
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        private readonly PlanCache _plans = new();

        /// <summary>
        /// The last few plans of one kernel by the layouts they were made for (shapes, strides, dtypes, device): a model
        /// calls a region with a handful of layouts, each again every forward. Scalars are not part of a plan's identity
        /// (a launch writes its own into a copy of the argument block); the switches a plan was made under are.
        /// </summary>
        internal sealed class PlanCache
        {
            private const int Size = 8;
            private readonly object _gate = new();
            private readonly (long[][] Shapes, long[][] Strides, ScalarType[] Dtypes, int Device, int RowSwitches, LaunchPlan Plan)?[] _entries =
                new (long[][], long[][], ScalarType[], int, int, LaunchPlan)?[Size];
            private int _next;

            public LaunchPlan? Find((long[] Shape, long[] Strides, ScalarType Dtype)[] xs, int device, int unroll, int rowSwitches)
            {
                lock (_gate)
                {
                    foreach (var entry in _entries)
                    {
                        if (entry is not { } e || e.Device != device || e.Shapes.Length != xs.Length
                            || (!e.Plan.Row && e.Plan.Unroll != unroll) || (e.Plan.Row && e.RowSwitches != rowSwitches)) continue;
                        bool same = true;
                        for (int i = 0; i < xs.Length && same; i++)
                            same = e.Dtypes[i] == xs[i].Dtype && e.Shapes[i].AsSpan().SequenceEqual(xs[i].Shape) && e.Strides[i].AsSpan().SequenceEqual(xs[i].Strides);
                        if (same) return e.Plan;
                    }
                    return null;
                }
            }

            /// <param name="xs">The layouts the plan was made for.</param>
            /// <param name="device">The device.</param>
            /// <param name="rowSwitches">A row plan's switches: 1 <see cref="RowVector16"/>, 2 <see cref="RowInRegisters"/>.</param>
            /// <param name="plan">The plan.</param>
            public void Add((long[] Shape, long[] Strides, ScalarType Dtype)[] xs, int device, int rowSwitches, LaunchPlan plan)
            {
                lock (_gate)
                {
                    _entries[_next] = (xs.Select(x => x.Shape).ToArray(), xs.Select(x => x.Strides).ToArray(), xs.Select(x => x.Dtype).ToArray(),
                        device, rowSwitches, plan);
                    _next = (_next + 1) % Size;
                }
            }
        }

        /// <summary>
        /// The launch for inputs of these shapes, strides (in elements) and dtypes, or null when the kernel does not
        /// apply (unsupported dtype, rank above eight, not broadcastable, empty, a reduction over a broadcast axis).
        /// Pointers are left to the caller.
        /// </summary>
        internal unsafe LaunchPlan? Prepare((long[] Shape, long[] Strides, ScalarType Dtype)[] xs, float[] scalars)
        {
            var codes = new int[xs.Length];
            for (int i = 0; i < xs.Length; i++)
            {
                codes[i] = FusedKernels.DtypeCode(xs[i].Dtype);
                if (codes[i] < 0) return null;
            }
            var dtype = xs[0].Dtype;
            foreach (var x in xs)
            {
                if (x.Dtype == dtype) continue;
                // PyTorch's promotion among floating tensors of one category; a 0-d tensor would not promote: leave it to the reference.
                if (xs.Any(t => t.Shape.Length == 0)) return null;
                dtype = ScalarType.Float32;
            }

            int rank = xs.Max(x => x.Shape.Length);
            if (rank > RegionArgs.MaxDims) return null;
            var shape = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = 1;
            var sizes = new long[xs.Length][];
            var strides = new long[xs.Length][];
            for (int i = 0; i < xs.Length; i++)
            {
                (sizes[i], strides[i]) = Aligned(xs[i].Shape, xs[i].Strides, rank);
                for (int d = 0; d < rank; d++)
                {
                    var s = sizes[i][d];
                    if (s == shape[d] || s == 1) continue;
                    if (shape[d] != 1) return null; // not broadcastable: the reference reports it
                    shape[d] = s;
                }
            }
            long n = 1;
            foreach (var s in shape) n *= s;
            if (n == 0) return null;
            // Walk in the memory order of the first input that has the output's shape and dense memory, and give the output
            // its layout (as PyTorch's elementwise ops do): channels-last stays channels-last, and a norm over the channels
            // of channels-last memory walks its rows innermost (warp per row, vector reads) instead of strided columns.
            // A reduction that drops its axis keeps the logical order (its output has another shape).
            var logical = (long[])shape.Clone();
            var perm = IsRow && Reduced ? null : MemoryOrder(sizes, strides, shape);
            var outStrides0 = new long[rank];
            {
                long acc = 1;
                for (int k = rank - 1; k >= 0; k--)
                {
                    int d = perm?[k] ?? k;
                    outStrides0[d] = acc;
                    acc *= shape[d];
                }
            }
            if (perm is not null)
            {
                shape = perm.Select(d => shape[d]).ToArray();
                for (int i = 0; i < xs.Length; i++)
                {
                    sizes[i] = perm.Select(d => sizes[i][d]).ToArray();
                    strides[i] = perm.Select(d => strides[i][d]).ToArray();
                }
            }
            for (int i = 0; i < xs.Length; i++)
                for (int d = 0; d < rank; d++)
                    if (sizes[i][d] == 1) strides[i][d] = 0;

            var plan = new LaunchPlan { InputCodes = codes, OutType = dtype, Row = IsRow };
            for (int k = 0; k < scalars.Length; k++) plan.Args.S[k] = scalars[k];
            if (!IsRow)
            {
                var dims = Collapse(shape, strides.Append(Contiguous(shape)).ToArray(), skip: -1);
                plan.OutShape = logical;
                plan.OutStrides = outStrides0;
                plan.Args.N = n;
                plan.Args.NDim = dims.Count;
                for (int d = 0; d < dims.Count; d++)
                {
                    plan.Args.Size[d] = dims[d].Size;
                    for (int i = 0; i < xs.Length; i++) plan.Args.Stride[i * RegionArgs.MaxDims + d] = dims[d].Strides[i];
                }
                Classify(plan, dims, xs.Length);
                plan.Unroll = ForcePointwiseUnroll ?? PointwiseUnroll;
                return plan;
            }

            if (rank == 0) return null;
            // A positive axis counts from the front of the reduced operands: they must have the full rank.
            int below = _reductions.Aggregate(0, (a, m) => a | m);
            if (Axis >= 0 && Enumerable.Range(0, xs.Length).Any(i => (below >> i & 1) != 0 && xs[i].Shape.Length != rank)) return null;
            int ax = Axis < 0 ? Axis + rank : Axis;
            if (ax < 0 || ax >= rank) return null;
            if (perm is not null) ax = Array.IndexOf(perm, ax);
            long rowLen = shape[ax];
            foreach (var mask in _reductions)
            {
                bool full = rowLen == 1;
                for (int i = 0; i < xs.Length; i++) full |= (mask >> i & 1) != 0 && sizes[i][ax] == rowLen;
                if (!full) return null; // reduced over a broadcast axis: the reference's count differs
            }
            plan.OutShape = Reduced ? shape.Where((_, d) => d != ax).ToArray() : logical;
            plan.OutStrides = Reduced ? Contiguous(plan.OutShape) : outStrides0;
            var outStrides = Reduced ? Contiguous(shape.Select((s, d) => d == ax ? 1L : s).ToArray()) : Contiguous(shape);
            if (Reduced) outStrides[ax] = 0;
            var rowDims = Collapse(shape, strides.Append(outStrides).ToArray(), skip: ax);
            plan.Args.N = n / rowLen;
            plan.Args.RowLen = rowLen;
            plan.Args.NDim = rowDims.Count;
            for (int i = 0; i < xs.Length; i++) plan.Args.AxisStride[i] = strides[i][ax];
            plan.Args.AxisStride[RegionArgs.MaxInputs] = outStrides[ax];
            for (int d = 0; d < rowDims.Count; d++)
            {
                plan.Args.Size[d] = rowDims[d].Size;
                for (int i = 0; i < xs.Length; i++) plan.Args.Stride[i * RegionArgs.MaxDims + d] = rowDims[d].Strides[i];
                plan.Args.Stride[RegionArgs.MaxInputs * RegionArgs.MaxDims + d] = rowDims[d].Strides[xs.Length];
            }
            ChooseRowMapping(plan, shape, ax, strides, rowDims, xs.Length);
            return plan;
        }

        /// <summary>
        /// The row mapping from the layout, the row length and the row count: an axis with no dim of size above one after
        /// it walks contiguous memory, so a warp (short rows) or a block (long rows) shares a row, reading whole vectors
        /// where every input allows; any other axis takes the column mapping, whose neighbouring threads hold
        /// neighbouring rows (the inner dims), split over more threads per row while there are too few rows to fill
        /// <see cref="ColsTargetBlocks"/> blocks.
        /// </summary>
        private unsafe void ChooseRowMapping(LaunchPlan plan, long[] shape, int ax, long[][] strides,
            List<(long Size, long[] Strides)> rowDims, int inputs)
        {
            long rowLen = plan.Args.RowLen, rows = plan.Args.N;
            bool inner = true;
            for (int d = ax + 1; d < shape.Length; d++) inner &= shape[d] == 1;
            plan.Mapping = ForceRowMapping ?? (!inner && rowLen > 1 ? RowMapping.Cols : rowLen <= WarpRowMax ? RowMapping.Warp : RowMapping.Block);

            // Vector reads: every input has axis stride 0 or 1 (size-1 axes were given stride 0), rows start on whole
            // vectors (row strides multiples of 4) and the output walks the row densely.
            int rv = (ForceRowVector16 ?? RowVector16) && plan.OutType != ScalarType.Float32 && plan.InputCodes.All(c => c != 0) ? 8 : 4;
            bool vector = rowLen % rv == 0 && (Reduced || plan.Args.AxisStride[RegionArgs.MaxInputs] == 1);
            for (int i = 0; i < inputs && vector; i++)
            {
                long a = strides[i][ax];
                vector &= a == 0 || a == 1;
                if (a == 1) foreach (var d in rowDims) vector &= d.Strides[i] % rv == 0;
            }
            foreach (var d in rowDims) vector &= Reduced || d.Strides[inputs] % rv == 0;
            plan.VectorRows = vector && plan.Mapping != RowMapping.Cols;
            plan.RowVector = plan.VectorRows ? rv : 4;

            // A block per row: a whole block of threads for long rows when there are few of them.
            plan.RowThreads = rowLen >= 8 * Threads && rows < 512
                ? 1024u
                : (uint)Math.Clamp((rowLen + 31) / 32 * 32, 32, Threads);
            int split = 1;
            if (plan.Mapping == RowMapping.Warp)
            {
                // lanes per row: enough for one pass of whole vectors (elements), at most a warp
                long per = (rowLen + (plan.VectorRows ? plan.RowVector - 1 : 0)) / (plan.VectorRows ? plan.RowVector : 1);
                split = 32;
                while (split > 1 && split / 2 >= per) split /= 2;
                split = ForceSplit ?? split;
            }
            else if (plan.Mapping == RowMapping.Cols)
            {
                split = ForceSplit ?? 1;
                if (ForceSplit is null)
                    while (split < 8 && 2 * split <= rowLen && (rows * split + Threads - 1) / Threads < ColsTargetBlocks) split *= 2;
            }
            plan.Args.Split = split;
            if ((ForceRowInRegisters ?? RowInRegisters) && plan.Mapping == RowMapping.Warp && plan.VectorRows)
            {
                long per = (rowLen + (long)split * plan.RowVector - 1) / ((long)split * plan.RowVector);
                // powers of two: fewer compile units across row lengths
                int nv = 1;
                while (nv < per) nv *= 2;
                plan.RowRegisters = nv <= RowRegisterVectors ? nv : 0;
            }
        }

        /// <summary>How <c>mix_region_vec</c> reads one input (<see cref="RegionKernelSources.Kernels"/>, <c>-DMIX_A&lt;i&gt;</c>).</summary>
        internal enum Access
        {
            /// <summary>Its own strides over every dim, per element.</summary>
            General = 0,
            /// <summary>Laid out as the output: vector loads at the output's index.</summary>
            Dense = 1,
            /// <summary>One value (every stride 0).</summary>
            Scalar = 2,
            /// <summary>A vector along one dim whose runs of equal values span whole vectors (per-channel, NCHW): one load a vector.</summary>
            ChannelOuter = 3,
            /// <summary>A unit-step vector along the innermost dim, whole vectors per period (per-channel, channels-last): vector loads.</summary>
            ChannelRun = 4,
            /// <summary>A vector along one dim otherwise: one load an element, no divisions.</summary>
            Channel = 5,
        }

        /// <summary>
        /// Each input's access class from the collapsed walk (the output is contiguous in it), the vector width from the
        /// output's dtype, and whether every index fits an int: compile-time constants of <c>mix_region_vec</c>, so a
        /// dense tensor, a scalar and a per-channel vector (either layout) read without per-element index arithmetic.
        /// </summary>
        private static unsafe void Classify(LaunchPlan plan, List<(long Size, long[] Strides)> dims, int inputs)
        {
            int v = plan.OutType == ScalarType.Float32 ? 4 : 8;
            plan.Vector = v;
            plan.Classes = new Access[inputs];
            long limit = int.MaxValue / 2; // leaves room for the grid stride past the last index
            bool fits = plan.Args.N <= limit;
            for (int i = 0; i < inputs; i++)
            {
                long extent = 0;
                foreach (var d in dims) extent += (d.Size - 1) * Math.Abs(d.Strides[i]);
                fits &= extent <= limit;
                var moving = Enumerable.Range(0, dims.Count).Where(d => dims[d].Strides[i] != 0).ToArray();
                Access c;
                if (dims.All(d => d.Strides[i] == d.Strides[inputs])) c = Access.Dense;
                else if (moving.Length == 0) c = Access.Scalar;
                else if (moving.Length == 1 && dims.Count <= RegionArgs.MaxDims - 3)
                {
                    int k = moving[0];
                    long inner = dims[k].Strides[inputs], count = dims[k].Size, step = dims[k].Strides[i];
                    c = inner % v == 0 ? Access.ChannelOuter
                        : inner == 1 && step == 1 && count % v == 0 ? Access.ChannelRun
                        : Access.Channel;
                    // in the stride row's last three slots, past the walk's dims (MIX_CH)
                    int ch = i * RegionArgs.MaxDims + RegionArgs.MaxDims - 3;
                    plan.Args.Stride[ch] = inner;
                    plan.Args.Stride[ch + 1] = count;
                    plan.Args.Stride[ch + 2] = step;
                }
                else c = Access.General;
                plan.Classes[i] = c;
            }
            plan.Index32 = fits;
        }

        private static readonly ConcurrentDictionary<int, int> s_gridStrideBlocks = new();

        /// <summary>Blocks of a grid-stride pointwise launch on this device: four waves of full occupancy (eight blocks of 256 threads an SM).</summary>
        private static int GridStrideBlocks(int device) => s_gridStrideBlocks.GetOrAdd(device, d =>
        {
            try { return Math.Max(1, KernelRuntime.Shared.Driver!.GetAttribute(d, CudaDriver.AttributeMultiprocessorCount)) * 8 * 4; }
            catch (Exception) { return 1 << 16; }
        });

        private static uint Grid(long work, int threads) => (uint)Math.Clamp((work + threads - 1) / threads, 1, 1 << 16);

        /// <summary>A tensor's sizes and strides right-aligned to <paramref name="rank"/> dims (leading size-1 dims).</summary>
        private static (long[] Sizes, long[] Strides) Aligned(long[] s, long[] st, int rank)
        {
            var sizes = Enumerable.Repeat(1L, rank).ToArray();
            var strides = new long[rank];
            int off = rank - s.Length;
            for (int d = 0; d < s.Length; d++)
            {
                sizes[off + d] = s[d];
                strides[off + d] = st[d];
            }
            return (sizes, strides);
        }

        /// <summary>
        /// The dims in the memory order of the first input whose sizes are the output's and whose strides tile one block
        /// of memory (outermost first; dims of size 1 keep their places), or null for the logical order (that input is
        /// contiguous, or there is none).
        /// </summary>
        private static int[]? MemoryOrder(long[][] sizes, long[][] strides, long[] shape)
        {
            int rank = shape.Length;
            for (int i = 0; i < sizes.Length; i++)
            {
                if (!sizes[i].SequenceEqual(shape)) continue;
                bool contiguous = true;
                long e = 1;
                for (int d = rank - 1; d >= 0 && contiguous; d--)
                {
                    contiguous = shape[d] == 1 || strides[i][d] == e;
                    e *= shape[d];
                }
                if (contiguous) return null;
                var big = Enumerable.Range(0, rank).Where(d => shape[d] > 1).ToArray();
                // outermost first: larger strides first, ties (none in dense memory) in logical order
                var order = big.OrderByDescending(d => strides[i][d]).ThenBy(d => d).ToArray();
                long expect = 1;
                bool dense = true;
                for (int k = order.Length - 1; k >= 0 && dense; k--)
                {
                    dense = strides[i][order[k]] == expect;
                    expect *= shape[order[k]];
                }
                if (!dense) continue;
                var perm = Enumerable.Range(0, rank).ToArray();
                for (int k = 0; k < big.Length; k++) perm[big[k]] = order[k];
                return perm;
            }
            return null;
        }

        private static long[] Contiguous(long[] shape)
        {
            var st = new long[shape.Length];
            long acc = 1;
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                st[d] = acc;
                acc *= shape[d];
            }
            return st;
        }

        /// <summary>
        /// The dims to walk (all but <paramref name="skip"/>), size-1 dims dropped and neighbours merged where every
        /// tensor's strides chain (so a dense tensor walks as one dim).
        /// </summary>
        internal static List<(long Size, long[] Strides)> Collapse(long[] shape, long[][] strides, int skip)
        {
            var dims = new List<(long Size, long[] Strides)>();
            for (int d = 0; d < shape.Length; d++)
            {
                if (d == skip || shape[d] == 1) continue;
                var st = strides.Select(s => s[d]).ToArray();
                if (dims.Count > 0)
                {
                    var (prevSize, prev) = dims[dims.Count - 1];
                    bool chains = true;
                    for (int i = 0; i < st.Length; i++) chains &= prev[i] == st[i] * shape[d];
                    if (chains)
                    {
                        dims[dims.Count - 1] = (prevSize * shape[d], st);
                        continue;
                    }
                }
                dims.Add((shape[d], st));
            }
            if (dims.Count == 0) dims.Add((1, new long[strides.Length]));
            return dims;
        }
    }
}
