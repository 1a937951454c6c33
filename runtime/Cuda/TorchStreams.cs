using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// libtorch's current CUDA stream, which TorchSharp has no API for. TorchSharp's kernels go to the calling thread's
    /// current stream, the legacy null stream unless changed, and the null stream cannot be recorded into a graph; so a
    /// capture points libtorch at a stream of its own through c10's exported C++ functions
    /// (<c>c10::cuda::getStreamFromExternal</c>, <c>setCurrentCUDAStream</c>, <c>getCurrentCUDAStream</c> in
    /// <c>libc10_cuda.so</c>). They take and return <c>c10::cuda::CUDAStream</c>, a trivially copyable 16-byte value
    /// (device type, device index, stream id), which the x86-64 System V ABI passes and returns in two registers: the
    /// blittable <see cref="C10Stream"/> here. Where the library or a symbol is missing (a CPU build, another libtorch
    /// ABI), <see cref="TryLoad"/> says why and callers keep the eager path.
    /// </summary>
    internal sealed unsafe class TorchStreams
    {
        [StructLayout(LayoutKind.Sequential)]
        internal struct C10Stream
        {
            public long DeviceWord;
            public long Id;
        }

        private const string FromExternal = "_ZN3c104cuda21getStreamFromExternalEP11CUstream_sta";
        private const string SetCurrent = "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE";
        private const string GetCurrent = "_ZN3c104cuda20getCurrentCUDAStreamEa";

        private static readonly Lazy<(TorchStreams? streams, string? error)> s_shared = new(Load);

        private readonly delegate* unmanaged<IntPtr, sbyte, C10Stream> _fromExternal;
        private readonly delegate* unmanaged<C10Stream, void> _setCurrent;
        private readonly delegate* unmanaged<sbyte, C10Stream> _getCurrent;

        private TorchStreams(IntPtr lib)
        {
            _fromExternal = (delegate* unmanaged<IntPtr, sbyte, C10Stream>)NativeLibrary.GetExport(lib, FromExternal);
            _setCurrent = (delegate* unmanaged<C10Stream, void>)NativeLibrary.GetExport(lib, SetCurrent);
            _getCurrent = (delegate* unmanaged<sbyte, C10Stream>)NativeLibrary.GetExport(lib, GetCurrent);
        }

        /// <summary>The process's libtorch stream functions, or null with the reason.</summary>
        public static TorchStreams? TryLoad(out string? error)
        {
            var (s, e) = s_shared.Value;
            error = e;
            return s;
        }

        private static (TorchStreams?, string?) Load()
        {
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                return (null, "libtorch's stream functions are bound for x86-64 Linux only");
            // Already in the process when TorchSharp runs on CUDA: a bare soname finds the loaded copy.
            var candidates = TorchBackend.LoadedFrom is { } dir
                ? new[] { Path.Combine(dir, "libc10_cuda.so"), "libc10_cuda.so" }
                : new[] { "libc10_cuda.so" };
            foreach (var name in candidates)
            {
                if (!NativeLibrary.TryLoad(name, out var lib)) continue;
                try
                {
                    return (new TorchStreams(lib), null);
                }
                catch (EntryPointNotFoundException e)
                {
                    return (null, $"{name} lacks a stream function this libtorch build was expected to export ({e.Message})");
                }
            }
            return (null, "libc10_cuda.so (libtorch's CUDA runtime) is not in this process: TorchSharp is not running on CUDA");
        }

        /// <summary>libtorch's current stream on <paramref name="device"/> for this thread.</summary>
        public C10Stream Current(int device) => _getCurrent((sbyte)device);

        /// <summary>Makes <paramref name="stream"/> (a <c>CUstream</c> of the device's primary context) libtorch's current
        /// stream on <paramref name="device"/> for this thread; returns the previous one for <see cref="Restore"/>.</summary>
        public C10Stream Use(IntPtr stream, int device)
        {
            var previous = _getCurrent((sbyte)device);
            _setCurrent(_fromExternal(stream, (sbyte)device));
            return previous;
        }

        /// <summary>Makes <paramref name="previous"/> current again.</summary>
        public void Restore(C10Stream previous) => _setCurrent(previous);
    }
}
