using System;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    public static partial class FusedOps
    {
        /// <summary>
        /// <c>act(x + bias)</c> in one pass; <paramref name="bias"/> is per channel along <paramref name="channelDim"/>
        /// (last by default, as after a Linear; 1 for NCHW). Any dense layout of <paramref name="x"/> (NCHW or
        /// channels-last) is read in place and kept by the result; other layouts are copied first.
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
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var layout = new Layout(x);
                var xd = layout.Dense ? x : x.contiguous();
                if (!layout.Dense) layout = new Layout(xd);
                var (C, inner) = layout.Channel(channelDim);
                if (bias is not null && bias.numel() != C) throw new ArgumentException($"bias must have {C} elements", nameof(bias));
                if (C > int.MaxValue) return null;
                var y = layout.Empty(xd.dtype, xd.device);
                var (ps, pt) = Params(x, bias, starScale, starBias);
                long n = xd.numel();
                int V = 16 / (int)xd.ElementSize;
                bool vec = n % V == 0 && Aligned16(xd, dev, xd.dtype, "x") && Aligned16(y, dev, y.dtype, "y");
                var spec = FusedKernels.Epilogue(dt, activation);
                var fn = KernelRuntime.Shared.GetFunction(spec, vec ? "bias_act_vec" : "bias_act_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.AddDense(xd, xd.dtype, "x").AddOptional(ps[0], ps[0]?.dtype ?? x.dtype, "bias").AddDense(y, y.dtype, "y")
                    .Add(work).Add(inner).Add((int)C).Add(ChannelMode(inner, C, vec ? V : 1, ps, pt, dev))
                    .AddOptional(ps[1], ps[1]?.dtype ?? x.dtype, "starScale").AddOptional(ps[2], ps[2]?.dtype ?? x.dtype, "starBias")
                    .Add(pt);
                // the vector kernel takes two 16-byte vectors per thread (both loads in flight before the activation)
                fn.Launch(new Dim3(Blocks(vec ? (work + 1) / 2 : work)), new Dim3(Threads), 0, args);
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
            ArgumentNullException.ThrowIfNull(layerScale);
            return ScaleResidual(residual, x, layerScale, null, null, channelDim);
        }

        /// <summary>
        /// The residual epilogue of a sub-block, <c>resScale ⊙ residual + layerScale ⊙ (x + bias)</c>, in one pass
        /// (every vector per channel along <paramref name="channelDim"/>; each may be absent). <paramref name="bias"/>
        /// is the bias of the branch's last projection, so that projection can run without it. <paramref name="residual"/>
        /// and <paramref name="x"/> must have the same dense layout (both NCHW, or both channels-last); the result has it too.
        /// </summary>
        /// <param name="residual">Residual input.</param>
        /// <param name="x">Branch output, same shape and dtype as <paramref name="residual"/>.</param>
        /// <param name="layerScale">Optional per-channel scale of the branch <c>[C]</c>.</param>
        /// <param name="resScale">Optional per-channel scale of the residual <c>[C]</c>.</param>
        /// <param name="bias">Optional per-channel bias added to the branch before its scale <c>[C]</c>.</param>
        /// <param name="channelDim">Channel dimension (last by default; 1 for NCHW).</param>
        /// <returns>A new tensor, or null when the fused path does not apply (including differing layouts).</returns>
        public static Tensor? ScaleResidual(Tensor residual, Tensor x, Tensor? layerScale, Tensor? resScale = null, Tensor? bias = null,
            int channelDim = -1)
        {
            ArgumentNullException.ThrowIfNull(residual);
            ArgumentNullException.ThrowIfNull(x);
            var layout = new Layout(x);
            var residualLayout = new Layout(residual);
            if (!residualLayout.Shape.AsSpan().SequenceEqual(layout.Shape)) throw new ArgumentException("residual and x must have the same shape", nameof(residual));
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || residual.dtype != x.dtype || !IsAvailable(x.device) || NeedsGrad(residual, x, layerScale, resScale, bias)) return null;
            if (!layout.Dense || !layout.Matches(residualLayout)) return null;
            var (C, inner) = layout.Channel(channelDim);
            foreach (var (p, name) in new[] { (layerScale, nameof(layerScale)), (resScale, nameof(resScale)), (bias, nameof(bias)) })
                if (p is not null && p.numel() != C) throw new ArgumentException($"{name} must have {C} elements", name);
            if (C > int.MaxValue) return null;
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var y = layout.Empty(x.dtype, x.device);
                var (ps, pt) = Params(x, layerScale, resScale, bias);
                long n = x.numel();
                int V = 16 / (int)x.ElementSize;
                bool vec = n % V == 0 && Aligned16(x, dev, x.dtype, "x") && Aligned16(residual, dev, residual.dtype, "residual")
                           && Aligned16(y, dev, y.dtype, "y");
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Epilogue(dt, FusedActivation.None), vec ? "scale_res_vec" : "scale_res_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.AddDense(residual, residual.dtype, "residual").AddDense(x, x.dtype, "x")
                    .AddOptional(ps[0], ps[0]?.dtype ?? x.dtype, "layerScale").AddOptional(ps[1], ps[1]?.dtype ?? x.dtype, "resScale")
                    .AddOptional(ps[2], ps[2]?.dtype ?? x.dtype, "bias")
                    .AddDense(y, y.dtype, "y").Add(work).Add(inner).Add((int)C).Add(ChannelMode(inner, C, vec ? V : 1, ps, pt, dev)).Add(pt);
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }
    }
}
