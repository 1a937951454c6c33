using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using System.Text.Json;
using System.Text.Unicode;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A safetensors file, read with positional reads (no memory mapping: see <see cref="CheckpointReader"/>).
/// <see cref="Open"/> refuses anything but a regular file (a FIFO or device would block or never end), then parses and
/// validates the whole header (8-byte little-endian length, JSON, sizes matching shapes, offsets covering the data
/// section exactly: no overlaps, holes or trailing bytes) and throws <see cref="CheckpointFormatException"/> naming the
/// file and tensor on any problem. Reading a tensor copies its bytes into a tensor that owns its memory, so results stay
/// valid after <see cref="Dispose"/>; a file truncated or shortened by another process while open makes the read throw
/// <see cref="CheckpointFormatException"/>, never a fault. Thread-safe for concurrent reads.
/// </summary>
public sealed class SafeTensorsFile : ICheckpointSource
{
    /// <summary>Largest header accepted, as in the reference implementation (100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly CheckpointReader _file;
    private readonly Dictionary<string, TensorInfo> _tensors;
    private readonly string[] _names;

    private SafeTensorsFile(CheckpointReader file, Dictionary<string, TensorInfo> tensors, IReadOnlyDictionary<string, string> metadata, long dataOffset)
    {
        _file = file;
        _tensors = tensors;
        _names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Metadata = metadata;
        DataOffset = dataOffset;
    }

    /// <summary>The full path of the file.</summary>
    public string Path => _file.Path;

    /// <summary>Every tensor name in the file, sorted ordinally.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>The header's <c>__metadata__</c> map (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Where the data section starts in the file (8 + header length).</summary>
    public long DataOffset { get; }

    /// <summary>The file's length in bytes.</summary>
    public long FileLength => _file.Length;

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <param name="path">The file to open.</param>
    /// <exception cref="CheckpointFormatException">The file is not a valid safetensors file.</exception>
    /// <exception cref="System.IO.FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointFormatException">Also: the path is a FIFO, device, socket or directory.</exception>
    public static SafeTensorsFile Open(string path)
    {
        var file = CheckpointReader.Open(path);
        try
        {
            var (tensors, metadata, dataOffset) = ParseHeader(file);
            return new SafeTensorsFile(file, tensors, metadata, dataOffset);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/>: dtype, shape and byte range.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">No tensor of that name.</exception>
    public TensorInfo Info(string name) => TryGetInfo(name, out var info)
        ? info
        : throw new KeyNotFoundException($"No tensor '{name}' in '{Path}'.");

    /// <summary>The header entry of tensor <paramref name="name"/>, if present.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="info">The entry, when found.</param>
    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info) => _tensors.TryGetValue(name, out info);

    /// <summary>Reads tensor <paramref name="name"/> into a new tensor that owns its memory, on <paramref name="device"/> (CPU when null).</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="device">Where the result should live; CPU when null.</param>
    /// <exception cref="KeyNotFoundException">No tensor of that name.</exception>
    /// <exception cref="NotSupportedException">The dtype has no TorchSharp type (FP8 or unknown); use <see cref="ReadRaw"/>.</exception>
    public torch.Tensor Read(string name, torch.Device? device = null)
    {
        var info = Info(name);
        if (info.ScalarType is not torch.ScalarType type)
            throw new NotSupportedException(
                $"Tensor '{name}' in '{Path}' has dtype {info.DType}, which TorchSharp cannot represent; use ReadRaw to get its bytes.");
        return TensorCopy.FromFile(_file, info, type, device);
    }

    /// <summary>Reads tensor <paramref name="name"/>'s stored bytes unchanged, whatever its dtype.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">No tensor of that name.</exception>
    public RawTensor ReadRaw(string name) => TensorCopy.RawFromFile(_file, Info(name));

    /// <summary>Closes the file. Tensors already read stay valid.</summary>
    public void Dispose() => _file.Dispose();

    private static (Dictionary<string, TensorInfo>, IReadOnlyDictionary<string, string>, long) ParseHeader(CheckpointReader file)
    {
        var path = file.Path;
        CheckpointFormatException Bad(string? tensor, string problem) => new(path, tensor, problem);

        if (file.Length < 8)
            throw Bad(null, $"the file is {file.Length} bytes long, too short for the 8-byte header length (truncated or not a safetensors file)");
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file.Span(0, 8));
        if (headerLength > (ulong)(file.Length - 8))
            throw Bad(null, $"the header length field says {headerLength} bytes, but only {file.Length - 8} bytes follow it (truncated or not a safetensors file)");
        if (headerLength > MaxHeaderBytes)
            throw Bad(null, $"the header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");
        if (headerLength < 2)
            throw Bad(null, $"the header length is {headerLength}; the header must be a JSON object");
        var header = file.Span(8, (int)headerLength);
        if (header[0] != (byte)'{')
            throw Bad(null, "the header does not start with '{' (not a safetensors file, or the length field is wrong)");

        // JsonDocument checks UTF-8 only when a string is read; check it all up front instead.
        if (!Utf8.IsValid(header))
            throw Bad(null, "the header is not valid UTF-8");

        var dataOffset = 8 + (long)headerLength;
        var dataLength = file.Length - dataOffset;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw Bad(null, $"the header is not valid JSON: {e.Message}");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Bad(null, $"the header is a JSON {doc.RootElement.ValueKind}, not an object");

            var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                var name = property.Name;
                if (!seen.Add(name)) throw Bad(name, "the name appears twice in the header");
                if (name == MetadataKey)
                {
                    ParseMetadata(property.Value, metadata, Bad);
                    continue;
                }
                tensors.Add(name, ParseEntry(name, property.Value, dataOffset, dataLength, Bad));
            }

