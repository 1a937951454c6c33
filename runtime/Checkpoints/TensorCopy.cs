using System;
using System.IO;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>Copies between checkpoint files, tensors and streams without a managed buffer of the tensor's size.</summary>
internal static class TensorCopy
{
    private const long ChunkBytes = 1L << 30;

    /// <summary>A new tensor owning a copy of the bytes <paramref name="info"/> points at.</summary>
    public static torch.Tensor FromFile(CheckpointReader file, TensorInfo info, torch.ScalarType type, torch.Device? device)
    {
        var cpu = torch.empty(info.ShapeArray(), dtype: type, device: torch.CPU);
        try
        {
            file.CopyTo(info.ByteOffset, info.ByteLength, cpu, info.Name);
        }
        catch
        {
            cpu.Dispose();
            throw;
        }
        if (device is null || device.type == DeviceType.CPU) return cpu;
        using (cpu) return cpu.to(device);
    }

    /// <summary>The stored bytes <paramref name="info"/> points at, as a <see cref="RawTensor"/>.</summary>
    public static RawTensor RawFromFile(CheckpointReader file, TensorInfo info)
    {
        var shape = info.ByteLength == info.ElementCount ? info.ShapeArray() : new[] { info.ByteLength };
        var data = torch.empty(shape, dtype: torch.ScalarType.Byte, device: torch.CPU);
        try
        {
            file.CopyTo(info.ByteOffset, info.ByteLength, data, info.Name);
            return new RawTensor(info.DType, info.Shape, data);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <summary>Writes a contiguous CPU tensor's bytes to <paramref name="stream"/> in chunks.</summary>
    public static void WriteBytes(Stream stream, torch.Tensor contiguousCpu)
    {
        var total = contiguousCpu.numel();
        if (total == 0) return;
        var elementSize = contiguousCpu.element_size();
        using var flat = contiguousCpu.reshape(-1);
        var chunkElements = Math.Max(1, ChunkBytes / elementSize);
        for (long start = 0; start < total; start += chunkElements)
        {
            var count = Math.Min(chunkElements, total - start);
            using var part = flat.narrow(0, start, count);
            stream.Write(part.bytes);
        }
    }

    /// <summary>Writes <paramref name="tensor"/>'s bytes (any device, any layout) to <paramref name="stream"/>; the
    /// caller's tensor is neither changed nor disposed.</summary>
    public static void WriteTensor(Stream stream, torch.Tensor tensor)
    {
        using var scope = torch.NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        WriteBytes(stream, cpu);
    }

    /// <summary>Writes to a temporary file beside <paramref name="path"/> and renames it over <paramref name="path"/>
    /// only once everything is written and flushed, so readers never see a half-written file.</summary>
    public static void WriteAtomically(string path, Action<FileStream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
