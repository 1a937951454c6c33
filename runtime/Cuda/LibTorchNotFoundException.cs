using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>The libtorch backend was chosen but no installed libtorch (CUDA PyTorch) could be found.</summary>
    public sealed class LibTorchNotFoundException : Exception
    {
        /// <summary>Creates the exception.</summary>
        /// <param name="message">What was tried and how to fix it.</param>
        public LibTorchNotFoundException(string message) : base(message) { }
    }
}
