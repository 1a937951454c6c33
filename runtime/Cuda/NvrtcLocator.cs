using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Where NVRTC is looked for, in order: <c>$MIX_NVRTC_PATH</c> (a file, or a folder holding libnvrtc) and nothing
    /// else when it is set; otherwise the loader's own search (<c>LD_LIBRARY_PATH</c>, ldconfig) for
    /// <c>libnvrtc.so.13</c>, <c>libnvrtc.so.12</c>, <c>libnvrtc.so</c>; then <c>$CUDA_HOME</c>/<c>$CUDA_PATH</c>,
    /// <c>/usr/local/cuda*</c>; then the copies in PyTorch's site-packages (<c>nvidia/*/lib</c>).
    /// </summary>
    public static class NvrtcLocator
    {
        /// <summary>Library file names tried, newest first.</summary>
        public static readonly IReadOnlyList<string> FileNames = OperatingSystem.IsWindows()
            ? new[] { "nvrtc64_130_0.dll", "nvrtc64_120_0.dll" }
            : new[] { "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so" };

        /// <summary>The explicit override, when <c>MIX_NVRTC_PATH</c> is set.</summary>
        public static string? Override => Environment.GetEnvironmentVariable("MIX_NVRTC_PATH") is { Length: > 0 } s ? s : null;

        /// <summary>Candidates from the override: the file itself, or the known names inside the folder.</summary>
        /// <param name="overridePath">Value of <c>MIX_NVRTC_PATH</c>.</param>
        public static IEnumerable<string> OverrideCandidates(string overridePath) =>
            Directory.Exists(overridePath) ? FileNames.Select(n => Path.Combine(overridePath, n)) : new[] { overridePath };

        /// <summary>Bare names for the platform loader, then full paths in well-known folders (without asking Python).</summary>
        public static IEnumerable<string> StandardCandidates()
        {
            foreach (var n in FileNames) yield return n;
            foreach (var dir in ToolkitDirs())
                foreach (var n in FileNames)
                {
                    var p = Path.Combine(dir, n);
                    if (File.Exists(p)) yield return p;
                }
        }

        /// <summary>Full paths in NVIDIA's pip wheels that python3 sees (slow: starts Python).</summary>
        public static IEnumerable<string> PythonCandidates()
        {
            foreach (var dir in PythonProbe.NvidiaWheelLibDirs())
                foreach (var n in FileNames)
                {
                    var p = Path.Combine(dir, n);
                    if (File.Exists(p)) yield return p;
                }
        }

        private static IEnumerable<string> ToolkitDirs()
        {
            foreach (var v in new[] { "CUDA_HOME", "CUDA_PATH" })
                if (Environment.GetEnvironmentVariable(v) is { Length: > 0 } h)
                {
                    yield return Path.Combine(h, "lib64");
                    yield return Path.Combine(h, "targets", "x86_64-linux", "lib");
                }
            yield return "/usr/local/cuda/lib64";
            yield return "/usr/local/cuda/targets/x86_64-linux/lib";
            string[] versioned;
            try { versioned = Directory.Exists("/usr/local") ? Directory.GetDirectories("/usr/local", "cuda-*") : Array.Empty<string>(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { versioned = Array.Empty<string>(); }
            foreach (var d in versioned.OrderByDescending(x => x, StringComparer.Ordinal))
            {
                yield return Path.Combine(d, "lib64");
                yield return Path.Combine(d, "targets", "x86_64-linux", "lib");
            }
        }
    }
}
