using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static readonly (string DType, ScalarType Type)[] AllTypes =
    {
        ("F64", ScalarType.Float64), ("F32", ScalarType.Float32), ("F16", ScalarType.Float16), ("BF16", ScalarType.BFloat16),
        ("I64", ScalarType.Int64), ("I32", ScalarType.Int32), ("I16", ScalarType.Int16), ("I8", ScalarType.Int8),
        ("U8", ScalarType.Byte), ("BOOL", ScalarType.Bool),
    };

    /// <summary>A tensor of <paramref name="type"/> whose bytes are random: every bit pattern (NaN payloads,
    /// subnormals, -0, infinities for the float types) can occur, so equality of bytes is a bit-exact check.</summary>
    private static Tensor RandomBits(ScalarType type, long[] shape, Random random)
    {
        var t = empty(shape, dtype: type);
        var bytes = new byte[t.numel() * t.element_size()];
        random.NextBytes(bytes);
        if (type == ScalarType.Bool)
            for (var i = 0; i < bytes.Length; i++) bytes[i] &= 1;
        t.bytes = bytes;
        return t;
    }

    [Fact]
    public void EveryDTypeRoundTripsBitExactly()
    {
        var random = new Random(7);
        var path = _files.PathOf("all.safetensors");
        var originals = AllTypes.Select((d, i) => (name: "t_" + d.DType, tensor: RandomBits(d.Type, new long[] { 3, 5 + i }, random))).ToList();
        // Scalars and empty tensors too.
        originals.Add(("scalar_f16", RandomBits(ScalarType.Float16, Array.Empty<long>(), random)));
        originals.Add(("empty_i32", RandomBits(ScalarType.Int32, new long[] { 0, 3 }, random)));
        try
        {
            SafeTensors.Save(path, originals);
            using var file = SafeTensorsFile.Open(path);
            Assert.Equal(originals.Select(o => o.name).OrderBy(n => n, StringComparer.Ordinal), file.Names);
            foreach (var (name, original) in originals)
            {
                var info = file.Info(name);
                Assert.Equal(SafeTensorsDTypes.FromScalarType(original.dtype), info.DType);
                Assert.Equal(original.shape, info.Shape);
                // Every tensor starts aligned to its element size (the writer lays out large elements first).
                Assert.Equal(0, info.ByteOffset % original.element_size());
                using var back = file.Read(name);
                Assert.Equal(original.dtype, back.dtype);
                Assert.Equal(original.shape, back.shape);
                Assert.Equal(original.bytes.ToArray(), back.bytes.ToArray());
            }
        }
        finally
        {
            foreach (var (_, t) in originals) t.Dispose();
        }
    }

    [Fact]
    public void SpecialFloatValuesSurvive()
    {
        var path = _files.PathOf("special.safetensors");
        var values = new[] { 0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, float.MaxValue, 1e-40f };
        using var f32 = tensor(values);
        using var f16 = f32.to_type(ScalarType.Float16);
        using var bf16 = f32.to_type(ScalarType.BFloat16);
        SafeTensors.Save(path, new[] { ("f32", f32), ("f16", f16), ("bf16", bf16) });
        using var file = SafeTensorsFile.Open(path);
        foreach (var (name, t) in new[] { ("f32", f32), ("f16", f16), ("bf16", bf16) })
        {
            using var back = file.Read(name);
            Assert.Equal(t.bytes.ToArray(), back.bytes.ToArray());
        }
    }

    [Fact]
    public void Fp8RawBytesArePreservedThroughReadAndWrite()
    {
        var fp8 = new byte[] { 0x00, 0x80, 0x38, 0xb8, 0x7e, 0xfe, 0x7f, 0x01 }; // incl. NaN (0x7f) and -0 (0x80)
        var src = _files.WriteSafeTensors("src.safetensors",
            "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,4],\"data_offsets\":[0,8]},\"s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}," +
            "\"r\":{\"dtype\":\"F8_E5M2\",\"shape\":[3],\"data_offsets\":[12,15]}}",
            TestFiles.Concat(fp8, TestFiles.F32(0.5f), new byte[] { 0x3c, 0xfc, 0x7d }));
        var copy = _files.PathOf("copy.safetensors");
        using (var file = SafeTensorsFile.Open(src))
        using (var q = file.ReadRaw("q"))
        using (var r = file.ReadRaw("r"))
        using (var s = file.Read("s"))
            SafeTensors.Save(copy, new[] { ("s", s) }, new[] { ("q", q), ("r", r) });

        using var again = SafeTensorsFile.Open(copy);
        Assert.Equal("F8_E4M3", again.Info("q").DType);
        Assert.Equal(new long[] { 2, 4 }, again.Info("q").Shape);
        Assert.Equal("F8_E5M2", again.Info("r").DType);
        using (var q = again.ReadRaw("q")) Assert.Equal(fp8, q.Data.data<byte>().ToArray());
        using (var r = again.ReadRaw("r")) Assert.Equal(new byte[] { 0x3c, 0xfc, 0x7d }, r.Data.data<byte>().ToArray());
        using (var s = again.Read("s")) Assert.Equal(0.5f, s.item<float>());
    }

    [Fact]
    public void HeaderIsSortedPaddedWithSpacesAndCarriesMetadata()
    {
        var path = _files.PathOf("layout.safetensors");
        using var b = ones(3, dtype: int8);
        using var a = ones(2, 2, dtype: float64);
        using var c = ones(5, dtype: float16);
        SafeTensors.Save(path, new[] { ("zeta", b), ("alpha", a), ("mid", c) },
            new Dictionary<string, string> { ["format"] = "pt", ["a key"] = "ünïcode ✓" });

        var bytes = File.ReadAllBytes(path);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        var close = header.LastIndexOf('}');
        Assert.True(header[(close + 1)..].All(ch => ch == ' '), "the header is padded with spaces only");
        Assert.Contains("ünïcode ✓", header); // written literally, not \u-escaped

        using var doc = JsonDocument.Parse(header);
        Assert.Equal(new[] { "__metadata__", "alpha", "mid", "zeta" }, doc.RootElement.EnumerateObject().Select(p => p.Name));
        // Data: 8-byte elements first, then 2-byte, then 1-byte.
        Assert.Equal("[0,32]", doc.RootElement.GetProperty("alpha").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[32,42]", doc.RootElement.GetProperty("mid").GetProperty("data_offsets").GetRawText());
        Assert.Equal("[42,45]", doc.RootElement.GetProperty("zeta").GetProperty("data_offsets").GetRawText());
        Assert.Equal(8 + n + 45, bytes.Length);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("ünïcode ✓", file.Metadata["a key"]);
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void NonContiguousAndNonCpuLayoutsAreWrittenAsContiguousValues()
    {
        var path = _files.PathOf("strided.safetensors");
        using var m = arange(12, dtype: float32).reshape(3, 4);
        using var t = m.t(); // 4x3 view with strides (1, 4)
        Assert.False(t.is_contiguous());
        SafeTensors.Save(path, new[] { ("t", t) });
        using var file = SafeTensorsFile.Open(path);
        using var back = file.Read("t");
        using var expected = t.contiguous();
        Assert.Equal(new long[] { 4, 3 }, back.shape);
        Assert.Equal(expected.data<float>().ToArray(), back.data<float>().ToArray());
        Assert.False(m.IsInvalid); // the caller's tensors are not disposed
        Assert.False(t.IsInvalid);
    }

    [Fact]
    public void SavingReplacesAtomicallyAndLeavesNoTemporaryFiles()
    {
        var path = _files.PathOf("model.safetensors");
        using var one = ones(4);
        using var two = tensor(new[] { 2f, 2f, 2f, 2f });
        SafeTensors.Save(path, new[] { ("w", one) });
        SafeTensors.Save(path, new[] { ("w", two) });
        using (var file = SafeTensorsFile.Open(path))
        using (var w = file.Read("w"))
            Assert.Equal(new[] { 2f, 2f, 2f, 2f }, w.data<float>().ToArray());

        // A failing save leaves the existing file as it was.
        var before = File.ReadAllBytes(path);
        using var complex = zeros(2, dtype: ScalarType.ComplexFloat64);
        Assert.Throws<NotSupportedException>(() => SafeTensors.Save(path, new[] { ("w", one), ("c", complex) }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(new[] { "model.safetensors" }, Directory.GetFiles(_files.Root).Select(Path.GetFileName));
    }

    [Fact]
    public void InvalidNamesAreRefused()
    {
        using var t = ones(1);
        var path = _files.PathOf("names.safetensors");
        Assert.Contains("appears twice", Assert.Throws<ArgumentException>(() => SafeTensors.Save(path, new[] { ("a", t), ("a", t) })).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => SafeTensors.Save(path, new[] { ("__metadata__", t) })).Message);
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(path, new[] { ("", t) }));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void OurFilesReadBackThroughAnIndependentParse()
    {
        // Parse our writer's output with nothing but the spec (no SafeTensorsFile): proves the bytes follow the format.
        var path = _files.PathOf("spec.safetensors");
        using var w = tensor(new[] { 1.5f, -3f });
        using var i = tensor(new long[] { 7, -8, 9 });
        SafeTensors.Save(path, new[] { ("w", w), ("i", i) });
        var bytes = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, n));
        var data = bytes.AsSpan(8 + n);
        var wo = doc.RootElement.GetProperty("w").GetProperty("data_offsets");
        var io = doc.RootElement.GetProperty("i").GetProperty("data_offsets");
        Assert.Equal("F32", doc.RootElement.GetProperty("w").GetProperty("dtype").GetString());
        Assert.Equal("I64", doc.RootElement.GetProperty("i").GetProperty("dtype").GetString());
        Assert.Equal(-3f, BinaryPrimitives.ReadSingleLittleEndian(data[(wo[0].GetInt32() + 4)..]));
        Assert.Equal(-8L, BinaryPrimitives.ReadInt64LittleEndian(data[(io[0].GetInt32() + 8)..]));
    }
}
