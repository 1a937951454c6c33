using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Runtime.CompilerServices;
using System.Text;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>A temporary folder deleted at dispose, and byte-level builders for hand-made checkpoint files.</summary>
internal sealed class TestFiles : IDisposable
{
    public TestFiles()
    {
        Root = Path.Combine(Path.GetTempPath(), "mix-ckpt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public string PathOf(string name) => Path.Combine(Root, name);

    /// <summary>Writes a safetensors file from a header written by hand and raw data bytes, straight from the spec:
    /// u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section.</summary>
    public string WriteSafeTensors(string name, string headerJson, byte[] data, bool padTo8 = true)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        if (padTo8 && header.Length % 8 != 0)
        {
            var padded = new byte[(header.Length + 7) / 8 * 8];
            Array.Fill(padded, (byte)' ');
            header.CopyTo(padded, 0);
            header = padded;
        }
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return WriteBytes(name, bytes);
    }

    public string WriteBytes(string name, byte[] bytes)
    {
        var path = PathOf(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static byte[] Concat(params byte[][] parts)
    {
        var list = new List<byte>();
        foreach (var p in parts) list.AddRange(p);
        return list.ToArray();
    }

    public static byte[] F32(params float[] values)
    {
        var b = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), values[i]);
        return b;
    }

    public static byte[] I16(params short[] values)
    {
        var b = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(i * 2), values[i]);
        return b;
    }

    public static byte[] U16(params ushort[] values)
    {
        var b = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(i * 2), values[i]);
        return b;
    }

    /// <summary>The folder holding the test data (<c>Fixtures/</c>, <c>Expected/</c>): the test assembly's folder, where the
    /// build copies them (so a published test folder runs anywhere, as on the GPU host), else the source tree's
    /// tests/Mix.Runtime.Tests (from this source file's location).</summary>
    public static string TestProjectDirectory([CallerFilePath] string thisFile = "")
    {
        var output = AppContext.BaseDirectory;
        if (Directory.Exists(Path.Combine(output, "Fixtures")) && Directory.Exists(Path.Combine(output, "Expected"))) return output;
        return Path.GetFullPath(Path.Combine(Path.GetDirectoryName(thisFile)!, ".."));
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
