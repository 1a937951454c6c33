using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Scans
{
    /// <summary>
    /// Depthwise causal convolution with carried state, in the convention of Dao's <c>causal_conv1d_fn</c> /
    /// <c>causal_conv1d_update</c> (the convolution in Mamba's mixers):
    /// <code>
    ///   y[b, d, t] = act(bias[d] + Σ_{j=0}^{W−1} weight[d, j] · x[b, d, t − (W − 1) + j])
    /// </code>
    /// (a cross-correlation, as <c>torch.nn.Conv1d</c>: <c>weight[d, W − 1]</c> multiplies <c>x_t</c>). Inputs before
    /// <c>t = 0</c> come from the state <c>[b, d, W − 1]</c> (the previous W − 1 inputs, oldest first), zeros if none;
    /// the state after the sequence is its last W − 1 inputs. <c>act</c> is none or <c>silu</c> (alias <c>swish</c>).
    /// <c>x: [b, d, L]</c>; <c>weight: [d, W]</c> (or the Conv1d layout <c>[d, 1, W]</c>); <c>bias: [d]</c>.
    /// The result keeps <c>x</c>'s dtype. On CUDA without autograd <see cref="Forward"/> takes a fused kernel.
    /// </summary>
    public static class CausalConv1d
    {
        /// <summary>The convolution (fused where it applies, else <see cref="Reference"/>) and the state after it.</summary>
        /// <param name="x">Input <c>[b, d, L]</c>.</param>
        /// <param name="weight">Taps <c>[d, W]</c> or <c>[d, 1, W]</c>.</param>
        /// <param name="bias">Optional bias <c>[d]</c>.</param>
        /// <param name="activation">null/"none", "silu" or "swish".</param>
        /// <param name="initialState">Optional previous inputs <c>[b, d, W − 1]</c>.</param>
        public static (Tensor y, Tensor finalState) Forward(Tensor x, Tensor weight, Tensor? bias = null, string? activation = null,
            Tensor? initialState = null)
        {
            var w = Taps(weight);
            bool silu = Silu(activation);
            Check(x, w, bias, initialState);
            if (Fused.CudaScanKernels.Applies(x, w, bias, initialState)
                && Fused.CudaScanKernels.TryCausalConv(x, w, bias, silu, initialState) is { } fused)
                return fused;
            return Reference(x, w, bias, activation, initialState);
        }

        /// <summary>The convolution as <c>conv1d</c> over the state followed by the input (differentiable).</summary>
        /// <param name="x">Input <c>[b, d, L]</c>.</param>
        /// <param name="weight">Taps <c>[d, W]</c> or <c>[d, 1, W]</c>.</param>
        /// <param name="bias">Optional bias <c>[d]</c>.</param>
        /// <param name="activation">null/"none", "silu" or "swish".</param>
        /// <param name="initialState">Optional previous inputs <c>[b, d, W − 1]</c>.</param>
        public static (Tensor y, Tensor finalState) Reference(Tensor x, Tensor weight, Tensor? bias = null, string? activation = null,
            Tensor? initialState = null)
        {
            var w = Taps(weight);
            bool silu = Silu(activation);
            Check(x, w, bias, initialState);
            using var scope = torch.NewDisposeScope();
            long d = x.shape[1], W = w.shape[1];
            var padded = torch.cat(new[] { Before(x, initialState, W - 1), x }, -1);
            var y = torch.nn.functional.conv1d(padded, w.to_type(x.dtype).unsqueeze(1), bias?.to_type(x.dtype), groups: d);
            if (silu) y = torch.nn.functional.silu(y);
            var state = padded.narrow(-1, padded.shape[2] - (W - 1), W - 1).contiguous();
            return (y.MoveToOuterDisposeScope(), state.MoveToOuterDisposeScope());
        }

        /// <summary>
        /// One decoding step: <c>y_t</c> <c>[b, d]</c> and the new state <c>[b, d, W − 1]</c> (the input state is not modified).
        /// Fused on CUDA without autograd.
        /// </summary>
        /// <param name="state">The previous W − 1 inputs <c>[b, d, W − 1]</c>.</param>
        /// <param name="x">Input at this step <c>[b, d]</c>.</param>
        /// <param name="weight">Taps <c>[d, W]</c> or <c>[d, 1, W]</c>.</param>
        /// <param name="bias">Optional bias <c>[d]</c>.</param>
        /// <param name="activation">null/"none", "silu" or "swish".</param>
        public static (Tensor y, Tensor newState) Step(Tensor state, Tensor x, Tensor weight, Tensor? bias = null, string? activation = null)
        {
            var w = Taps(weight);
            bool silu = Silu(activation);
            ScanMath.RequireRank(x, nameof(x), "[b, d]", 2);
            long W = w.shape[1];
            ScanMath.Require(state, nameof(state), "[b, d, W − 1]", x.shape[0], x.shape[1], W - 1);
            if (Fused.CudaScanKernels.Applies(x, state, w, bias)
                && Fused.CudaScanKernels.TryCausalConv(x.unsqueeze(-1), w, bias, silu, state) is { } fused)
                using (fused.y) return (fused.y.squeeze(-1), fused.finalState);
            using var scope = torch.NewDisposeScope();
            var window = torch.cat(new[] { state.to_type(x.dtype), x.unsqueeze(-1) }, -1);      // [b, d, W]
            var y = (window * w.to_type(x.dtype)).sum(-1);
            if (bias is not null) y = y + bias.to_type(x.dtype);
            if (silu) y = torch.nn.functional.silu(y);
            var next = window.narrow(-1, 1, W - 1).contiguous();
            return (y.MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
        }

        /// <summary>The last <paramref name="count"/> inputs of the state followed by <paramref name="x"/>, zero-padded on the left.</summary>
        internal static Tensor LastInputs(Tensor x, Tensor? state, long count)
        {
            using var scope = torch.NewDisposeScope();
            var all = state is null ? x : torch.cat(new[] { state.to_type(x.dtype), x }, -1);
            long have = all.shape[2];
            var r = have >= count
                ? all.narrow(-1, have - count, count).contiguous()
                : torch.nn.functional.pad(all, new[] { count - have, 0L });
            return r.MoveToOuterDisposeScope();
        }

        private static Tensor Before(Tensor x, Tensor? state, long count) =>
            state is not null ? state.to_type(x.dtype) : torch.zeros(new[] { x.shape[0], x.shape[1], count }, dtype: x.dtype, device: x.device);

        /// <summary><c>[d, W]</c> taps from <c>[d, W]</c> or Conv1d's <c>[d, 1, W]</c>.</summary>
        internal static Tensor Taps(Tensor weight)
        {
            if (weight.dim() == 3 && weight.shape[1] == 1) return weight.squeeze(1);
            if (weight.dim() != 2) throw new ArgumentException($"weight must be [d, W] or [d, 1, W], got {ScanMath.Dims(weight)}", nameof(weight));
            return weight;
        }

        internal static bool Silu(string? activation) => activation switch
        {
            null or "" or "none" => false,
            "silu" or "swish" => true,
            _ => throw new ArgumentException($"activation must be none, \"silu\" or \"swish\"; got \"{activation}\"", nameof(activation)),
        };

        internal static void Check(Tensor x, Tensor w, Tensor? bias, Tensor? initialState)
        {
            ScanMath.RequireRank(x, nameof(x), "[b, d, L]", 3);
            long d = x.shape[1];
            ScanMath.Require(w, "weight", "[d, W]", d, -1);
            if (w.shape[1] < 1) throw new ArgumentException("weight needs at least one tap", "weight");
            ScanMath.Require(bias, nameof(bias), "[d]", d);
            ScanMath.Require(initialState, nameof(initialState), "[b, d, W − 1]", x.shape[0], d, w.shape[1] - 1);
        }
    }
}
