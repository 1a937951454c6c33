using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

public sealed class ShardedSafeTensorsTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>Splits <see cref="TestNet"/>'s state dict over two shards with a Hugging Face style index.</summary>
    private string WriteSharded(TestNet source, string indexJson = "")
    {
        var sd = source.state_dict();
        SafeTensors.Save(_files.PathOf("model-00001-of-00002.safetensors"),
            new[] { ("fc1.weight", sd["fc1.weight"]), ("fc1.bias", sd["fc1.bias"]) });
        SafeTensors.Save(_files.PathOf("model-00002-of-00002.safetensors"),
            new[] { ("fc2.weight", sd["fc2.weight"]), ("fc2.bias", sd["fc2.bias"]), ("stats", sd["stats"]) });
        var json = indexJson.Length > 0 ? indexJson : """
            {
              "metadata": {"total_size": 172, "format": "pt"},
              "weight_map": {
                "fc1.bias": "model-00001-of-00002.safetensors",
                "fc1.weight": "model-00001-of-00002.safetensors",
                "fc2.bias": "model-00002-of-00002.safetensors",
                "fc2.weight": "model-00002-of-00002.safetensors",
                "stats": "model-00002-of-00002.safetensors"
              }
            }
            """;
        var index = _files.PathOf("model.safetensors.index.json");
        File.WriteAllText(index, json);
        return index;
    }

    [Fact]
    public void OpensAnIndexAndReadsFromEachShard()
    {
        using var source = new TestNet(40);
        var index = WriteSharded(source);
        using var sharded = ShardedSafeTensors.Open(index);

        Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "stats" }, sharded.Names);
        Assert.Equal("172", sharded.Metadata["total_size"]);
        Assert.Equal("pt", sharded.Metadata["format"]);
        Assert.Equal(2, sharded.ShardPaths.Count);
        Assert.EndsWith("model-00002-of-00002.safetensors", sharded.ShardOf("stats"));
        Assert.Equal(new long[] { 2, 8 }, sharded.Info("fc2.weight").Shape);
        using var w = sharded.Read("fc2.weight");
        Assert.Equal(source.state_dict()["fc2.weight"].data<float>().ToArray(), w.data<float>().ToArray());
    }

    [Fact]
    public void CheckpointLoaderLoadsShardedCheckpointsStrictly()
    {
        using var source = new TestNet(41);
        var index = WriteSharded(source);
        using var target = new TestNet(42);
        var report = CheckpointLoader.Load(target, index);
        Assert.Equal(5, report.LoadedKeys.Count);
        foreach (var (key, value) in target.state_dict())
            Assert.Equal(source.state_dict()[key].data<float>().ToArray(), value.data<float>().ToArray());

        // The folder works too.
        using var again = new TestNet(43);
        Assert.True(CheckpointLoader.Load(again, _files.Root).IsExactMatch);
    }

    [Fact]
    public void AnIndexListingTooLittleIsAStrictMismatch()
    {
        using var source = new TestNet(44);
        var index = WriteSharded(source, """{"weight_map": {"fc1.weight": "model-00001-of-00002.safetensors"}}""");
        using var target = new TestNet(45);
        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(target, index));
        Assert.Equal(new[] { "fc1.bias", "fc2.bias", "fc2.weight", "stats" }, error.Report.MissingKeys);
    }

    [Fact]
    public void MissingShardIsReported()
    {
        using var source = new TestNet(46);
        var index = WriteSharded(source, """{"weight_map": {"fc1.weight": "model-00009-of-00009.safetensors"}}""");
        var error = Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(index).Dispose());
        Assert.Equal("fc1.weight", error.TensorName);
        Assert.Contains("shard 'model-00009-of-00009.safetensors' does not exist", error.Message);
    }

    [Fact]
    public void TensorAbsentFromItsShardIsReported()
    {
        using var source = new TestNet(47);
        var index = WriteSharded(source, """{"weight_map": {"fc2.weight": "model-00001-of-00002.safetensors"}}""");
        var error = Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(index).Dispose());
        Assert.Contains("weight_map puts it in shard 'model-00001-of-00002.safetensors', but that shard has no such tensor", error.Message);
    }

    [Fact]
    public void ShardPathsMayNotLeaveTheIndexFolder()
    {
        using var source = new TestNet(48);
        var index = WriteSharded(source, """{"weight_map": {"fc1.weight": "../model-00001-of-00002.safetensors"}}""");
        var error = Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(index).Dispose());
        Assert.Contains("not a file name inside the index's folder", error.Message);
        index = WriteSharded(source, """{"weight_map": {"fc1.weight": "/etc/passwd"}}""");
        Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(index).Dispose());
    }

    [Fact]
    public void MalformedIndexIsReported()
    {
        using var source = new TestNet(49);
        Assert.Contains("not valid JSON",
            Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(WriteSharded(source, "{\"weight_map\": "))).Message);
        Assert.Contains("no 'weight_map' object",
            Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(WriteSharded(source, "{\"metadata\": {}}"))).Message);
        Assert.Contains("not a shard file name",
            Assert.Throws<CheckpointFormatException>(() => ShardedSafeTensors.Open(WriteSharded(source, "{\"weight_map\": {\"a\": 3}}"))).Message);
    }
}
