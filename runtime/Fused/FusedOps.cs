using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Fused CUDA forward paths for the declared mixers. Every method returns <c>null</c> when the fused path does not
    /// apply — input not on CUDA, dtype not float32/float16/bfloat16, autograd needed (grad mode on and an input that
    /// requires grad: training keeps the reference path), or kernels unavailable (no driver, no NVRTC, failed compile;
    /// warned once through <see cref="KernelLog"/>) — so callers write <c>FusedOps.X(...) ?? reference(...)</c>.
    /// Shape errors throw <see cref="ArgumentException"/>. Kernels run on the null stream, ordered with TorchSharp's work.
    /// </summary>
    public static partial class FusedOps
    {
        private const int Threads = 256;


        /// <summary>Whether fused kernels can run for tensors on <paramref name="device"/> (CUDA device, driver and NVRTC present).</summary>
        /// <param name="device">A TorchSharp device.</param>
        public static bool IsAvailable(Device device) =>
            device.type == DeviceType.CUDA && KernelRuntime.Shared.IsAvailable;

        /// <summary>Compiles (or loads from the disk cache) every fused kernel for the dtypes given (all three when none) on a CUDA device.</summary>
        /// <param name="device">CUDA device.</param>
        /// <param name="dtypes">I/O dtypes to prepare.</param>
        /// <returns>Number of kernel modules ready.</returns>
        public static int WarmUp(Device device, params ScalarType[] dtypes)
        {
            if (!IsAvailable(device)) return 0;
            var codes = (dtypes.Length == 0 ? new[] { ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16 } : dtypes)
                .Select(FusedKernels.DtypeCode).Where(c => c >= 0).Distinct();
            return KernelRuntime.Shared.WarmUp(FusedKernels.All(codes), device.index < 0 ? 0 : device.index);
        }

        /// <summary>
        /// Registers and local (spill) bytes per thread of the main fused kernels for <paramref name="dtype"/>, as compiled for
        /// <paramref name="device"/>: a quick check that a kernel fits the occupancy it was designed for.
        /// </summary>
        /// <param name="device">CUDA device.</param>
        /// <param name="dtype">I/O dtype.</param>
        public static IEnumerable<(string Kernel, int Registers, int LocalBytes)> KernelResources(Device device, ScalarType dtype)
        {
            int code = FusedKernels.DtypeCode(dtype);
            if (code < 0 || !IsAvailable(device)) yield break;
            int dev = device.index < 0 ? 0 : device.index;
            var pool = FusedKernels.Pooling(code);
            var epi = FusedKernels.Epilogue(code, FusedActivation.Gelu);
            foreach (var (spec, entry) in new[] { (pool, "pool_tile"), (pool, "gn_stats"), (pool, "gn_apply_vec"), (epi, "bias_act_vec"), (epi, "scale_res_vec") })
            {
                var f = KernelRuntime.Shared.GetFunction(spec, entry, dev);
                yield return (entry, f.Registers, f.LocalBytes);
            }
        }

        internal static bool NeedsGrad(params Tensor?[] ts)
        {
            if (!torch.is_grad_enabled()) return false;
            foreach (var t in ts) if (t is not null && t.requires_grad) return true;
            return false;
        }

        internal static int DeviceIndex(Tensor t) => t.device_index < 0 ? 0 : (int)t.device_index;

        /// <summary>Float32 contiguous copy (or the tensor itself) of a small parameter on <paramref name="like"/>'s device.</summary>
        internal static Tensor Param(Tensor p, Tensor like) =>
            p.to(ScalarType.Float32, like.device).contiguous();

        internal static uint Blocks(long work, int threads = Threads)
        {
            long b = (work + threads - 1) / threads;
            return (uint)Math.Clamp(b, 1, int.MaxValue);
        }

        private static bool Aligned16(Tensor t, int device, ScalarType dtype, string what) =>
            ((long)TensorPointers.GetDense(t, dtype, device, what) & 15) == 0;

        /// <summary>
        /// A tensor's shape and, unless it is contiguous, its strides: read once per call, since each read marshals an
        /// array out of libtorch and these calls are short enough for that to matter.
        /// </summary>
        internal readonly struct Layout
        {
            public readonly long[] Shape;
            public readonly long[]? Strides;
            public readonly bool Dense;

            public Layout(Tensor t)
            {
                Shape = t.shape;
                Strides = t.is_contiguous() ? null : t.stride();
                Dense = Strides is null || IsDense(Shape, Strides);
            }

            /// <summary>
            /// For channel dimension <paramref name="channelDim"/> of a dense tensor (NCHW, channels-last, any order): the
            /// channel count and the elements between consecutive channels in memory (H·W for NCHW, 1 for channels-last),
            /// so a kernel walking memory order finds element e's channel as <c>(e / inner) mod C</c>.
            /// </summary>
            public (long C, long inner) Channel(int channelDim)
            {
                int cd = channelDim < 0 ? Shape.Length + channelDim : channelDim;
                if (cd < 0 || cd >= Shape.Length) throw new ArgumentOutOfRangeException(nameof(channelDim), channelDim, "channel dimension out of range");
                long C = Shape[cd];
                if (C == 1) return (1, 1);
                if (Strides is not null) return (C, Strides[cd]);
                long inner = 1;
                for (int i = cd + 1; i < Shape.Length; i++) inner *= Shape[i];
                return (C, inner);
            }

            /// <summary>Whether <paramref name="other"/> (same shape) lays its elements out identically.</summary>
            public bool Matches(in Layout other)
            {
                if (!Shape.AsSpan().SequenceEqual(other.Shape)) return false;
                if (Strides is null || other.Strides is null) return Strides is null && other.Strides is null;
                for (int i = 0; i < Shape.Length; i++) if (Shape[i] != 1 && Strides[i] != other.Strides[i]) return false;
                return true;
            }

            /// <summary>Whether the first dimension is the slowest in memory (each sample one contiguous block).</summary>
            public bool BatchOutermost
            {
                get
                {
                    if (!Dense || Shape.Length == 0) return false;
                    if (Strides is null || Shape[0] <= 1) return true;
                    long rest = 1;
                    for (int i = 1; i < Shape.Length; i++) rest *= Shape[i];
                    return Strides[0] == rest;
                }
            }

            /// <summary>An uninitialized tensor of this shape and memory order with <paramref name="dtype"/> on <paramref name="device"/>.</summary>
            public Tensor Empty(ScalarType dtype, Device device) =>
                Strides is null ? torch.empty(Shape, dtype: dtype, device: device) : torch.empty_strided(Shape, Strides, dtype: dtype, device: device);
        }

        /// <summary>Whether strides tile <c>[0, numel)</c> exactly once: sorted by stride, each equals the product of the faster sizes.</summary>
        internal static bool IsDense(long[] shape, long[] strides)
        {
            var dims = new long[shape.Length];
            int n = 0;
            for (int i = 0; i < shape.Length; i++) if (shape[i] != 1) dims[n++] = i;
            Array.Sort(dims, 0, n, Comparer<long>.Create((a, b) => strides[a].CompareTo(strides[b])));
            long expected = 1;
            for (int k = 0; k < n; k++)
            {
                if (strides[dims[k]] != expected) return false;
                expected *= shape[dims[k]];
            }
            return true;
        }

        /// <summary>
        /// How a kernel reads per-channel parameters of a vector of <paramref name="V"/> elements (see <c>chans_of</c>):
        /// mode 2 reads float32 parameters as float4, so it needs them 16-byte aligned.
        /// </summary>
        internal static int ChannelMode(long inner, long C, int V, Tensor?[] ps, int pt, int device)
        {
            if (inner % V == 0) return 1;
            if (inner != 1 || C % V != 0) return 0;
            foreach (var p in ps)
                if (pt == 0 && p is not null && !Aligned16(p, device, p.dtype, "parameter")) return 0;
            return 2;
        }

        /// <summary>
        /// Small parameters for a kernel, all in one dtype code (0 float32, 1 float16, 2 bfloat16): as they are when they
        /// share a supported dtype and lie contiguous on <paramref name="like"/>'s device (no conversion kernel per
        /// call), else as float32 copies.
        /// </summary>
        internal static (Tensor?[] ps, int code) Params(Tensor like, params Tensor?[] ps)
        {
            ScalarType? common = null;
            bool asIs = true;
            foreach (var p in ps)
            {
                if (p is null) continue;
                common ??= p.dtype;
                if (p.dtype != common || FusedKernels.DtypeCode(p.dtype) < 0 || !p.is_contiguous()
                    || p.device_type != like.device_type || p.device_index != like.device_index)
                    asIs = false;
            }
            if (common is null) return (ps, 0);
            if (asIs) return (ps, FusedKernels.DtypeCode(common.Value));
            return (ps.Select(p => p is null ? null : Param(p, like)).ToArray(), 0);
        }

        /// <summary>
        /// GFNet spectral multiply: <c>spectrum ⊙ complex(weight)</c>, broadcasting the filter over leading dimensions.
        /// </summary>
        /// <param name="spectrum">complex64 <c>[..., h, w, dim]</c> (e.g. <c>rfft2</c> output of <c>[B, H, W, dim]</c>).</param>
        /// <param name="complexWeight">float32 <c>[h, w, dim, 2]</c> (real, imaginary).</param>
        /// <param name="inPlace">Write into <paramref name="spectrum"/> (must be contiguous) instead of a new tensor.</param>
        /// <returns>The product, or null when the fused path does not apply.</returns>
        public static Tensor? SpectralMultiply(Tensor spectrum, Tensor complexWeight, bool inPlace = false)
        {
            ArgumentNullException.ThrowIfNull(spectrum);
            ArgumentNullException.ThrowIfNull(complexWeight);
            if (complexWeight.dim() != 4 || complexWeight.shape[3] != 2 || spectrum.dim() < 3
                || spectrum.shape[^3] != complexWeight.shape[0] || spectrum.shape[^2] != complexWeight.shape[1]
                || spectrum.shape[^1] != complexWeight.shape[2])
                throw new ArgumentException($"spectrum [..., h, w, dim] does not match weight [{string.Join(", ", complexWeight.shape)}]");
            if (spectrum.dtype != ScalarType.ComplexFloat32 || !IsAvailable(spectrum.device) || NeedsGrad(spectrum, complexWeight)) return null;
            if (!spectrum.is_contiguous() && spectrum.dim() == 4)
            {
                // rfft2 over (1, 2) returns a permuted layout; multiply in memory order with the filter permuted alike.
                var strides = spectrum.stride();
                var perm = Enumerable.Range(0, 4).OrderByDescending(i => strides[i]).ThenBy(i => i).Select(i => (long)i).ToArray();
                using var sp = spectrum.permute(perm);
                if (perm[0] == 0 && sp.is_contiguous())
                {
                    using var scope = torch.NewDisposeScope();
                    var wp = complexWeight.permute(perm[1] - 1, perm[2] - 1, perm[3] - 1, 3).contiguous();
                    var r = SpectralCore(sp, wp, inPlace);
                    if (r is null) return null;
                    if (inPlace) return spectrum;
                    var inv = new long[4];
                    for (int i = 0; i < 4; i++) inv[perm[i]] = i;
                    return r.permute(inv).MoveToOuterDisposeScope();
                }
            }
            if (inPlace && !spectrum.is_contiguous()) return null;
            return SpectralCore(spectrum, complexWeight, inPlace);
        }

        private static Tensor? SpectralCore(Tensor spectrum, Tensor complexWeight, bool inPlace)
        {
            int dev = DeviceIndex(spectrum);
            try
            {
                using var scope = torch.NewDisposeScope();
                var spec = FusedKernels.Spectral();
                var s = spectrum.contiguous();
                var w = complexWeight.to(ScalarType.Float32, spectrum.device).contiguous();
                var y = inPlace ? s : torch.empty_like(s);
                long n = s.numel();
                long period = w.numel() / 2;
                bool pairs = n % 2 == 0 && period % 2 == 0 && Aligned16(s, dev, s.dtype, "spectrum")
                             && Aligned16(w, dev, w.dtype, "weight") && Aligned16(y, dev, y.dtype, "out");
                var fn = KernelRuntime.Shared.GetFunction(spec, pairs ? "spectral_mul2" : "spectral_mul1", dev);
                long work = pairs ? n / 2 : n;
                using var args = new KernelArguments(dev);
                args.Add(s, s.dtype, "spectrum").Add(w, ScalarType.Float32, "weight").Add(y, y.dtype, "out")
                    .Add(work).Add(pairs ? period / 2 : period);
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return inPlace ? spectrum : y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// GFNet global filter with the fused spectral multiply between the cuFFT calls:
        /// <c>irfft2(rfft2(x, ortho) ⊙ W, ortho)</c> over the spatial axes of <c>[B, H, W, dim]</c> or <c>[B, N, dim]</c>
        /// (square N), float32 (float16/bfloat16 input is computed in float32 and returned as float32, as the module does).
        /// </summary>
        /// <param name="x">Input.</param>
        /// <param name="complexWeight">float32 <c>[H, W/2+1, dim, 2]</c>.</param>
        /// <returns>The filtered tensor (shape of <paramref name="x"/>), or null when the fused path does not apply.</returns>
        public static Tensor? GlobalFilter(Tensor x, Tensor complexWeight)
        {
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(complexWeight);
            if (x.dtype == ScalarType.Float64 || FusedKernels.DtypeCode(x.dtype) < 0 || !IsAvailable(x.device) || NeedsGrad(x, complexWeight)) return null;
            using var scope = torch.NewDisposeScope();
            var (grid, a, b) = Mix.Runtime.GlobalFilter.ToGrid(x, complexWeight.shape[2]);
            var spectrum = torch.fft.rfft2(grid.to_type(ScalarType.Float32), dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
            if (spectrum.shape[1] != complexWeight.shape[0] || spectrum.shape[2] != complexWeight.shape[1])
                throw new ArgumentException($"spatial size {a}x{b} does not match the filter", nameof(x));
            var filtered = SpectralMultiply(spectrum, complexWeight, inPlace: true)
                           ?? SpectralMultiply(spectrum, complexWeight, inPlace: false);
            if (filtered is null) return null;
            var y = torch.fft.irfft2(filtered, s: new[] { a, b }, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
            return y.reshape(x.shape).MoveToOuterDisposeScope();
        }
    }
}
