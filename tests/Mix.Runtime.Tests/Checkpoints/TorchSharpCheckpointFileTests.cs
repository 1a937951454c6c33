using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

public sealed class TorchSharpCheckpointFileTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void IndexesAFileWrittenByTorchSharpItself()
    {
        var path = _files.PathOf("net.dat");
        using var net = new TestNet(50);
        net.save(path);

        using var file = TorchSharpCheckpointFile.Open(path);
        Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "stats" }, file.Names);
        Assert.Equal("F32", file.Info("fc1.weight").DType);
        Assert.Equal(new long[] { 8, 4 }, file.Info("fc1.weight").Shape);
        using var w = file.Read("fc1.weight");
        Assert.Equal(net.state_dict()["fc1.weight"].data<float>().ToArray(), w.data<float>().ToArray());
    }

    [Fact]
    public void RoundTripsEveryDTypeBitExactly()
    {
        var path = _files.PathOf("all.dat");
        var random = new Random(3);
        var types = new[] { ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
            ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool };
        var tensors = types.Select(t =>
        {
            var x = empty(new long[] { 2, 3 }, dtype: t);
            var bytes = new byte[x.numel() * x.element_size()];
            random.NextBytes(bytes);
            if (t == ScalarType.Bool) for (var i = 0; i < bytes.Length; i++) bytes[i] &= 1;
            x.bytes = bytes;
            return (name: t.ToString(), tensor: x);
        }).ToList();
        TorchSharpCheckpointFile.Save(path, tensors);
        using var file = TorchSharpCheckpointFile.Open(path);
        foreach (var (name, t) in tensors)
        {
            using var back = file.Read(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.bytes.ToArray(), back.bytes.ToArray());
            t.Dispose();
        }
    }

    [Fact]
    public void TruncatedOrForeignFilesAreRejectedClearly()
    {
        var path = _files.PathOf("net.dat");
        using (var net = new TestNet(51)) net.save(path);
        var bytes = File.ReadAllBytes(path);

        var truncated = _files.WriteBytes("cut.dat", bytes[..^3]);
        var e = Assert.Throws<CheckpointFormatException>(() => TorchSharpCheckpointFile.Open(truncated).Dispose());
        Assert.Contains("truncated", e.Message);
        Assert.Contains(truncated, e.Message);

        var trailing = _files.WriteBytes("more.dat", bytes.Concat(new byte[] { 1, 2 }).ToArray());
        Assert.Contains("2 bytes follow the last entry",
            Assert.Throws<CheckpointFormatException>(() => TorchSharpCheckpointFile.Open(trailing).Dispose()).Message);

        Assert.Contains("empty", Assert.Throws<CheckpointFormatException>(
            () => TorchSharpCheckpointFile.Open(_files.WriteBytes("empty.dat", Array.Empty<byte>())).Dispose()).Message);

        var random = new Random(5);
        for (var i = 0; i < 200; i++)
        {
            var b = (byte[])bytes.Clone();
            if (i % 2 == 0) b[random.Next(Math.Min(b.Length, 120))] = (byte)random.Next(256);
            else b = b[..random.Next(b.Length)];
            var p = _files.WriteBytes($"fuzz{i}.dat", b);
            try
            {
                using var f = TorchSharpCheckpointFile.Open(p);
                foreach (var n in f.Names) f.Read(n).Dispose();
            }
            catch (CheckpointFormatException)
            {
            }
        }
    }
}
