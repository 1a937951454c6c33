using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// A fused CUDA kernel cannot run here: no CUDA driver, no NVRTC, a failed compile, or inputs the kernel does not
    /// support. Callers catch it and use the reference TorchSharp path.
    /// </summary>
    public sealed class CudaKernelUnavailableException : Exception
    {
        /// <summary>Creates the exception.</summary>
        /// <param name="message">Why the kernel is unavailable.</param>
        public CudaKernelUnavailableException(string message) : base(message) { }

        /// <summary>Creates the exception with an inner cause.</summary>
        /// <param name="message">Why the kernel is unavailable.</param>
        /// <param name="inner">The underlying error.</param>
        public CudaKernelUnavailableException(string message, Exception inner) : base(message, inner) { }
    }
}
