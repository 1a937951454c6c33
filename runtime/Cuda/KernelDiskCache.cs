using System;
using System.IO;
using System.Threading;
using Mix.Runtime.IO;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Directory of compiled kernels, one file per key (<c>&lt;hex key&gt;.cubin</c>, format <see cref="KernelCacheFile"/>).
    /// Writes go to a unique temporary file in the same directory that is then renamed over the target, so readers in
    /// any process see either no file or a whole one; two processes compiling the same kernel both write, and either
    /// result is valid. A damaged file, or an entry that is not a regular file (a FIFO, a device, a link to one), is
    /// reported as a miss and replaced by the next store.
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

        /// <summary>Largest entry read (64 MB; cubins are a few MB at most): a larger file is a miss, never read.</summary>
        public const long MaxEntryBytes = 64L << 20;

        /// <summary>
        /// Reads and verifies the entry for <paramref name="key"/>; null when absent, unreadable or damaged. Only a
        /// regular file is opened: a FIFO, a device or a link to one (which would block or read forever) is a miss. The
        /// size is checked before the payload is read: against <see cref="MaxEntryBytes"/>, then against the length the
        /// header states, so no more than the file's own length is ever allocated.
        /// </summary>
        /// <param name="key">32-byte key.</param>
        public byte[]? TryLoad(byte[] key)
        {
            var path = PathFor(key);
            try
            {
                if (RegularFile.Problem(path, out var length) is not null) return null;
                if (length < KernelCacheFile.HeaderSize || length > MaxEntryBytes) return null;
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
                var header = new byte[KernelCacheFile.HeaderSize];
                stream.ReadExactly(header);
                if (KernelCacheFile.StatedPayloadLength(header) is not long payloadLength || payloadLength != length - KernelCacheFile.HeaderSize)
                    return null;
                var data = new byte[length];
                header.CopyTo(data, 0);
                stream.ReadExactly(data, KernelCacheFile.HeaderSize, (int)payloadLength);
                if (stream.ReadByte() != -1) return null; // grew while being read: another writer's file, not this one
                return KernelCacheFile.TryDecode(data, key, out var payload) ? payload : null;
            }
            catch (EndOfStreamException) { return null; }
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
