using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Linq;
using System.Text;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// TorchSharp's own state-dict format (what <c>Module.save</c> writes and <c>Module.load</c> reads, usually
/// <c>.dat</c>): a LEB128 entry count, then per entry a .NET length-prefixed UTF-8 name, LEB128 dtype code, LEB128
/// rank, LEB128 dimensions and the raw little-endian bytes. Read with positional reads (see <see cref="CheckpointReader"/>) and indexed up front
/// (every entry's dtype, shape and byte range is validated before any data is read), so it can be compared against a
/// model exactly like a safetensors file.
/// </summary>
public sealed class TorchSharpCheckpointFile : ICheckpointSource
{
    private const int MaxRank = 64;

    private readonly CheckpointReader _file;
    private readonly Dictionary<string, TensorInfo> _tensors;
    private readonly string[] _names;

    private TorchSharpCheckpointFile(CheckpointReader file, Dictionary<string, TensorInfo> tensors)
    {
        _file = file;
        _tensors = tensors;
        _names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
    }

    /// <summary>The full path of the file.</summary>
    public string Path => _file.Path;

    /// <summary>Every tensor name in the file, sorted ordinally.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>Opens and indexes a TorchSharp state-dict file.</summary>
    /// <param name="path">The file to open.</param>
    /// <exception cref="CheckpointFormatException">The file is truncated or not in TorchSharp's format (a PyTorch
    /// pickle/zip <c>.bin</c> is recognised and named as such).</exception>
    public static TorchSharpCheckpointFile Open(string path)
    {
        var file = CheckpointReader.Open(path);
        try
        {
            return new TorchSharpCheckpointFile(file, Index(file));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Writes a state dict in TorchSharp's format (readable by <c>Module.load</c>), atomically.</summary>
    /// <param name="path">The file to write; replaced atomically if it exists.</param>
    /// <param name="tensors">Names and tensors (any device; copied to contiguous CPU memory one at a time).</param>
    public static void Save(string path, IEnumerable<(string name, torch.Tensor tensor)> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            ArgumentNullException.ThrowIfNull(tensor, $"tensor '{name}'");
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("A tensor name is empty.", nameof(tensors));
            if (!names.Add(name)) throw new ArgumentException($"Tensor name '{name}' appears twice.", nameof(tensors));
        }
        TensorCopy.WriteAtomically(path, stream =>
        {
            using var writer = new BinaryWriter(stream, new UTF8Encoding(false), leaveOpen: true);
            WriteLeb128(writer, list.Count);
            foreach (var (name, tensor) in list)
            {
                writer.Write(name);
                WriteLeb128(writer, (long)tensor.dtype);
                var shape = tensor.shape;
                WriteLeb128(writer, shape.Length);
                foreach (var d in shape) WriteLeb128(writer, d);
                writer.Flush();
                TensorCopy.WriteTensor(stream, tensor);
            }
        });
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The entry of tensor <paramref name="name"/>: dtype, shape and byte range.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">No tensor of that name.</exception>
    public TensorInfo Info(string name) => TryGetInfo(name, out var info)
        ? info
        : throw new KeyNotFoundException($"No tensor '{name}' in '{Path}'.");

    /// <summary>The entry of tensor <paramref name="name"/>, if present.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="info">The entry, when found.</param>
    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info) => _tensors.TryGetValue(name, out info);

    /// <summary>Reads tensor <paramref name="name"/> into a new tensor that owns its memory.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="device">Where the result should live; CPU when null.</param>
    public torch.Tensor Read(string name, torch.Device? device = null)
    {
        var info = Info(name);
        return TensorCopy.FromFile(_file, info, info.ScalarType!.Value, device);
    }

    /// <summary>Closes the file. Tensors already read stay valid.</summary>
    public void Dispose() => _file.Dispose();

    private static Dictionary<string, TensorInfo> Index(CheckpointReader file)
    {
        var path = file.Path;
        CheckpointFormatException Bad(string? tensor, string problem) => new(path, tensor, problem);

        if (file.Length >= 4 && file.Span(0, 4).SequenceEqual("PK\u0003\u0004"u8))
            throw Bad(null, "this is a zip archive (a PyTorch pickle checkpoint such as pytorch_model.bin), not TorchSharp's format; convert it to safetensors");
        if (file.Length == 0) throw Bad(null, "the file is empty");

        long position = 0;
        string? current = null;
        long ReadLeb(string what)
        {
            long result = 0;
            for (var shift = 0; ; shift += 7)
            {
                if (position >= file.Length) throw Bad(current, $"the file ends inside {what} (truncated)");
                if (shift > 56) throw Bad(current, $"{what} is not a valid LEB128 number");
                var b = file.Span(position++, 1)[0];
                result |= (long)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return result;
            }
        }

        var count = ReadLeb("the entry count");
        if (count > file.Length) throw Bad(null, $"the entry count {count} cannot fit in a {file.Length}-byte file (not TorchSharp's format)");
        var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        for (long i = 0; i < count; i++)
        {
            current = null;
            // BinaryWriter.Write(string): 7-bit encoded byte length, then UTF-8.
            var nameLength = ReadLeb($"the name length of entry {i}");
            if (nameLength > int.MaxValue || nameLength > file.Length - position)
                throw Bad(null, $"entry {i}'s name ({nameLength} bytes) runs past the end of the file (truncated or not TorchSharp's format)");
            string name;
            try
            {
                name = strict.GetString(file.Span(position, (int)nameLength));
            }
            catch (DecoderFallbackException)
            {
                throw Bad(null, $"entry {i}'s name is not valid UTF-8 (not TorchSharp's format)");
            }
            position += nameLength;
            current = name;

            var code = ReadLeb("the dtype");
            var type = (torch.ScalarType)code;
            var dtype = code <= sbyte.MaxValue ? SafeTensorsDTypes.TryFromScalarType(type) : null;
            if (dtype is null) throw Bad(name, $"dtype code {code} is not one this library reads");
            var rank = ReadLeb("the rank");
            if (rank > MaxRank) throw Bad(name, $"rank {rank} is implausible (not TorchSharp's format)");
            var shape = new long[rank];
            for (var d = 0; d < rank; d++) shape[d] = ReadLeb("a dimension");
            long bytes;
            try
            {
                bytes = SafeTensorsDTypes.ByteLength(dtype, SafeTensorsDTypes.ElementCount(shape))!.Value;
            }
            catch (OverflowException)
            {
                throw Bad(name, $"shape {SafeTensorsDTypes.FormatShape(shape)} is too large");
            }
            if (bytes > file.Length - position)
                throw Bad(name, $"{dtype} {SafeTensorsDTypes.FormatShape(shape)} needs {bytes} bytes but only {file.Length - position} remain (truncated)");
            if (!tensors.TryAdd(name, new TensorInfo(name, dtype, shape, position, bytes)))
                throw Bad(name, "the name appears twice");
            position += bytes;
        }
        if (position != file.Length)
            throw Bad(null, $"{file.Length - position} bytes follow the last entry (not a TorchSharp state dict, or corrupt)");
        return tensors;
    }

    private static void WriteLeb128(BinaryWriter writer, long value)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), "LEB128 needs a non-negative value.");
        do
        {
            var b = (byte)(value & 0x7f);
            value >>= 7;
            writer.Write(value == 0 ? b : (byte)(b | 0x80));
        } while (value != 0);
    }
}
