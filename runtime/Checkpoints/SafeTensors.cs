using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// Writes safetensors files: 8-byte little-endian header length, a JSON header with keys sorted (metadata first)
/// and padded with spaces to a multiple of 8 bytes, then each tensor's bytes (contiguous, little-endian), laid out
/// largest element size first so every tensor starts aligned to its element size. Writes go to a temporary file
/// that is renamed over the target only when complete.
/// </summary>
public static class SafeTensors
{
    private sealed record Entry(string Name, string DType, long[] Shape, long ByteLength, int Alignment, Action<Stream> Write);

    /// <summary>Saves <paramref name="tensors"/> (any device, any layout; copied to contiguous CPU memory one at a time)
    /// under their names, with an optional <c>__metadata__</c> map.</summary>
    /// <param name="path">The file to write; replaced atomically if it exists.</param>
    /// <param name="tensors">Names and tensors. Names must be unique, non-empty and not <c>__metadata__</c>.</param>
    /// <param name="metadata">String metadata to store in the header, or null.</param>
    /// <exception cref="NotSupportedException">A tensor's dtype has no safetensors name.</exception>
    public static void Save(string path, IEnumerable<(string name, torch.Tensor tensor)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors, Array.Empty<(string, RawTensor)>(), metadata);

    /// <summary>Saves typed tensors together with raw ones (FP8 and other dtypes TorchSharp cannot hold, written back
    /// byte for byte under their own dtype name).</summary>
    /// <param name="path">The file to write; replaced atomically if it exists.</param>
    /// <param name="tensors">Names and typed tensors.</param>
    /// <param name="rawTensors">Names and raw tensors.</param>
    /// <param name="metadata">String metadata to store in the header, or null.</param>
    public static void Save(string path, IEnumerable<(string name, torch.Tensor tensor)> tensors,
        IEnumerable<(string name, RawTensor tensor)> rawTensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(rawTensors);

        var entries = new List<Entry>();
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor, $"tensor '{name}'");
            var dtype = SafeTensorsDTypes.TryFromScalarType(tensor.dtype)
                ?? throw new NotSupportedException($"Tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store.");
            var size = (int)tensor.element_size();
            entries.Add(new Entry(name, dtype, tensor.shape, tensor.numel() * size, size, s => TensorCopy.WriteTensor(s, tensor)));
        }
        foreach (var (name, raw) in rawTensors)
        {
            ArgumentNullException.ThrowIfNull(raw, $"raw tensor '{name}'");
            var bits = SafeTensorsDTypes.BitsPerElement(raw.DType) ?? 8;
            entries.Add(new Entry(name, raw.DType, raw.Shape.ToArray(), raw.Data.numel(), Math.Max(1, bits / 8),
                s => TensorCopy.WriteTensor(s, raw.Data)));
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            if (string.IsNullOrEmpty(e.Name)) throw new ArgumentException("A tensor name is empty.", nameof(tensors));
            if (e.Name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor.", nameof(tensors));
            if (!names.Add(e.Name)) throw new ArgumentException($"Tensor name '{e.Name}' appears twice.", nameof(tensors));
        }

        // Data layout: largest element first, then by name, so each tensor starts aligned to its element size.
        var layout = entries.OrderByDescending(e => e.Alignment).ThenBy(e => e.Name, StringComparer.Ordinal).ToList();
        var offsets = new Dictionary<string, (long Begin, long End)>(StringComparer.Ordinal);
        long position = 0;
        foreach (var e in layout)
        {
            offsets[e.Name] = (position, position + e.ByteLength);
            position += e.ByteLength;
        }

        var header = BuildHeader(entries, offsets, metadata);
        TensorCopy.WriteAtomically(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var e in layout)
            {
                var before = stream.Position;
                e.Write(stream);
                if (stream.Position - before != e.ByteLength)
                    throw new InvalidOperationException($"Tensor '{e.Name}' wrote {stream.Position - before} bytes, expected {e.ByteLength}.");
            }
        });
    }

    private static byte[] BuildHeader(List<Entry> entries, Dictionary<string, (long Begin, long End)> offsets,
        IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var kv in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    json.WriteString(kv.Key, kv.Value);
                json.WriteEndObject();
            }
            foreach (var e in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType);
                json.WriteStartArray("shape");
                foreach (var d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offsets[e.Name].Begin);
                json.WriteNumberValue(offsets[e.Name].End);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // The format wants the data section 8-byte aligned: pad the header with spaces.
        var padding = (int)((8 - buffer.Length % 8) % 8);
        for (var i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
