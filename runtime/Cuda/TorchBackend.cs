using System;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// The TorchSharp backend the application was built with (MSBuild property <c>MixTorchBackend</c>, recorded in the
    /// entry assembly by Mix.Runtime's build targets): <c>cpu</c> (default; TorchSharp-cpu brings libtorch-cpu from
    /// NuGet), <c>cuda</c> (a TorchSharp-cuda package brings libtorch-cuda) or <c>libtorch</c> (managed TorchSharp and
    /// its binding library only; libtorch comes from an installed build of PyTorch at run time).
    /// For <c>libtorch</c>, <see cref="EnsureLibTorchLoaded"/> finds that install — <c>$MIX_LIBTORCH_DIR</c> (the folder
    /// holding <c>libtorch.so</c>), else the <c>lib</c> folder next to <c>python3 -c "import torch"</c>'s package — and
    /// loads its libraries by full path before TorchSharp's first native call, so TorchSharp's own loader (which loads
    /// <c>torch_cuda</c>/<c>LibTorchSharp</c> by name) finds them already in the process without <c>LD_LIBRARY_PATH</c>.
    /// </summary>
    public static class TorchBackend
    {
        private static readonly object Gate = new();
        private static string? _loadedFrom;

        /// <summary>Preload order: dependencies first, so each full-path load finds the ones before it.</summary>
        private static readonly string[] Libraries = { "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so" };

        /// <summary>The backend the entry assembly was built with (<c>cpu</c>, <c>cuda</c> or <c>libtorch</c>; <c>cpu</c>
        /// when it records none).</summary>
        public static string Name { get; } =
            Assembly.GetEntryAssembly()?.GetCustomAttributes<AssemblyMetadataAttribute>()
                .FirstOrDefault(a => a.Key == "MixTorchBackend")?.Value is { Length: > 0 } name ? name : "cpu";

        /// <summary>True when built with <c>-p:MixTorchBackend=libtorch</c>.</summary>
        public static bool UsesInstalledLibTorch => string.Equals(Name, "libtorch", StringComparison.OrdinalIgnoreCase);

        /// <summary>The folder libtorch was preloaded from, once <see cref="EnsureLibTorchLoaded"/> has run (null for the cpu backend).</summary>
        public static string? LoadedFrom => _loadedFrom;

        /// <summary>
        /// Finds the libtorch folder: <c>$MIX_LIBTORCH_DIR</c>, else <c>python3</c>'s <c>torch/lib</c>; null when neither exists.
        /// </summary>
        /// <param name="tried">What was looked at.</param>
        public static string? LocateLibTorch(out string tried)
        {
            var env = Environment.GetEnvironmentVariable("MIX_LIBTORCH_DIR");
            if (!string.IsNullOrWhiteSpace(env))
            {
                tried = $"MIX_LIBTORCH_DIR={env}";
                return HasLibTorch(env) ? env : null;
            }
            var torchDir = PythonProbe.Run("import torch,os;print(os.path.dirname(torch.__file__))");
            var lib = torchDir is null ? null : Path.Combine(torchDir, "lib");
            tried = lib is null ? "MIX_LIBTORCH_DIR (unset), python3 -c 'import torch' (failed)" : $"MIX_LIBTORCH_DIR (unset), python3's {lib}";
            return lib is not null && HasLibTorch(lib) ? lib : null;
        }

        private static bool HasLibTorch(string dir) => File.Exists(Path.Combine(dir, "libtorch.so")) || File.Exists(Path.Combine(dir, "torch.dll"));

        /// <summary>
        /// For the libtorch backend: locates and preloads the installed libtorch once per process (no-op for the cpu
        /// backend). Call before the first TorchSharp operation.
        /// </summary>
        /// <exception cref="LibTorchNotFoundException">Neither <c>MIX_LIBTORCH_DIR</c> nor python3's torch gives a libtorch.</exception>
        public static void EnsureLibTorchLoaded()
        {
            if (!UsesInstalledLibTorch || _loadedFrom is not null) return;
            lock (Gate)
            {
                if (_loadedFrom is not null) return;
                var dir = LocateLibTorch(out var tried)
                    ?? throw new LibTorchNotFoundException(
                        "This program was built with MixTorchBackend=libtorch, which takes libtorch from an installed PyTorch, " +
                        $"but none was found (looked at: {tried}). Install PyTorch (pip install torch; a CUDA build for the GPU) " +
                        "or set MIX_LIBTORCH_DIR to the folder holding libtorch.so (for pip installs: " +
                        "python3 -c \"import torch,os;print(os.path.dirname(torch.__file__))\", plus /lib), " +
                        "or choose another backend (MixTorchBackend=cpu with TorchSharp-cpu from NuGet; in the Mix repository: " +
                        "dotnet build -p:MixTorchBackend=cpu).");
                foreach (var name in Libraries)
                {
                    var path = Path.Combine(dir, name);
                    if (File.Exists(path)) NativeLibrary.Load(path);
                }
                _loadedFrom = dir;
            }
        }

        /// <summary>
        /// Prepares TorchSharp for CUDA: preloads libtorch when needed, then <c>torch.InitializeDeviceType(CUDA)</c>.
        /// Returns false (with the reason) when CUDA is not usable here; never throws for a machine without a GPU.
        /// </summary>
        /// <param name="reason">Why CUDA is unavailable, or null.</param>
        public static bool TryInitializeCuda(out string? reason)
        {
            try
            {
                EnsureLibTorchLoaded();
                if (!torch.cuda.is_available())
                {
                    reason = "torch.cuda.is_available() is false";
                    return false;
                }
                torch.InitializeDeviceType(DeviceType.CUDA);
                reason = null;
                return true;
            }
            catch (Exception e) when (e is LibTorchNotFoundException or InvalidOperationException or NotSupportedException
                                          or DllNotFoundException or TypeInitializationException or ExternalException)
            {
                reason = e.Message;
                return false;
            }
        }
    }
}
