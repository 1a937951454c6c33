using System;
using System.IO;
using System.IO.MemoryMappedFiles;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A read-only memory mapping of a whole file with bounds-checked access. Tensors are never made over the mapping:
/// <see cref="CopyTo"/> copies bytes into a tensor that owns its memory, so nothing aliases the mapping once it is
/// disposed.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    // Bytes per span when copying into a tensor: spans are limited to int.MaxValue.
    private const long ChunkBytes = 1L << 30;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;
    private bool _disposed;

    private MappedFile(string path, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* pointer)
    {
        Path = path;
        Length = length;
        _map = map;
        _view = view;
        _pointer = pointer;
    }

    /// <summary>The full path of the mapped file.</summary>
    public string Path { get; }

    /// <summary>The file's length in bytes.</summary>
    public long Length { get; }

    public static MappedFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Checkpoint files are little-endian; big-endian hosts are not supported.");
        var full = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.None);
        var length = stream.Length;
        if (length == 0)
        {
            stream.Dispose();
            return new MappedFile(full, 0, null, null, null);
        }
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            // The mapping takes the stream (leaveOpen: false) and closes it when disposed.
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            return new MappedFile(full, length, map, view, p + view.PointerOffset);
        }
        catch
        {
            view?.Dispose();
            if (map is null) stream.Dispose();
            else map.Dispose();
            throw;
        }
    }

    /// <summary>The <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        CheckRange(offset, length);
        return length == 0 ? ReadOnlySpan<byte>.Empty : new ReadOnlySpan<byte>(_pointer + offset, length);
    }

    /// <summary>Copies <paramref name="byteLength"/> bytes at <paramref name="offset"/> into <paramref name="destination"/>,
    /// a contiguous CPU tensor of exactly that many bytes, in chunks (no managed buffer in between).</summary>
    public void CopyTo(long offset, long byteLength, torch.Tensor destination)
    {
        CheckRange(offset, byteLength);
        var elementSize = destination.element_size();
        if (destination.numel() * elementSize != byteLength)
            throw new ArgumentException($"Destination holds {destination.numel() * elementSize} bytes, source range {byteLength}.");
        if (!destination.is_contiguous() || destination.device_type != DeviceType.CPU)
            throw new ArgumentException("Destination must be a contiguous CPU tensor.");
        if (byteLength == 0) return;
        using var flat = destination.reshape(-1);
        var chunkElements = Math.Max(1, ChunkBytes / elementSize);
        var total = flat.numel();
        for (long start = 0; start < total; start += chunkElements)
        {
            var count = Math.Min(chunkElements, total - start);
            using var part = flat.narrow(0, start, count);
            var target = part.bytes;
            var source = new ReadOnlySpan<byte>(_pointer + offset + start * elementSize, checked((int)(count * elementSize)));
            source.CopyTo(target);
        }
    }

    private void CheckRange(long offset, long length)
    {
        if (_disposed) throw new ObjectDisposedException(nameof(MappedFile), $"'{Path}' is closed.");
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Range [{offset}, {offset}+{length}) lies outside '{Path}' ({Length} bytes).");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _pointer = null;
        if (_view is null) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map!.Dispose();
    }
}
