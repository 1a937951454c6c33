namespace Mix.Runtime.Fused
{
    /// <summary>Which forward a scan primitive takes on CUDA without autograd.</summary>
    public enum ScanForward
    {
        /// <summary>The TorchSharp chunked reference (<c>ChunkedScan</c>).</summary>
        Reference,

        /// <summary>The fused recurrent kernel (<c>gated_scan</c>): one pass over the steps, throughput flat in L.</summary>
        Recurrent,

        /// <summary>The fused chunked kernels: chunk-local products and states, a state pass over chunks, the output.</summary>
        Chunked,
    }

    /// <summary>
    /// The choice between the fused scan kernels and the reference, by sequence length. Pure (no device), so that the
    /// decision is unit-tested on the CPU; <see cref="Scans.SsdScan.Scan"/> and <see cref="Scans.GlaScan.Scan"/> ask it
    /// after <see cref="CudaScanKernels.Applies"/>.
    /// </summary>
    public static class ScanDispatch
    {
        /// <summary>
        /// Longest SSD input the recurrent kernel takes when no chunked kernel does (longer goes to the reference).
        /// From run 13a (H100, bf16 and fp32, Mamba-2-130m's 24 heads × 64, d_state 128; docs/benchmarks.md, issue 15):
        /// batch 1, recurrent 2.15 / 4.78 / 9.45 / 18.8 ms at L = 2K / 4K / 8K / 16K against the reference's
        /// 1.48 / 2.18 / 3.89 / 6.75 ms; the lines through those points (recurrent ≈ 1.1 µs per step, reference
        /// ≈ 0.74 ms + 0.36 µs per step) cross near L = 1000. At batch 4 the reference is ahead from L = 2K as well
        /// (2.45 against 2.59 ms). Lengths below 2K were not measured: the crossover is the fit's, rounded to 1024.
        /// A decode step (L = 1) is far below it, where the fused step is 2–4× faster than the reference (93 against 225 µs).
        /// </summary>
        public const long SsdRecurrentMaxLength = 1024;

        /// <summary>
        /// Shortest input the chunked kernels take; shorter inputs (decode steps, short prompts) go to the recurrent
        /// kernel, which is one launch against the chunked path's three and has no chunk padding to waste. Not yet
        /// measured: one chunk of the chunked kernels (64 steps), so that every chunked launch has at least a full chunk.
        /// </summary>
        public const long ChunkedMinLength = 64;

        /// <summary>The SSD forward for a sequence of <paramref name="length"/> steps.</summary>
        /// <param name="length">Steps in the call (1 for a decode step).</param>
        /// <param name="chunkedFits">Whether the chunked kernels take this call's shapes and dtype.</param>
        public static ScanForward Ssd(long length, bool chunkedFits)
        {
            if (chunkedFits && length >= ChunkedMinLength) return ScanForward.Chunked;
            return length <= SsdRecurrentMaxLength ? ScanForward.Recurrent : ScanForward.Reference;
        }

        /// <summary>
        /// The GLA forward: the recurrent kernel is 6× faster than the reference at every measured length (run 13a:
        /// 1.15 against 7.0 ms at L = 2K, 10.3 against 52.7 ms at 16K, batch 1 bf16), so it stays the fallback.
        /// </summary>
        /// <param name="length">Steps in the call (1 for a decode step).</param>
        /// <param name="chunkedFits">Whether the chunked kernels take this call's shapes and dtype.</param>
        public static ScanForward Gla(long length, bool chunkedFits) =>
            chunkedFits && length >= ChunkedMinLength ? ScanForward.Chunked : ScanForward.Recurrent;
    }
}
