using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Scans
{
    /// <summary>
    /// Long convolution by FFT (Hyena's / Monarch Mixer's <c>fftconv</c>, without the <c>D</c> skip, which the caller adds):
    /// <code>
    ///   causal:         y[.., d, t] = Σ_{s=0}^{min(t, Lk−1)}     k[d, s] · u[.., d, t − s]          k: [d, Lk], Lk ≤ L
    ///   bidirectional:  y[.., d, t] = Σ_{j=−m}^{m} k[d, m + j] · u[.., d, t − j]                    k: [d, 2m + 1]
    /// </code>
    /// <c>u: [b, d, L]</c> (channels before time, as Hyena); zero padding outside <c>0..L−1</c>, so nothing wraps around.
    /// The bidirectional kernel is centred (<c>k[d, m]</c> multiplies <c>u_t</c>); Monarch Mixer's forward and reverse
    /// filters <c>k_f, k_r</c> of length L are the centred kernel <c>[flip(k_r[1:]), k_f[0] + k_r[0], k_f[1:]]</c>.
    /// Computed with real FFTs of length <c>L + Lk − 1</c> in float32 (float64 for float64 input); <c>y</c> keeps
    /// <c>u</c>'s dtype. On CUDA the FFTs run in cuFFT through libtorch; <see cref="Scan"/> takes the direct fused kernel
    /// of <see cref="CausalConv1d"/> instead when a causal filter is short (≤ <see cref="DirectMaxLength"/>).
    /// </summary>
    public static class FftConv
    {
        /// <summary>Longest causal filter the direct (non-FFT) CUDA kernel takes.</summary>
        public const int DirectMaxLength = 64;

        /// <summary>The convolution, fused where it applies, else <see cref="Reference"/>.</summary>
        /// <param name="u">Input <c>[b, d, L]</c>.</param>
        /// <param name="k">Filter <c>[d, Lk]</c> (or <c>[b, d, Lk]</c>, one filter per sample).</param>
        /// <param name="causal">Causal (<c>Lk ≤ L</c>) or centred bidirectional (odd <c>Lk ≤ 2L − 1</c>).</param>
        public static Tensor Scan(Tensor u, Tensor k, bool causal = true)
        {
            Check(u, k, causal);
            if (causal && k.dim() == 2 && k.shape[1] <= DirectMaxLength
                && Fused.CudaScanKernels.Applies(u, k)
                && Fused.CudaScanKernels.TryCausalConv(u, k.flip(-1), null, false, null) is { } fused)
            {
                fused.finalState.Dispose();
                return fused.y;
            }
            return Reference(u, k, causal);
        }

        /// <summary>The FFT convolution (differentiable). Arguments as in <see cref="Scan"/>.</summary>
        /// <param name="u">Input <c>[b, d, L]</c>.</param>
        /// <param name="k">Filter <c>[d, Lk]</c> or <c>[b, d, Lk]</c>.</param>
        /// <param name="causal">Causal or centred bidirectional.</param>
        public static Tensor Reference(Tensor u, Tensor k, bool causal = true)
        {
            Check(u, k, causal);
            using var scope = torch.NewDisposeScope();
            var cdt = ScanMath.ComputeType(u);
            long L = u.shape[2], Lk = k.shape[^1], n = L + Lk - 1;
            var spectrum = torch.fft.rfft(u.to_type(cdt), n, -1) * torch.fft.rfft(k.to_type(cdt), n, -1);
            var full = torch.fft.irfft(spectrum, n, -1);
            var y = full.narrow(-1, causal ? 0 : (Lk - 1) / 2, L);
            return y.to_type(u.dtype).MoveToOuterDisposeScope();
        }

        /// <summary>
        /// One causal decoding step: <c>y_t</c> <c>[b, d]</c> and the new history <c>[b, d, Lk − 1]</c> (the last Lk − 1
        /// inputs, oldest first). Start from <see cref="History"/> of the prompt (zeros before it).
        /// </summary>
        /// <param name="history">The previous <c>Lk − 1</c> inputs <c>[b, d, Lk − 1]</c>.</param>
        /// <param name="u">Input at this step <c>[b, d]</c>.</param>
        /// <param name="k">Filter <c>[d, Lk]</c>.</param>
        public static (Tensor y, Tensor newHistory) Step(Tensor history, Tensor u, Tensor k) =>
            CausalConv1d.Step(history, u, k.flip(-1));

        /// <summary>The last <c>Lk − 1</c> inputs of <paramref name="u"/> <c>[b, d, L]</c>, zero-padded on the left.</summary>
        /// <param name="u">Input <c>[b, d, L]</c>.</param>
        /// <param name="kernelLength">Filter length Lk.</param>
        public static Tensor History(Tensor u, long kernelLength) => CausalConv1d.LastInputs(u, null, kernelLength - 1);

        internal static void Check(Tensor u, Tensor k, bool causal)
        {
            ScanMath.RequireRank(u, nameof(u), "[b, d, L]", 3);
            long b = u.shape[0], d = u.shape[1], L = u.shape[2];
            if (k.dim() == 2) ScanMath.Require(k, nameof(k), "[d, Lk]", d, -1);
            else if (k.dim() == 3) ScanMath.Require(k, nameof(k), "[b, d, Lk]", b, d, -1);
            else throw new ArgumentException($"k must be [d, Lk] or [b, d, Lk], got {ScanMath.Dims(k)}", nameof(k));
            long Lk = k.shape[^1];
            if (Lk < 1) throw new ArgumentException("k must have at least one tap", nameof(k));
            if (causal && Lk > L) throw new ArgumentException($"a causal filter of {Lk} taps is longer than the {L} steps of u", nameof(k));
            if (!causal && (Lk % 2 == 0 || Lk > 2 * L - 1))
                throw new ArgumentException($"a bidirectional filter must have an odd length ≤ 2L − 1 = {2 * L - 1}; got {Lk}", nameof(k));
        }
    }
}