            CheckCoverage(tensors.Values, dataOffset, dataLength, Bad);
            return (tensors, metadata, dataOffset);
        }
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, Func<string?, string, CheckpointFormatException> bad)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw bad(null, $"__metadata__ must be an object of strings, not a JSON {value.ValueKind}");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw bad(null, $"__metadata__ value for '{item.Name}' must be a string, not a JSON {item.Value.ValueKind}");
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                throw bad(null, $"__metadata__ key '{item.Name}' appears twice");
        }
    }

    private static TensorInfo ParseEntry(string name, JsonElement entry, long dataOffset, long dataLength,
        Func<string?, string, CheckpointFormatException> bad)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw bad(name, $"the entry is a JSON {entry.ValueKind}, not an object with dtype, shape and data_offsets");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw bad(name, "the entry has no string 'dtype'");
        var dtype = dtypeElement.GetString()!;
        if (dtype.Length == 0) throw bad(name, "'dtype' is empty");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw bad(name, "the entry has no array 'shape'");
        var shape = new long[shapeElement.GetArrayLength()];
        var i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw bad(name, $"shape dimension {i} ({d.GetRawText()}) is not a non-negative integer");
            shape[i++] = dim;
        }

        if (!entry.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw bad(name, "the entry has no 'data_offsets' array of two integers");
        var begin = ReadOffset(offsetsElement[0]);
        var end = ReadOffset(offsetsElement[1]);
        if (begin is null || end is null)
            throw bad(name, $"data_offsets {offsetsElement.GetRawText()} are not two non-negative integers");
        if (begin > end)
            throw bad(name, $"data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw bad(name, $"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes; the file is truncated or the offsets are wrong)");

        long elements;
        long? expected;
        try
        {
            elements = SafeTensorsDTypes.ElementCount(shape);
            expected = SafeTensorsDTypes.ByteLength(dtype, elements);
        }
        catch (OverflowException)
        {
            throw bad(name, $"shape {SafeTensorsDTypes.FormatShape(shape)} is too large");
        }
        var actual = end.Value - begin.Value;
        if (SafeTensorsDTypes.BitsPerElement(dtype) is int bits)
        {
            if (expected is null)
                throw bad(name, $"shape {SafeTensorsDTypes.FormatShape(shape)} of {dtype} ({bits} bits each) does not fill whole bytes");
            if (expected.Value != actual)
                throw bad(name, $"shape {SafeTensorsDTypes.FormatShape(shape)} of {dtype} needs {expected.Value} bytes, but data_offsets [{begin}, {end}] hold {actual}");
        }
        return new TensorInfo(name, dtype, shape, dataOffset + begin.Value, actual);
    }

    private static long? ReadOffset(JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var v) && v >= 0 ? v : null;

    /// <summary>The format's rule (as the reference implementation enforces it): ordered by offsets, the tensors cover
    /// the data section exactly, each starting where the previous one ends, zero-length ones included; no holes, no
    /// overlaps, no bytes after the last tensor (a hole or a tail could carry a second, hidden payload).</summary>
    private static void CheckCoverage(IEnumerable<TensorInfo> tensors, long dataOffset, long dataLength,
        Func<string?, string, CheckpointFormatException> bad)
    {
        long position = 0;
        TensorInfo? previous = null;
        foreach (var t in tensors.OrderBy(t => t.ByteOffset).ThenBy(t => t.ByteLength).ThenBy(t => t.Name, StringComparer.Ordinal))
        {
            long begin = t.ByteOffset - dataOffset, end = begin + t.ByteLength;
            if (begin < position)
                throw bad(t.Name, previous is null
                    ? $"data_offsets [{begin}, {end}] overlap another tensor"
                    : $"data_offsets [{begin}, {end}] overlap tensor '{previous.Name}' [{previous.ByteOffset - dataOffset}, {position}]");
            if (begin > position)
                throw bad(t.Name, $"data_offsets [{begin}, {end}] leave a hole: bytes [{position}, {begin}) of the data section belong to no " +
                    "tensor (the safetensors format requires the tensors to cover the data section contiguously)");
            position = end;
            previous = t;
        }
        if (position != dataLength)
            throw bad(null, $"{dataLength - position} bytes follow the last tensor's data (the data section is {dataLength} bytes, the " +
                $"tensors cover {position}); the safetensors format allows no trailing bytes");
    }
}
