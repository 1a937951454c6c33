using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// A pluggable implementation of the Mamba selective scan (for example a fused CUDA kernel).
    /// Install one with <see cref="SelectiveScan.Kernel"/>; <see cref="SelectiveScan.Scan"/> and
    /// <see cref="SelectiveScan.Step"/> call it whenever <see cref="Supports"/> returns true for the inputs and
    /// fall back to the TorchSharp reference implementations otherwise.
    /// The argument conventions are exactly those of <see cref="SelectiveScan.Scan"/> and <see cref="SelectiveScan.Step"/>.
    /// </summary>
    public interface ISelectiveScanKernel
    {
        /// <summary>Whether this kernel can run on <paramref name="u"/>'s device and dtype (and whether autograd is needed).</summary>
        /// <param name="u">The scan input, <c>[batch, d_inner, L]</c> (or <c>[batch, d_inner]</c> for a step).</param>
        /// <param name="requiresGrad">True when a backward pass through the scan will be requested.</param>
        bool Supports(Tensor u, bool requiresGrad);

        /// <summary>Full-sequence scan; same contract as <see cref="SelectiveScan.Scan"/>.</summary>
        (Tensor y, Tensor lastState) Scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z,
            Tensor? deltaBias, bool deltaSoftplus, Tensor? initialState);

        /// <summary>Single decoding step; same contract as <see cref="SelectiveScan.Step"/>.</summary>
        (Tensor y, Tensor newState) Step(Tensor state, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D,
            Tensor? z, Tensor? deltaBias, bool deltaSoftplus);
    }
}
