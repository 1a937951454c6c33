using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// NVRTC, loaded at run time (see <see cref="NvrtcLocator"/>): compiles CUDA C++ to a cubin for one architecture.
    /// Thread-safe: every compile uses its own program object.
    /// </summary>
    public sealed unsafe class Nvrtc
    {
        private readonly delegate* unmanaged<int*, int*, int> _version;
        private readonly delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> _create;
        private readonly delegate* unmanaged<IntPtr, int, byte**, int> _compile;
        private readonly delegate* unmanaged<IntPtr, nuint*, int> _logSize;
        private readonly delegate* unmanaged<IntPtr, byte*, int> _log;
        private readonly delegate* unmanaged<IntPtr, nuint*, int> _cubinSize;
        private readonly delegate* unmanaged<IntPtr, byte*, int> _cubin;
        private readonly delegate* unmanaged<IntPtr*, int> _destroy;
        private readonly delegate* unmanaged<int, byte*> _errorString;

        /// <summary>Path or name the library was loaded from.</summary>
        public string LibraryPath { get; }

        /// <summary>NVRTC version as <c>major.minor</c>.</summary>
        public string Version { get; }

        private Nvrtc(IntPtr lib, string path)
        {
            LibraryPath = path;
            _version = (delegate* unmanaged<int*, int*, int>)NativeLibrary.GetExport(lib, "nvrtcVersion");
            _create = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCreateProgram");
            _compile = (delegate* unmanaged<IntPtr, int, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCompileProgram");
            _logSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLogSize");
            _log = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLog");
            _cubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetCUBINSize");
            _cubin = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetCUBIN");
            _destroy = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(lib, "nvrtcDestroyProgram");
            _errorString = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(lib, "nvrtcGetErrorString");
            int major = 0, minor = 0;
            Check(_version(&major, &minor), "nvrtcVersion");
            Version = $"{major}.{minor}";
        }

        /// <summary>
        /// Loads NVRTC from the first candidate that loads (see <see cref="NvrtcLocator"/>), or returns null and explains
        /// in <paramref name="error"/> which places were tried.
        /// </summary>
        /// <param name="error">Why nothing loaded.</param>
        public static Nvrtc? TryLoad(out string? error)
        {
            var tried = new List<string>();
            var ov = NvrtcLocator.Override;
            IEnumerable<string>[] groups = ov is not null
                ? new[] { NvrtcLocator.OverrideCandidates(ov) }
                : new[] { NvrtcLocator.StandardCandidates(), NvrtcLocator.PythonCandidates() };
            foreach (var group in groups)
                foreach (var candidate in group)
                {
                    tried.Add(candidate);
                    if (Path.IsPathRooted(candidate)) PreloadBuiltins(Path.GetDirectoryName(candidate)!);
                    if (!NativeLibrary.TryLoad(candidate, out var lib)) continue;
                    try
                    {
                        error = null;
                        return new Nvrtc(lib, candidate);
                    }
                    catch (Exception e) when (e is EntryPointNotFoundException or InvalidOperationException or CudaKernelUnavailableException)
                    {
                        tried.Add($"({candidate}: {e.Message})");
                    }
                }
            error = (ov is not null ? $"MIX_NVRTC_PATH={ov} did not load" : "NVRTC not found")
                    + "; tried: " + string.Join(", ", tried);
            return null;
        }

        // libnvrtc dlopens libnvrtc-builtins by name; loading it first from the same folder makes that succeed
        // even when the folder is not on the loader's search path.
        private static void PreloadBuiltins(string dir)
        {
            try
            {
                if (!Directory.Exists(dir)) return;
                foreach (var f in Directory.GetFiles(dir, "libnvrtc-builtins.so*"))
                    NativeLibrary.TryLoad(f, out _);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        /// <summary>Compiles <paramref name="source"/> to a cubin. Throws <see cref="CudaKernelUnavailableException"/> with the compiler log on failure.</summary>
        /// <param name="source">CUDA C++ source.</param>
        /// <param name="name">Program name shown in messages.</param>
        /// <param name="options">NVRTC options, including <c>--gpu-architecture=sm_XY</c>.</param>
        public byte[] CompileToCubin(string source, string name, IReadOnlyList<string> options) => CompileToCubin(source, name, options, out _);

        /// <summary>
        /// As <see cref="CompileToCubin(string, string, IReadOnlyList{string})"/>, and the compiler's log of a successful
        /// compile (with <c>--ptxas-options=-v</c>: registers, stack frame and spills per entry point).
        /// </summary>
        /// <param name="source">CUDA C++ source.</param>
        /// <param name="name">Program name shown in messages.</param>
        /// <param name="options">NVRTC options, including <c>--gpu-architecture=sm_XY</c>.</param>
        /// <param name="log">The compiler's log ("(no log)" when empty).</param>
        public byte[] CompileToCubin(string source, string name, IReadOnlyList<string> options, out string log)
        {
            var handles = new List<GCHandle>();
            try
            {
                byte* Pin(string s)
                {
                    var h = GCHandle.Alloc(Encoding.UTF8.GetBytes(s + "\0"), GCHandleType.Pinned);
                    handles.Add(h);
                    return (byte*)h.AddrOfPinnedObject();
                }
                var src = Pin(source);
                var nm = Pin(name);
                IntPtr prog;
                Check(_create(&prog, src, nm, 0, null, null), "nvrtcCreateProgram");
                try
                {
                    var opts = stackalloc byte*[Math.Max(1, options.Count)];
                    for (int i = 0; i < options.Count; i++) opts[i] = Pin(options[i]);
                    int rc = _compile(prog, options.Count, opts);
                    if (rc != 0)
                        throw new CudaKernelUnavailableException($"NVRTC failed to compile {name} ({ErrorString(rc)}): {Log(prog)}");
                    nuint size;
                    Check(_cubinSize(prog, &size), "nvrtcGetCUBINSize");
                    if (size == 0) throw new CudaKernelUnavailableException($"NVRTC produced no cubin for {name} (is the architecture a real sm_XY target?)");
                    var cubin = new byte[(int)size];
                    fixed (byte* p = cubin) Check(_cubin(prog, p), "nvrtcGetCUBIN");
                    log = Log(prog);
                    return cubin;
                }
                finally
                {
                    _destroy(&prog);
                }
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
        }

        private string Log(IntPtr prog)
        {
            nuint size;
            if (_logSize(prog, &size) != 0 || size <= 1) return "(no log)";
            var buf = new byte[(int)size];
            fixed (byte* p = buf) _log(prog, p);
            return Encoding.UTF8.GetString(buf, 0, buf.Length - 1).Trim();
        }

        private string ErrorString(int rc)
        {
            var p = _errorString(rc);
            return p == null ? $"error {rc}" : Marshal.PtrToStringUTF8((IntPtr)p) ?? $"error {rc}";
        }

        private void Check(int rc, string what)
        {
            if (rc != 0) throw new CudaKernelUnavailableException($"{what} failed: {ErrorString(rc)}");
        }
    }
}
