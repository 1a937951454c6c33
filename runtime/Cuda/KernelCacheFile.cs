using System;
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// On-disk format of one cached cubin: an 88-byte header then the payload.
    /// <code>
    ///   0  magic "MIXCUBIN" (8 bytes)
    ///   8  format version (int32, little endian) = 1
    ///  12  reserved (int32) = 0
    ///  16  key (32 bytes, <see cref="KernelCacheKey"/>)
    ///  48  payload length (int64)
    ///  56  SHA-256 of the payload (32 bytes)
    ///  88  payload
    /// </code>
    /// <see cref="TryDecode"/> rejects anything that does not match exactly (wrong magic, version or key, truncated or
    /// extended, checksum mismatch): such a file is a cache miss.
    /// </summary>
    public static class KernelCacheFile
    {
        /// <summary>Current format version.</summary>
        public const int FormatVersion = 1;

        /// <summary>Header size in bytes.</summary>
        public const int HeaderSize = 88;

        private static ReadOnlySpan<byte> Magic => "MIXCUBIN"u8;

        /// <summary>Encodes a payload under a key.</summary>
        /// <param name="key">32-byte key.</param>
        /// <param name="payload">The cubin.</param>
        public static byte[] Encode(byte[] key, byte[] payload)
        {
            if (key is null || key.Length != KernelCacheKey.Length) throw new ArgumentException("key must be 32 bytes", nameof(key));
            ArgumentNullException.ThrowIfNull(payload);
            var data = new byte[HeaderSize + payload.Length];
            var span = data.AsSpan();
            Magic.CopyTo(span);
            BinaryPrimitives.WriteInt32LittleEndian(span.Slice(8), FormatVersion);
            key.CopyTo(span.Slice(16));
            BinaryPrimitives.WriteInt64LittleEndian(span.Slice(48), payload.LongLength);
            SHA256.HashData(payload).CopyTo(span.Slice(56));
            payload.CopyTo(span.Slice(HeaderSize));
            return data;
        }

        /// <summary>The payload length a header states, or null when the header is not this format's (wrong magic or
        /// version, negative length).</summary>
        /// <param name="header">At least the first <see cref="HeaderSize"/> bytes of a file.</param>
        public static long? StatedPayloadLength(ReadOnlySpan<byte> header)
        {
            if (header.Length < HeaderSize) return null;
            if (!header.Slice(0, 8).SequenceEqual(Magic)) return null;
            if (BinaryPrimitives.ReadInt32LittleEndian(header.Slice(8)) != FormatVersion) return null;
            long length = BinaryPrimitives.ReadInt64LittleEndian(header.Slice(48));
            return length < 0 ? null : length;
        }

        /// <summary>Decodes and verifies a file's bytes.</summary>
        /// <param name="data">The whole file.</param>
        /// <param name="key">Key the file must carry.</param>
        /// <param name="payload">The verified payload, or null.</param>
        /// <returns>True only for an intact file of this format and key.</returns>
        public static bool TryDecode(ReadOnlySpan<byte> data, byte[] key, out byte[]? payload)
        {
            payload = null;
            if (data.Length < HeaderSize) return false;
            if (!data.Slice(0, 8).SequenceEqual(Magic)) return false;
            if (BinaryPrimitives.ReadInt32LittleEndian(data.Slice(8)) != FormatVersion) return false;
            if (!data.Slice(16, 32).SequenceEqual(key)) return false;
            long length = BinaryPrimitives.ReadInt64LittleEndian(data.Slice(48));
            if (length < 0 || length != data.Length - HeaderSize) return false;
            var body = data.Slice(HeaderSize);
            Span<byte> hash = stackalloc byte[32];
            SHA256.HashData(body, hash);
            if (!hash.SequenceEqual(data.Slice(56, 32))) return false;
            payload = body.ToArray();
            return true;
        }
    }
}
