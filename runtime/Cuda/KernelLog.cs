using System;
using System.Collections.Concurrent;
using System.Diagnostics;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Warnings of the CUDA kernel runtime. Each distinct problem (missing driver, missing NVRTC, a failed compile of
    /// one kernel) is reported once per process through <see cref="Trace.TraceWarning(string)"/> and
    /// <see cref="Warning"/>; callers then fall back to the reference TorchSharp paths.
    /// </summary>
    public static class KernelLog
    {
        private static readonly ConcurrentDictionary<string, byte> Seen = new();

        /// <summary>Optional extra sink (for example <c>Console.Error.WriteLine</c>); called once per distinct warning.</summary>
        public static Action<string>? Warning { get; set; }

        /// <summary>Number of distinct warnings issued so far in this process.</summary>
        public static int Count => Seen.Count;

        /// <summary>Issues <paramref name="message"/> unless a warning with the same <paramref name="key"/> was already issued.</summary>
        /// <param name="key">Identity of the problem (one warning per key).</param>
        /// <param name="message">Text of the warning.</param>
        /// <returns>True when the warning was issued now.</returns>
        public static bool WarnOnce(string key, string message)
        {
            if (!Seen.TryAdd(key, 0)) return false;
            var text = "Mix.Runtime.Cuda: " + message;
            Trace.TraceWarning(text);
            Warning?.Invoke(text);
            return true;
        }
    }
}
