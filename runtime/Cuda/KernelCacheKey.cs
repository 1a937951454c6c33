using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// SHA-256 identity of a compiled kernel: over the source, the compile options (in order), the target architecture
    /// and the NVRTC version. Each field is length-prefixed so that no two different inputs share an encoding.
    /// </summary>
    public static class KernelCacheKey
    {
        /// <summary>Byte length of a key.</summary>
        public const int Length = 32;

        private const string Domain = "mix-kernel-cache/1";

        /// <summary>Computes the 32-byte key.</summary>
        /// <param name="source">CUDA C++ source text.</param>
        /// <param name="options">NVRTC options (order matters).</param>
        /// <param name="arch">Target, e.g. <c>sm_90a</c>.</param>
        /// <param name="nvrtcVersion">NVRTC version, e.g. <c>13.0</c>.</param>
        public static byte[] Compute(string source, IReadOnlyList<string> options, string arch, string nvrtcVersion)
        {
            ArgumentNullException.ThrowIfNull(source);
            ArgumentNullException.ThrowIfNull(options);
            using var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
            {
                Field(w, Domain);
                Field(w, source);
                w.Write(options.Count);
                foreach (var o in options) Field(w, o);
                Field(w, arch);
                Field(w, nvrtcVersion);
            }
            return SHA256.HashData(ms.ToArray());
        }

        /// <summary>Lower-case hexadecimal form of a key (the cache file's base name).</summary>
        /// <param name="key">A key from <see cref="Compute"/>.</param>
        public static string ToHex(byte[] key) => Convert.ToHexString(key).ToLowerInvariant();

        private static void Field(BinaryWriter w, string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            w.Write(bytes.Length);
            w.Write(bytes);
        }
    }
}
