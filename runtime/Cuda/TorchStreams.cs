using System;
using System.IO;
using System.Linq;
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
    /// blittable <see cref="C10Stream"/> here. Where those are missing, the C entry point of PyTorch's AOT-Inductor shim
    /// (<c>aoti_torch_set_current_cuda_stream(stream, device)</c> in <c>libtorch_cuda.so</c>) sets the stream, and the
    /// previous one is taken to be the default (null) stream, which is what TorchSharp always runs on. Where neither is
    /// there (a CPU build, another ABI), <see cref="TryLoad"/> says why and callers keep the eager path.
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

        private const string ShimSetCurrent = "aoti_torch_set_current_cuda_stream";

        private readonly delegate* unmanaged<IntPtr, sbyte, C10Stream> _fromExternal;
        private readonly delegate* unmanaged<C10Stream, void> _setCurrent;
        private readonly delegate* unmanaged<sbyte, C10Stream> _getCurrent;
        // the shim's fallback: returns an error code (0 = success)
        private readonly delegate* unmanaged<IntPtr, int, int> _shimSet;

        private TorchStreams(IntPtr lib)
        {
            _fromExternal = (delegate* unmanaged<IntPtr, sbyte, C10Stream>)NativeLibrary.GetExport(lib, FromExternal);
            _setCurrent = (delegate* unmanaged<C10Stream, void>)NativeLibrary.GetExport(lib, SetCurrent);
            _getCurrent = (delegate* unmanaged<sbyte, C10Stream>)NativeLibrary.GetExport(lib, GetCurrent);
        }

        private TorchStreams(delegate* unmanaged<IntPtr, int, int> shimSet) => _shimSet = shimSet;

        /// <summary>Which entry points set the stream (for reports).</summary>
        public string Binding => _shimSet != null ? ShimSetCurrent : "c10::cuda::setCurrentCUDAStream";

        /// <summary>The process's libtorch stream functions, or null with the reason.</summary>
        public static TorchStreams? TryLoad(out string? error)
        {
            var (s, e) = s_shared.Value;
            error = e;
            return s;
        }

        /// <summary>The stream functions of the library at <paramref name="path"/> (c10's names, or the shim's), or null
        /// with the reason: what <see cref="TryLoad"/> does for the process's libtorch, for a given file (tests bind a
        /// stand-in built with the same C++ signatures to check the calling convention).</summary>
        internal static TorchStreams? TryLoadFrom(string path, out string? error)
        {
            if (NativeLibrary.TryLoad(path, out var lib)) return Bind(lib, path, out error);
            error = $"{path} could not be loaded";
            return null;
        }

        // c10's functions in a loaded library, else the shim's entry point, else null with what is missing.
        private static TorchStreams? Bind(IntPtr lib, string name, out string? error)
        {
            error = null;
            try
            {
                return new TorchStreams(lib);
            }
            catch (EntryPointNotFoundException e)
            {
                if (NativeLibrary.TryGetExport(lib, ShimSetCurrent, out var set)) return new TorchStreams((delegate* unmanaged<IntPtr, int, int>)set);
                error = $"{name} has neither c10's stream functions nor {ShimSetCurrent} ({e.Message})";
                return null;
            }
        }

        private static (TorchStreams?, string?) Load()
        {
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                return (null, "libtorch's stream functions are bound for x86-64 Linux only");
            // Already in the process when TorchSharp runs on CUDA: a bare soname finds the loaded copy. c10's own library
            // first; libtorch_cuda for the shim.
            var dir = TorchBackend.LoadedFrom;
            var candidates = new[] { "libc10_cuda.so", "libtorch_cuda.so" }
                .SelectMany(n => dir is null ? new[] { n } : new[] { Path.Combine(dir, n), n });
            string? firstError = null;
            foreach (var name in candidates)
            {
                if (!NativeLibrary.TryLoad(name, out var lib)) continue;
                if (Bind(lib, name, out var error) is { } bound) return (bound, null);
                firstError ??= error;
            }
            return (null, firstError ?? "libc10_cuda.so (libtorch's CUDA runtime) is not in this process: TorchSharp is not running on CUDA");
        }

        /// <summary>Makes <paramref name="stream"/> (a <c>CUstream</c> of the device's primary context) libtorch's current
        /// stream on <paramref name="device"/> for this thread; returns the previous one for <see cref="Restore"/>.</summary>
        public C10Stream Use(IntPtr stream, int device)
        {
            if (_shimSet != null)
            {
                ShimSet(stream, device);
                // the null stream, as an external stream: the same CUstream for every launch and allocation
                return new C10Stream { DeviceWord = device, Id = long.MinValue };
            }
            var previous = _getCurrent((sbyte)device);
            _setCurrent(_fromExternal(stream, (sbyte)device));
            return previous;
        }

        /// <summary>Makes <paramref name="previous"/> current again.</summary>
        public void Restore(C10Stream previous)
        {
            if (_shimSet != null) ShimSet(IntPtr.Zero, (int)previous.DeviceWord);
            else _setCurrent(previous);
        }

        private void ShimSet(IntPtr stream, int device)
        {
            int rc = _shimSet(stream, device);
            if (rc != 0) throw new CudaKernelUnavailableException($"{ShimSetCurrent} failed ({rc})");
        }
    }
}
