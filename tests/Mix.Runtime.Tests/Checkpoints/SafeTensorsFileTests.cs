using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

public sealed class SafeTensorsFileTests : IDisposable
{
    private readonly TestFiles _files = new();
    private readonly ITestOutputHelper _output;

    public SafeTensorsFileTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _files.Dispose();

    // ---- the real format, built byte by byte from the spec (not by our writer) ----

    [Fact]
    public void ParsesAHandWrittenFileByteForByte()
    {
        // Keys deliberately out of order, data laid out in yet another order, a zero-size tensor, metadata, padding.
        const string header =
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[6,22]}," +
            "\"__metadata__\":{\"format\":\"pt\",\"note\":\"hand made\"}," +
            "\"bf\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[22,28]}," +
            "\"idx\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[0,6]}," +
            "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[28,28]}," +
            "\"flag\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[28,29]}}";
        var data = TestFiles.Concat(
            TestFiles.I16(1, -2, 300),
            TestFiles.F32(1.5f, -2f, 0.25f, 1e30f),
            TestFiles.U16(0x3F80, 0xC000, 0x4049), // bf16: 1, -2, 3.140625
            new byte[] { 1 });
        var path = _files.WriteSafeTensors("hand.safetensors", header, data);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { "bf", "empty", "flag", "idx", "w" }, file.Names);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("hand made", file.Metadata["note"]);

        var w = file.Info("w");
        Assert.Equal("F32", w.DType);
        Assert.Equal(ScalarType.Float32, w.ScalarType);
        Assert.Equal(new long[] { 2, 2 }, w.Shape);
        Assert.Equal(file.DataOffset + 6, w.ByteOffset);
        Assert.Equal(16, w.ByteLength);
        Assert.Equal(0, file.DataOffset % 8);

        using (var t = file.Read("w"))
        {
            Assert.Equal(new long[] { 2, 2 }, t.shape);
            Assert.Equal(new[] { 1.5f, -2f, 0.25f, 1e30f }, t.data<float>().ToArray());
        }
        using (var t = file.Read("idx"))
        {
            Assert.Equal(ScalarType.Int16, t.dtype);
            Assert.Equal(new short[] { 1, -2, 300 }, t.data<short>().ToArray());
        }
        using (var t = file.Read("bf"))
        using (var f = t.to_type(ScalarType.Float32))
        {
            Assert.Equal(ScalarType.BFloat16, t.dtype);
            Assert.Equal(new[] { 1f, -2f, 3.140625f }, f.data<float>().ToArray());
        }
        using (var t = file.Read("empty"))
        {
            Assert.Equal(new long[] { 0, 4 }, t.shape);
        }
        using (var t = file.Read("flag"))
        {
            Assert.Empty(t.shape);
            Assert.True(t.item<bool>());
        }
    }

    [Fact]
    public void AcceptsAnUnpaddedHeaderAndNoMetadata()
    {
        var path = _files.WriteSafeTensors("nopad.safetensors",
            "{\"a\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}", new byte[] { 0xff, 7 }, padTo8: false);
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        using var t = file.Read("a");
        Assert.Equal(new sbyte[] { -1, 7 }, t.data<sbyte>().ToArray());
    }

    [Fact]
    public void Fp8AndUnknownDTypesAreKeptAsRawBytes()
    {
        const string header =
            "{\"e4\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],\"data_offsets\":[0,4]}," +
            "\"e5\":{\"dtype\":\"F8_E5M2\",\"shape\":[3],\"data_offsets\":[4,7]}," +
            "\"odd\":{\"dtype\":\"X_FUTURE\",\"shape\":[5],\"data_offsets\":[7,10]}}";
        var path = _files.WriteSafeTensors("fp8.safetensors", header, new byte[] { 0x38, 0xb8, 0x7e, 0x01, 0x3c, 0xbc, 0x7b, 9, 8, 7 });
        using var file = SafeTensorsFile.Open(path);

        var info = file.Info("e4");
        Assert.True(info.IsRaw);
        Assert.Null(info.ScalarType);
        var error = Assert.Throws<NotSupportedException>(() => file.Read("e4"));
        Assert.Contains("F8_E4M3", error.Message);
        Assert.Contains("ReadRaw", error.Message);

        using (var raw = file.ReadRaw("e4"))
        {
            Assert.Equal("F8_E4M3", raw.DType);
            Assert.Equal(new long[] { 2, 2 }, raw.Shape);
            Assert.Equal(new long[] { 2, 2 }, raw.Data.shape);
            Assert.Equal(new byte[] { 0x38, 0xb8, 0x7e, 0x01 }, raw.Data.data<byte>().ToArray());
        }
        using (var raw = file.ReadRaw("e5"))
            Assert.Equal(new byte[] { 0x3c, 0xbc, 0x7b }, raw.Data.data<byte>().ToArray());
        // Unknown dtype: element size unknown, so sizes are not checked and the bytes come back 1-D.
        using (var raw = file.ReadRaw("odd"))
        {
            Assert.Equal("X_FUTURE", raw.DType);
            Assert.Equal(new long[] { 5 }, raw.Shape);
            Assert.Equal(new long[] { 3 }, raw.Data.shape);
            Assert.Equal(new byte[] { 9, 8, 7 }, raw.Data.data<byte>().ToArray());
        }
    }

    [Fact]
    public void TensorsReadStayValidAfterTheFileIsClosed()
    {
        var path = _files.PathOf("alive.safetensors");
        using (var src = arange(1000, dtype: float32))
            SafeTensors.Save(path, new[] { ("x", src) });
        Tensor t;
        using (var file = SafeTensorsFile.Open(path))
        {
            t = file.Read("x");
            Assert.Throws<ObjectDisposedException>(() => { file.Dispose(); file.Read("x"); });
        }
        using (t)
        {
            // The file can even be replaced: the tensor owns its memory.
            File.Delete(path);
            using var expected = arange(1000, dtype: float32);
            Assert.Equal(expected.data<float>().ToArray(), t.data<float>().ToArray());
        }
    }

    [Fact]
    public void InfoAndReadOfAMissingNameThrowKeyNotFound()
    {
        var path = _files.WriteSafeTensors("one.safetensors", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", new byte[] { 5 });
        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<System.Collections.Generic.KeyNotFoundException>(() => file.Info("b"));
        Assert.Contains("'b'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.False(file.Contains("b"));
        Assert.False(file.TryGetInfo("b", out _));
    }

    // ---- a big tensor goes through the mapping, not through a managed byte[] ----

    [Fact]
    public void A64MegabyteTensorIsCopiedFromTheMappingWithoutManagedBuffers()
    {
        var path = _files.PathOf("big.safetensors");
        const long n = 16L * 1024 * 1024; // 64 MiB of F32
        using (var big = arange(n, dtype: float32))
            SafeTensors.Save(path, new[] { ("big", big) });
        Assert.True(new FileInfo(path).Length > 64L * 1024 * 1024);

        var clock = Stopwatch.StartNew();
        var before = GC.GetAllocatedBytesForCurrentThread();
        long allocated;
        using (var file = SafeTensorsFile.Open(path))
        using (var t = file.Read("big"))
        {
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            clock.Stop();
            using var expected = arange(n, dtype: float32);
            Assert.True(expected.bytes.SequenceEqual(t.bytes));
        }
        _output.WriteLine($"open + read of 64 MiB: {clock.Elapsed.TotalMilliseconds:F1} ms, {allocated} managed bytes allocated");
        // The whole file would be 64 MiB; the header and a few wrappers are a few kilobytes.
        Assert.True(allocated < 1_000_000, $"{allocated} managed bytes allocated while reading a 64 MiB tensor");
    }

    // ---- corrupt inputs: a clear CheckpointFormatException naming file, tensor and problem ----

    private CheckpointFormatException Corrupt(string name, byte[] bytes)
    {
        var path = _files.WriteBytes(name, bytes);
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Equal(Path.GetFullPath(path), e.FilePath);
        Assert.Contains(Path.GetFullPath(path), e.Message);
        _output.WriteLine(e.Message);
        return e;
    }

    private CheckpointFormatException CorruptHeader(string name, string header, byte[] data)
    {
        var path = _files.WriteSafeTensors(name, header, data);
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(Path.GetFullPath(path), e.Message);
        _output.WriteLine(e.Message);
        return e;
    }

    [Fact]
    public void EmptyAndTinyFilesAreRejected()
    {
        Assert.Contains("too short", Corrupt("empty.safetensors", Array.Empty<byte>()).Message);
        Assert.Contains("too short", Corrupt("tiny.safetensors", new byte[] { 1, 2, 3, 4, 5 }).Message);
    }

    [Fact]
    public void HeaderLengthBeyondTheFileIsRejected()
    {
        var bytes = new byte[8 + 10];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 11);
        Assert.Contains("header length field says 11 bytes, but only 10", Corrupt("hl.safetensors", bytes).Message);

        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        Assert.Contains("header length field says", Corrupt("hlmax.safetensors", bytes).Message);
    }

    [Fact]
    public void TruncatedDataIsRejectedNamingTheTensor()
    {
        var path = _files.PathOf("full.safetensors");
        using (var a = ones(4, 4))
        using (var b = zeros(8, dtype: int64))
            SafeTensors.Save(path, new[] { ("a", a), ("b", b) });
        var bytes = File.ReadAllBytes(path);
        var e = Corrupt("trunc.safetensors", bytes[..^5]);
        Assert.NotNull(e.TensorName);
        Assert.Contains("run past the end of the data section", e.Message);

        // Cut inside the header too.
        var e2 = Corrupt("trunc-header.safetensors", bytes[..20]);
        Assert.Contains("header length field says", e2.Message);
    }

    [Fact]
    public void OffsetsOutOfRangeAreRejected()
    {
        var e = CorruptHeader("range.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[8]);
        Assert.Equal("x", e.TensorName);
        Assert.Contains("'x'", e.Message);
        Assert.Contains("data_offsets [4, 12] run past the end of the data section (8 bytes", e.Message);
    }

    [Fact]
    public void OffsetsThatEndBeforeTheyBeginAreRejected()
    {
        var e = CorruptHeader("back.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", new byte[8]);
        Assert.Contains("end before they begin", e.Message);
    }

    [Fact]
    public void OverlappingTensorsAreRejectedNamingBoth()
    {
        var e = CorruptHeader("overlap.safetensors",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            new byte[12]);
        Assert.Equal("b", e.TensorName);
        Assert.Contains("overlap tensor 'a'", e.Message);
    }

    [Fact]
    public void ShapeThatDoesNotMatchTheByteCountIsRejected()
    {
        var e = CorruptHeader("size.safetensors", "{\"m\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", new byte[24]);
        Assert.Equal("m", e.TensorName);
        Assert.Contains("shape [2, 3] of F32 needs 24 bytes, but data_offsets [0, 20] hold 20", e.Message);
    }

    [Fact]
    public void BadJsonIsRejected()
    {
        Assert.Contains("not valid JSON", CorruptHeader("json.safetensors", "{\"a\": {\"dtype\": ", new byte[0]).Message);
        Assert.Contains("not valid JSON", CorruptHeader("json2.safetensors", "{\"a\":1,}", new byte[0]).Message);
        Assert.Contains("does not start with '{'", CorruptHeader("arr.safetensors", "[1,2,3]", new byte[0]).Message);
    }

    [Fact]
    public void MalformedEntriesAreRejected()
    {
        Assert.Contains("no string 'dtype'",
            CorruptHeader("nodtype.safetensors", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]).Message);
        Assert.Contains("not a non-negative integer",
            CorruptHeader("negshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4]).Message);
        Assert.Contains("not a non-negative integer",
            CorruptHeader("fracshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", new byte[4]).Message);
        Assert.Contains("no 'data_offsets' array of two integers",
            CorruptHeader("offs.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", new byte[4]).Message);
        Assert.Contains("not an object",
            CorruptHeader("notobj.safetensors", "{\"a\":[1,2]}", new byte[4]).Message);
        Assert.Contains("appears twice",
            CorruptHeader("dup.safetensors",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                new byte[2]).Message);
        Assert.Contains("must be a string",
            CorruptHeader("meta.safetensors", "{\"__metadata__\":{\"n\":3}}", new byte[0]).Message);
        Assert.Contains("is too large",
            CorruptHeader("huge.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", new byte[4]).Message);
    }

    [Fact]
    public void HeaderThatIsNotUtf8IsRejected()
    {
        var header = Encoding.UTF8.GetBytes("{\"ab\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
        header[3] = 0xb4; // a lone continuation byte inside the tensor name
        var bytes = new byte[8 + header.Length + 1];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        Assert.Contains("not valid UTF-8", Corrupt("utf8.safetensors", bytes).Message);
    }

    [Fact]
    public void RandomCorruptionNeverCrashesOrHangs()
    {
        var path = _files.PathOf("good.safetensors");
        using (var a = randn(3, 5))
        using (var b = arange(7, dtype: int32))
            SafeTensors.Save(path, new[] { ("alpha", a), ("beta", b) }, new System.Collections.Generic.Dictionary<string, string> { ["k"] = "v" });
        var good = File.ReadAllBytes(path);
        var random = new Random(42);
        var clock = Stopwatch.StartNew();
        int rejected = 0, accepted = 0;
        for (var i = 0; i < 400; i++)
        {
            var bytes = (byte[])good.Clone();
            switch (i % 4)
            {
                case 0: bytes[random.Next(bytes.Length)] = (byte)random.Next(256); break;
                case 1: bytes = bytes[..random.Next(bytes.Length)]; break;
                case 2: bytes[random.Next(Math.Min(200, bytes.Length))] ^= (byte)(1 << random.Next(8)); break;
                default: bytes = new byte[random.Next(64)]; random.NextBytes(bytes); break;
            }
            var p = _files.WriteBytes($"fuzz{i}.safetensors", bytes);
            try
            {
                using var f = SafeTensorsFile.Open(p);
                foreach (var name in f.Names)
                {
                    if (f.Info(name).IsRaw) f.ReadRaw(name).Dispose();
                    else f.Read(name).Dispose();
                }
                accepted++;
            }
            catch (CheckpointFormatException)
            {
                rejected++;
            }
        }
        _output.WriteLine($"{rejected} rejected, {accepted} accepted (corruption inside tensor data), {clock.ElapsedMilliseconds} ms");
        Assert.True(rejected > 100);
    }
}
