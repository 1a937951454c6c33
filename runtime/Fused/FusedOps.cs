using System;
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
    public static class FusedOps
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

        private static unsafe bool Aligned16(Tensor t, int device, ScalarType dtype, string what) =>
            ((long)TensorPointers.Get(t, dtype, device, what) & 15) == 0;

        private static (long C, long inner) ChannelLayout(Tensor x, int channelDim)
        {
            int cd = channelDim < 0 ? (int)x.dim() + channelDim : channelDim;
            if (cd < 0 || cd >= x.dim()) throw new ArgumentOutOfRangeException(nameof(channelDim), channelDim, "channel dimension out of range");
            long inner = 1;
            for (int i = cd + 1; i < x.dim(); i++) inner *= x.shape[i];
            return (x.shape[cd], inner);
        }

        /// <summary>
        /// <c>act(x + bias)</c> in one pass; <paramref name="bias"/> is per channel along <paramref name="channelDim"/>
        /// (last by default, as after a Linear). Parameters are used in float32.
        /// </summary>
        /// <param name="x">Input (float32/float16/bfloat16, CUDA).</param>
        /// <param name="bias">Optional bias <c>[C]</c>.</param>
        /// <param name="activation">Activation.</param>
        /// <param name="starScale">StarReLU scale (one element); required for <see cref="FusedActivation.StarReLU"/>.</param>
        /// <param name="starBias">StarReLU bias (one element); required for <see cref="FusedActivation.StarReLU"/>.</param>
        /// <param name="channelDim">Dimension of <c>x</c> that <paramref name="bias"/> runs along.</param>
        /// <returns>A new tensor like <paramref name="x"/>, or null when the fused path does not apply.</returns>
        public static Tensor? BiasActivation(Tensor x, Tensor? bias, FusedActivation activation, Tensor? starScale = null,
            Tensor? starBias = null, int channelDim = -1)
        {
            ArgumentNullException.ThrowIfNull(x);
            if (activation == FusedActivation.StarReLU && (starScale is null || starBias is null))
                throw new ArgumentException("StarReLU needs starScale and starBias", nameof(starScale));
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || !IsAvailable(x.device) || NeedsGrad(x, bias, starScale, starBias)) return null;
            var (C, inner) = ChannelLayout(x, channelDim);
            if (bias is not null && (bias.numel() != C)) throw new ArgumentException($"bias must have {C} elements", nameof(bias));
            if (C > int.MaxValue) return null;
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Epilogue(dt, activation), "bias_act_vec", dev);
                var xc = x.contiguous();
                var y = torch.empty_like(xc);
                var b = bias is null ? null : Param(bias, x);
                var s = starScale is null ? null : Param(starScale, x);
                var sb = starBias is null ? null : Param(starBias, x);
                long n = xc.numel();
                int V = 16 / (int)xc.ElementSize;
                bool vec = n % V == 0 && (inner == 1 || inner % V == 0) && Aligned16(xc, dev, xc.dtype, "x") && Aligned16(y, dev, y.dtype, "y");
                if (!vec) fn = KernelRuntime.Shared.GetFunction(FusedKernels.Epilogue(dt, activation), "bias_act_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.Add(xc, xc.dtype, "x").AddOptional(b, ScalarType.Float32, "bias").Add(y, y.dtype, "y")
                    .Add(work).Add(inner).Add((int)C)
                    .AddOptional(s, ScalarType.Float32, "starScale").AddOptional(sb, ScalarType.Float32, "starBias");
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary><c>residual + layerScale ⊙ x</c> in one pass (layer scale per channel along <paramref name="channelDim"/>).</summary>
        /// <param name="residual">Residual input, same shape and dtype as <paramref name="x"/>.</param>
        /// <param name="x">Branch output.</param>
        /// <param name="layerScale">Per-channel scale <c>[C]</c>.</param>
        /// <param name="channelDim">Channel dimension (last by default; 1 for NCHW).</param>
        /// <returns>A new tensor, or null when the fused path does not apply.</returns>
        public static Tensor? LayerScaleResidual(Tensor residual, Tensor x, Tensor layerScale, int channelDim = -1)
        {
            ArgumentNullException.ThrowIfNull(residual);
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(layerScale);
            if (!residual.shape.SequenceEqual(x.shape)) throw new ArgumentException("residual and x must have the same shape", nameof(residual));
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || residual.dtype != x.dtype || !IsAvailable(x.device) || NeedsGrad(residual, x, layerScale)) return null;
            var (C, inner) = ChannelLayout(x, channelDim);
            if (layerScale.numel() != C) throw new ArgumentException($"layerScale must have {C} elements", nameof(layerScale));
            if (C > int.MaxValue) return null;
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var spec = FusedKernels.Epilogue(dt, FusedActivation.None);
                var xc = x.contiguous();
                var rc = residual.contiguous();
                var y = torch.empty_like(xc);
                var ls = Param(layerScale, x);
                long n = xc.numel();
                int V = 16 / (int)xc.ElementSize;
                bool vec = n % V == 0 && (inner == 1 || inner % V == 0) && Aligned16(xc, dev, xc.dtype, "x")
                           && Aligned16(rc, dev, rc.dtype, "residual") && Aligned16(y, dev, y.dtype, "y");
                var fn = KernelRuntime.Shared.GetFunction(spec, vec ? "ls_res_vec" : "ls_res_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.Add(rc, rc.dtype, "residual").Add(xc, xc.dtype, "x").Add(ls, ScalarType.Float32, "layerScale")
                    .Add(y, y.dtype, "y").Add(work).Add(inner).Add((int)C);
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// MetaFormer pooling sub-block <c>x + layerScale ⊙ (avgpool3x3(n) − n)</c> with <c>n = GroupNorm(1 group)(x)</c>
        /// (avg pool stride 1, pad 1, count_include_pad=false), on <c>[B, C, H, W]</c>: a statistics pass and one fused
        /// pass. The norm's shift and bias cancel in <c>pool(n) − n</c>, so <paramref name="gnBias"/> does not enter.
        /// </summary>
        /// <param name="x">Input <c>[B, C, H, W]</c>.</param>
        /// <param name="gnWeight">GroupNorm weight <c>[C]</c>.</param>
        /// <param name="gnBias">GroupNorm bias <c>[C]</c> (checked for shape; it cancels).</param>
        /// <param name="eps">GroupNorm epsilon.</param>
        /// <param name="layerScale">Layer scale <c>[C]</c>.</param>
        /// <returns>A new tensor, or null when the fused path does not apply.</returns>
        public static Tensor? PoolingSubBlock(Tensor x, Tensor gnWeight, Tensor gnBias, double eps, Tensor layerScale)
        {
            ArgumentNullException.ThrowIfNull(x);
            if (x.dim() != 4) throw new ArgumentException($"x must be [B, C, H, W], got [{string.Join(", ", x.shape)}]", nameof(x));
            long B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
            if (gnWeight.numel() != C || gnBias.numel() != C || layerScale.numel() != C)
                throw new ArgumentException($"gnWeight, gnBias and layerScale must have {C} elements");
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || !IsAvailable(x.device) || NeedsGrad(x, gnWeight, gnBias, layerScale)) return null;
            long M = C * H * W;
            long tilesX = (W + 31) / 32;
            int rowsPerThread = (int)((H + 7) / 8);
            if (B == 0 || M == 0) return x.clone();
            if (B > 65535 || tilesX > 65535 || B * C > int.MaxValue || H * W > int.MaxValue) return null;
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var spec = FusedKernels.Pooling(dt);
                var fPartial = KernelRuntime.Shared.GetFunction(spec, "gn_partial", dev);
                var fFinal = KernelRuntime.Shared.GetFunction(spec, "gn_finalize", dev);
                var fApply = KernelRuntime.Shared.GetFunction(spec, "pool_apply", dev);
                var xc = x.contiguous();
                int P = (int)Math.Clamp((M + 8191) / 8192, 1, 1024);
                var partial = torch.empty(B * P * 2, dtype: ScalarType.Float64, device: x.device);
                var rstd = torch.empty(B, dtype: ScalarType.Float32, device: x.device);
                var y = torch.empty_like(xc);
                var w = Param(gnWeight, x);
                var ls = Param(layerScale, x);
                using (var a = new KernelArguments(dev))
                {
                    a.Add(xc, xc.dtype, "x").Add(partial, ScalarType.Float64, "partial").Add(M).Add(P);
                    fPartial.Launch(new Dim3((uint)P, (uint)B), new Dim3(Threads), 0, a);
                }
                using (var a = new KernelArguments(dev))
                {
                    a.Add(partial, ScalarType.Float64, "partial").Add(rstd, ScalarType.Float32, "rstd").Add(M).Add(P).Add((float)eps);
                    fFinal.Launch(new Dim3((uint)B), new Dim3(Threads), 0, a);
                }
                using (var a = new KernelArguments(dev))
                {
                    a.Add(xc, xc.dtype, "x").Add(rstd, ScalarType.Float32, "rstd").Add(w, ScalarType.Float32, "gnWeight")
                        .Add(ls, ScalarType.Float32, "layerScale").Add(y, y.dtype, "y")
                        .Add((int)C).Add((int)H).Add((int)W).Add(rowsPerThread);
                    fApply.Launch(new Dim3((uint)(B * C), (uint)tilesX), new Dim3(32, 8), 0, a);
                }
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
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
