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

        /// <summary>The compile unit for these dtype codes (inputs, then output).</summary>
        internal CudaKernelSpec Spec(int[] inputCodes, int outputCode)
        {
            var key = string.Join(",", inputCodes) + ">" + outputCode;
            return _specs.GetOrAdd(key, _ => new CudaKernelSpec("mix_region_" + Name,
                FullSource, inputCodes.Select((c, i) => $"-DMIX_T{i}={c}").Append($"-DMIX_TO={outputCode}").ToArray()));
        }

        /// <summary>The fused result, or null when these inputs are not for the kernel (dtype, rank, shapes).</summary>
        internal unsafe Tensor? Launch(Tensor[] xs, float[] scalars)
        {
            if (xs.Length != Inputs) throw new ArgumentException($"{Name} reads {Inputs} tensors, got {xs.Length}", nameof(xs));
            var codes = new int[xs.Length];
            for (int i = 0; i < xs.Length; i++)
            {
                codes[i] = FusedKernels.DtypeCode(xs[i].dtype);
                if (codes[i] < 0) return null;
            }
            var dtype = xs[0].dtype;
            foreach (var x in xs)
            {
                if (x.dtype == dtype) continue;
                // PyTorch's promotion among floating tensors of one category; a 0-d tensor would not promote: leave it to the reference.
                if (xs.Any(t => t.dim() == 0)) return null;
                dtype = ScalarType.Float32;
            }
            int dev = FusedOps.DeviceIndex(xs[0]);
            if (xs.Any(x => FusedOps.DeviceIndex(x) != dev) || !FusedOps.IsAvailable(xs[0].device)) return null;

            int rank = xs.Max(x => (int)x.dim());
            if (rank > RegionArgs.MaxDims) return null;
            var shape = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = 1;
            var sizes = new long[xs.Length][];
            var strides = new long[xs.Length][];
            for (int i = 0; i < xs.Length; i++)
            {
                (sizes[i], strides[i]) = Aligned(xs[i], rank);
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
            for (int i = 0; i < xs.Length; i++)
                for (int d = 0; d < rank; d++)
                    if (sizes[i][d] == 1) strides[i][d] = 0;

            try
            {
                var spec = Spec(codes, FusedKernels.DtypeCode(dtype));
                return IsRow ? LaunchRow(xs, scalars, spec, dev, dtype, shape, sizes, strides, n)
                             : LaunchPointwise(xs, scalars, spec, dev, dtype, shape, strides, n);
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        private unsafe Tensor? LaunchPointwise(Tensor[] xs, float[] scalars, CudaKernelSpec spec, int dev, ScalarType dtype, long[] shape,
            long[][] strides, long n)
        {
            var y = torch.empty(shape, dtype, xs[0].device);
            var outStrides = Contiguous(shape);
            var dims = Collapse(shape, strides.Append(outStrides).ToArray(), skip: -1);
            bool flat = dims.Count == 1 && xs.Select((x, i) => dims[0].Strides[i] == 1).All(b => b) && n % 4 == 0;
            var args = new RegionArgs { N = n, NDim = dims.Count };
            for (int i = 0; i < xs.Length; i++)
            {
                var p = TensorPointers.GetDense(xs[i], xs[i].dtype, dev, Name);
                args.In[i] = (long)p;
                if (p % (4 * xs[i].ElementSize) != 0) flat = false;
            }
            var po = TensorPointers.GetDense(y, dtype, dev, Name);
            args.Out = (long)po;
            if (po % (4 * y.ElementSize) != 0) flat = false;
            for (int d = 0; d < dims.Count; d++)
            {
                args.Size[d] = dims[d].Size;
                for (int i = 0; i < xs.Length; i++) args.Stride[i * RegionArgs.MaxDims + d] = dims[d].Strides[i];
            }
            for (int k = 0; k < scalars.Length; k++) args.S[k] = scalars[k];
            var fn = KernelRuntime.Shared.GetFunction(spec, flat ? "mix_region_flat" : "mix_region_strided", dev);
            long work = flat ? n / 4 : n;
            using var list = new KernelArguments(dev);
            list.AddBlock(args);
            fn.Launch(new Dim3(Grid(work, Threads)), new Dim3(Threads), 0, list);
            return y;
        }

        private unsafe Tensor? LaunchRow(Tensor[] xs, float[] scalars, CudaKernelSpec spec, int dev, ScalarType dtype, long[] shape,
            long[][] sizes, long[][] strides, long n)
        {
            int rank = shape.Length;
            if (rank == 0) return null;
            if (Axis >= 0 && xs.Any(x => x.dim() != rank)) return null; // a positive axis counts from the front of each input
            int ax = Axis < 0 ? Axis + rank : Axis;
            if (ax < 0 || ax >= rank) return null;
            long rowLen = shape[ax];
            foreach (var mask in _reductions)
            {
                bool full = rowLen == 1;
                for (int i = 0; i < xs.Length; i++) full |= (mask >> i & 1) != 0 && sizes[i][ax] == rowLen;
                if (!full) return null; // reduced over a broadcast axis: the reference's count differs
            }
            var outShape = Reduced ? shape.Where((_, d) => d != ax).ToArray() : shape;
            var y = torch.empty(outShape, dtype, xs[0].device);
            var outStrides = Reduced ? Contiguous(shape.Select((s, d) => d == ax ? 1L : s).ToArray()) : Contiguous(shape);
            if (Reduced) outStrides[ax] = 0;
            var all = strides.Append(outStrides).ToArray();
            var dims = Collapse(shape, all, skip: ax);
            var args = new RegionArgs { N = n / rowLen, RowLen = rowLen, NDim = dims.Count };
            for (int i = 0; i < xs.Length; i++)
            {
                args.In[i] = (long)TensorPointers.GetDense(xs[i], xs[i].dtype, dev, Name);
                args.AxisStride[i] = strides[i][ax];
            }
            args.Out = (long)TensorPointers.GetDense(y, dtype, dev, Name);
            args.AxisStride[RegionArgs.MaxInputs] = outStrides[ax];
            for (int d = 0; d < dims.Count; d++)
            {
                args.Size[d] = dims[d].Size;
                for (int i = 0; i < xs.Length; i++) args.Stride[i * RegionArgs.MaxDims + d] = dims[d].Strides[i];
                args.Stride[RegionArgs.MaxInputs * RegionArgs.MaxDims + d] = dims[d].Strides[xs.Length];
            }
            for (int k = 0; k < scalars.Length; k++) args.S[k] = scalars[k];
            var fn = KernelRuntime.Shared.GetFunction(spec, "mix_region_row", dev);
            int threads = (int)Math.Clamp((rowLen + 31) / 32 * 32, 32, Threads);
            using var list = new KernelArguments(dev);
            list.AddBlock(args);
            fn.Launch(new Dim3((uint)Math.Min(args.N, 1 << 20)), new Dim3((uint)threads), 0, list);
            return y;
        }

        private static uint Grid(long work, int threads) => (uint)Math.Clamp((work + threads - 1) / threads, 1, 1 << 16);

        /// <summary>A tensor's sizes and strides right-aligned to <paramref name="rank"/> dims (leading size-1 dims).</summary>
        private static (long[] Sizes, long[] Strides) Aligned(Tensor x, int rank)
        {
            var sizes = Enumerable.Repeat(1L, rank).ToArray();
            var strides = new long[rank];
            var s = x.shape;
            var st = x.stride();
            int off = rank - s.Length;
            for (int d = 0; d < s.Length; d++)
            {
                sizes[off + d] = s[d];
                strides[off + d] = st[d];
            }
            return (sizes, strides);
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
