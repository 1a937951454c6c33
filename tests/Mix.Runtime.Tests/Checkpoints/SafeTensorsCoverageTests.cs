using System;
using Mix.Runtime.Checkpoints;
using Xunit;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>The safetensors rule that the tensors cover the data section contiguously (as the reference implementation
/// checks it): no holes between tensors, no bytes after the last one, zero-length tensors in line too.</summary>
public sealed class SafeTensorsCoverageTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void ContiguousTensorsInAnyHeaderOrderAreAccepted()
    {
        var path = _files.WriteSafeTensors("ok.safetensors",
            """{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"e":{"dtype":"F32","shape":[0],"data_offsets":[12,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""",
            TestFiles.F32(1, 2, 3));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { "a", "b", "e" }, file.Names);
    }

    [Fact]
    public void AHoleBetweenTensorsIsRejected()
    {
        var path = _files.WriteSafeTensors("hole.safetensors",
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""",
            TestFiles.F32(1, 0, 2));
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Equal("b", e.TensorName);
        Assert.Contains("leave a hole: bytes [4, 8)", e.Message);
    }

    [Fact]
    public void AHoleBeforeTheFirstTensorIsRejected()
    {
        var path = _files.WriteSafeTensors("lead.safetensors",
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", TestFiles.F32(0, 1));
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("bytes [0, 4)", e.Message);
    }

    [Fact]
    public void TrailingBytesAfterTheLastTensorAreRejected()
    {
        var path = _files.WriteSafeTensors("tail.safetensors",
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", TestFiles.F32(1, 2));
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Null(e.TensorName);
        Assert.Contains("4 bytes follow the last tensor's data", e.Message);
    }

    [Fact]
    public void AFileOfMetadataOnlyMustHaveNoData()
    {
        using (SafeTensorsFile.Open(_files.WriteSafeTensors("empty.safetensors", """{"__metadata__":{"k":"v"}}""", Array.Empty<byte>()))) { }
        Assert.Throws<CheckpointFormatException>(() =>
            SafeTensorsFile.Open(_files.WriteSafeTensors("junk.safetensors", """{"__metadata__":{"k":"v"}}""", new byte[8])));
    }

    [Fact]
    public void AZeroLengthTensorOutOfLineIsRejected()
    {
        var path = _files.WriteSafeTensors("zero.safetensors",
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}""",
            TestFiles.F32(1));
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Equal("z", e.TensorName);
    }

    [Fact]
    public void OverlapsAreStillRejected()
    {
        var path = _files.WriteSafeTensors("overlap.safetensors",
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""",
            TestFiles.F32(1, 2));
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void FilesThisLibraryWritesPassTheRule()
    {
        var path = _files.PathOf("net.safetensors");
        using var net = new TestNet(3);
        CheckpointLoader.Save(net, path);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(5, file.Names.Count);
    }
}
