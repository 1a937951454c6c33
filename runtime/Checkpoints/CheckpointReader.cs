using System;
using System.IO;
using Microsoft.Win32.SafeHandles;
using Mix.Runtime.IO;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// Positional, bounds-checked reads of a checkpoint file (<c>pread</c>, no memory mapping). A mapping would fault
/// fatally (SIGBUS, surfacing as an uncatchable <see cref="AccessViolationException"/>) when another process truncates
/// the file while it is mapped; a positional read just comes back short, which is reported as a
/// <see cref="CheckpointFormatException"/>. Reads go straight into the destination tensor's memory, in chunks, so
/// there is no managed buffer of the tensor's size and copying costs the same as from a mapping.
/// </summary>
internal sealed class CheckpointReader : IDisposable
{
    // Bytes per read into a tensor: spans are limited to int.MaxValue.
    private const int ChunkBytes = 1 << 30;
    // Window for the many small reads of header parsing (LEB128 fields of TorchSharp's format).
    private const int WindowBytes = 1 << 16;

    private readonly SafeFileHandle _handle;
    private byte[]? _window;
    private long _windowOffset;
    private int _windowLength;

    private CheckpointReader(string path, SafeFileHandle handle, long length)
    {
        Path = path;
        _handle = handle;
        Length = length;
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    /// <summary>The file's length in bytes when it was opened; every header check is made against it.</summary>
    public long Length { get; }

    /// <summary>Opens a regular file for reading. FIFOs, devices, sockets and directories (links followed) are refused
    /// before anything is opened, so nothing blocks.</summary>
    /// <exception cref="CheckpointFormatException">The path is not a regular file.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static CheckpointReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Checkpoint files are little-endian; big-endian hosts are not supported.");
        var full = System.IO.Path.GetFullPath(path);
        var problem = RegularFile.Problem(full, out _);
        if (problem == "missing") throw new FileNotFoundException($"Checkpoint file '{full}' does not exist.", full);
        if (problem is not null)
            throw new CheckpointFormatException(full, null, $"it is {problem}, not a regular file; a checkpoint must be a regular file");
        var handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.RandomAccess);
        try
        {
            return new CheckpointReader(full, handle, RandomAccess.GetLength(handle));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The <paramref name="length"/> bytes at <paramref name="offset"/>. Small ranges come from a window that
    /// the next call may overwrite: use the span before calling again. Not thread-safe (header parsing only).</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        CheckRange(offset, length);
        if (length == 0) return ReadOnlySpan<byte>.Empty;
        if (length > WindowBytes)
        {
            var bytes = new byte[length];
            ReadExactly(bytes, offset, null);
            return bytes;
        }
        if (_window is null || offset < _windowOffset || offset + length > _windowOffset + _windowLength)
        {
            _window ??= new byte[WindowBytes];
            _windowOffset = offset;
            _windowLength = (int)Math.Min(WindowBytes, Length - offset);
            ReadExactly(_window.AsSpan(0, _windowLength), offset, null);
        }
        return new ReadOnlySpan<byte>(_window, (int)(offset - _windowOffset), length);
    }

    /// <summary>Reads <paramref name="byteLength"/> bytes at <paramref name="offset"/> into <paramref name="destination"/>,
    /// a contiguous CPU tensor of exactly that many bytes. Thread-safe (positional reads share no file position).</summary>
    /// <exception cref="CheckpointFormatException">The file is now shorter than the range (truncated while open).</exception>
    public void CopyTo(long offset, long byteLength, torch.Tensor destination, string? tensorName)
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
            ReadExactly(part.bytes, offset + start * elementSize, tensorName);
        }
    }

    private void ReadExactly(Span<byte> target, long offset, string? tensorName)
    {
        var done = 0;
        while (done < target.Length)
        {
            var n = RandomAccess.Read(_handle, target[done..], offset + done);
            if (n == 0)
                throw new CheckpointFormatException(Path, tensorName,
                    $"the file ended at byte {offset + done} while reading bytes [{offset}, {offset + target.Length}); it was {Length} bytes " +
                    $"when opened and is now {CurrentLength()} (truncated or rewritten while being read)");
            done += n;
        }
    }

    private string CurrentLength()
    {
        try { return RandomAccess.GetLength(_handle).ToString(System.Globalization.CultureInfo.InvariantCulture); }
        catch (IOException) { return "unknown"; }
    }

    private void CheckRange(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Range [{offset}, {offset}+{length}) lies outside '{Path}' ({Length} bytes).");
    }

    public void Dispose() => _handle.Dispose();
}
