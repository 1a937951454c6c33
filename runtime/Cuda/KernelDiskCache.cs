using System;
using System.IO;
using System.Threading;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Directory of compiled kernels, one file per key (<c>&lt;hex key&gt;.cubin</c>, format <see cref="KernelCacheFile"/>).
    /// Writes go to a unique temporary file in the same directory that is then renamed over the target, so readers in
    /// any process see either no file or a whole one; two processes compiling the same kernel both write, and either
    /// result is valid. A damaged file is reported as a miss and replaced by the next store.
    /// </summary>
    public sealed class KernelDiskCache
    {
        private static int _counter;

        /// <summary>The cache directory (created on first store).</summary>
        public string Directory { get; }

        /// <summary>Uses <paramref name="directory"/> as the cache directory.</summary>
        /// <param name="directory">Directory path.</param>
        public KernelDiskCache(string directory)
        {
            if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("cache directory must be given", nameof(directory));
            Directory = directory;
        }

        /// <summary>
        /// The default directory: <c>$MIX_KERNEL_CACHE</c>, else <c>$XDG_CACHE_HOME/mix/kernels</c>, else
        /// <c>~/.cache/mix/kernels</c> (on Windows the local application data folder).
        /// </summary>
        public static string DefaultDirectory()
        {
            var env = Environment.GetEnvironmentVariable("MIX_KERNEL_CACHE");
            if (!string.IsNullOrWhiteSpace(env)) return env;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (!string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "mix", "kernels");
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (OperatingSystem.IsWindows() || string.IsNullOrEmpty(home))
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "mix", "kernels");
            return Path.Combine(home, ".cache", "mix", "kernels");
        }

        /// <summary>Path of the file for <paramref name="key"/>.</summary>
        /// <param name="key">32-byte key.</param>
        public string PathFor(byte[] key) => Path.Combine(Directory, KernelCacheKey.ToHex(key) + ".cubin");

        /// <summary>Reads and verifies the entry for <paramref name="key"/>; null when absent, unreadable or damaged.</summary>
        /// <param name="key">32-byte key.</param>
        public byte[]? TryLoad(byte[] key)
        {
            var path = PathFor(key);
            try
            {
                if (!File.Exists(path)) return null;
                var data = File.ReadAllBytes(path);
                return KernelCacheFile.TryDecode(data, key, out var payload) ? payload : null;
            }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
        }

        /// <summary>Stores <paramref name="payload"/> under <paramref name="key"/> (atomic replace).</summary>
        /// <param name="key">32-byte key.</param>
        /// <param name="payload">The cubin.</param>
        /// <returns>False when the directory is not writable (the kernel still runs; it is just not cached).</returns>
        public bool Store(byte[] key, byte[] payload)
        {
            var path = PathFor(key);
            string tmp = Path.Combine(Directory,
                $".{KernelCacheKey.ToHex(key)}.{Environment.ProcessId}.{Interlocked.Increment(ref _counter)}.tmp");
            try
            {
                System.IO.Directory.CreateDirectory(Directory);
                var bytes = KernelCacheFile.Encode(key, payload);
                using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    fs.Write(bytes, 0, bytes.Length);
                    fs.Flush(flushToDisk: true);
                }
                File.Move(tmp, path, overwrite: true);
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                try { if (File.Exists(tmp)) File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                KernelLog.WarnOnce("cache-write:" + Directory, $"cannot write the kernel cache in {Directory}: {e.Message}");
                return false;
            }
        }
    }
}
