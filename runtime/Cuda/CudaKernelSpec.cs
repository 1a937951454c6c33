using System;
using System.Collections.Generic;
using System.Linq;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// One translation unit to compile: CUDA C++ source (kernels declared <c>extern "C"</c>), its NVRTC options (macro
    /// definitions and the like; the architecture is added by the runtime) and a display name.
    /// </summary>
    public sealed class CudaKernelSpec : IEquatable<CudaKernelSpec>
    {
        /// <summary>Display name (also the NVRTC program name).</summary>
        public string Name { get; }

        /// <summary>CUDA C++ source.</summary>
        public string Source { get; }

        /// <summary>NVRTC options other than the architecture.</summary>
        public IReadOnlyList<string> Options { get; }

        private readonly string _identity;
        private readonly int _hash;

        /// <summary>Creates a spec.</summary>
        /// <param name="name">Display name.</param>
        /// <param name="source">CUDA C++ source.</param>
        /// <param name="options">NVRTC options (e.g. <c>-DMIX_T=2</c>).</param>
        public CudaKernelSpec(string name, string source, params string[] options)
        {
            Name = name ?? throw new ArgumentNullException(nameof(name));
            Source = source ?? throw new ArgumentNullException(nameof(source));
            Options = options.ToArray();
            _identity = name + "\u0001" + string.Join("\u0001", Options) + "\u0001" + source;
            // Hashed once: kernel lookups happen at every launch, and a source is tens of kilobytes.
            _hash = _identity.GetHashCode(StringComparison.Ordinal);
        }

        /// <inheritdoc />
        public bool Equals(CudaKernelSpec? other) =>
            ReferenceEquals(this, other) || (other is not null && other._hash == _hash && other._identity == _identity);

        /// <inheritdoc />
        public override bool Equals(object? obj) => Equals(obj as CudaKernelSpec);

        /// <inheritdoc />
        public override int GetHashCode() => _hash;

        /// <inheritdoc />
        public override string ToString() => Options.Count == 0 ? Name : $"{Name} [{string.Join(" ", Options)}]";
    }
}
