using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

public sealed class CheckpointLoaderTests : IDisposable
{
    private readonly TestFiles _files = new();
    private readonly ITestOutputHelper _output;

    public CheckpointLoaderTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _files.Dispose();

    private static Dictionary<string, float[]> Values(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float32).data<float>().ToArray());

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("model.dat")]
    [InlineData("model.bin")]
    public void SaveThenLoadRestoresEveryParameterAndBuffer(string fileName)
    {
        var path = _files.PathOf(fileName);
        using var source = new TestNet(1);
        using var target = new TestNet(2);
        CheckpointLoader.Save(source, path);
        Assert.NotEqual(Values(source)["fc1.weight"], Values(target)["fc1.weight"]);

        var report = CheckpointLoader.Load(target, path);

        Assert.True(report.IsExactMatch);
        Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "stats" }, report.LoadedKeys);
        var expected = Values(source);
        foreach (var (key, value) in Values(target)) Assert.Equal(expected[key], value);
    }

    [Fact]
    public void LoadKeepsTheSameParameterObjectsAndAnOptimizerStepAfterwardsMovesTheModel()
    {
        var path = _files.PathOf("ckpt.safetensors");
        using (var source = new TestNet(11)) CheckpointLoader.Save(source, path);

        using var model = new TestNet(12);
        var before = model.parameters().ToList();
        var optimizer = optim.SGD(model.parameters(), 0.5);

        CheckpointLoader.Load(model, path);

        var after = model.parameters().ToList();
        Assert.Equal(before.Count, after.Count);
        for (var i = 0; i < before.Count; i++) Assert.Same(before[i], after[i]);
        var stateDict = model.state_dict();
        Assert.Same(before[0], stateDict["fc1.weight"]);

        var loaded = stateDict["fc1.weight"].clone();
        using (var file = SafeTensorsFile.Open(path))
        using (var fromFile = file.Read("fc1.weight"))
            Assert.Equal(fromFile.data<float>().ToArray(), loaded.data<float>().ToArray());

        optimizer.zero_grad();
        using var x = ones(5, 4);
        using var loss = model.forward(x).square().sum();
        loss.backward();
        var grad = stateDict["fc1.weight"].grad!.clone();
        Assert.True(grad.abs().sum().item<float>() > 0);
        optimizer.step();

        // w' = w - lr * g: the optimizer updated exactly the tensor the model computes with.
        using var expected = loaded - 0.5 * grad;
        Assert.True(expected.allclose(stateDict["fc1.weight"], rtol: 0, atol: 1e-7));
        Assert.False(loaded.allclose(stateDict["fc1.weight"]));
    }

    /// <summary>A checkpoint with one problem of every kind against <see cref="TestNet"/>: fc1.weight transposed,
    /// fc1.bias in F64, fc2.bias absent, stats stored as FP8, an extra tensor. fc2.weight matches.</summary>
    private string MismatchedCheckpoint(string fileName, out float[] fc2Weight)
    {
        var path = _files.PathOf(fileName);
        using var fc1w = randn(4, 8);
        using var fc1b = randn(8, dtype: float64);
        using var fc2w = randn(2, 8);
        using var extra = ones(3);
        fc2Weight = fc2w.data<float>().ToArray();
        using var stats = new RawTensor("F8_E4M3", new long[] { 3 }, tensor(new byte[] { 1, 2, 3 }));
        SafeTensors.Save(path, new[] { ("fc1.weight", fc1w), ("fc1.bias", fc1b), ("fc2.weight", fc2w), ("head.extra", extra) },
            new[] { ("stats", stats) });
        return path;
    }

    [Fact]
    public void StrictLoadListsEveryProblemAtOnceAndChangesNothing()
    {
        var path = MismatchedCheckpoint("bad.safetensors", out _);
        using var model = new TestNet(3);
        var before = Values(model);

        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(model, path));
        _output.WriteLine(error.Message);

        var lines = error.Message.Split('\n');
        Assert.StartsWith($"Checkpoint '{Path.GetFullPath(path)}' does not match the model (5 problems: 1 missing, 1 unexpected, 1 shape, 2 dtype); nothing was loaded.", lines[0]);
        Assert.Equal(new[]
        {
            "  missing key: fc2.bias",
            "  unexpected key: head.extra",
            "  shape mismatch: fc1.weight: model [8, 4], checkpoint [4, 8]",
            "  dtype mismatch: fc1.bias: model F32, checkpoint F64",
            "  dtype mismatch: stats: model F32, checkpoint F8_E4M3 (no TorchSharp type)",
        }, lines[1..]);
        Assert.Equal(new[] { "fc2.bias" }, error.Report.MissingKeys);
        Assert.Equal(new[] { "head.extra" }, error.Report.UnexpectedKeys);
        Assert.Empty(error.Report.LoadedKeys);

        // Nothing was copied, not even fc2.weight, which matched.
        var after = Values(model);
        foreach (var (key, value) in before) Assert.Equal(value, after[key]);
    }

    [Fact]
    public void NonStrictLoadReportsProblemsAndLoadsWhatMatches()
    {
        var path = MismatchedCheckpoint("partial.safetensors", out var fc2Weight);
        using var model = new TestNet(4);
        var before = Values(model);

        var report = CheckpointLoader.Load(model, path, strict: false);
        _output.WriteLine(report.ToString());

        Assert.False(report.IsExactMatch);
        Assert.Equal(5, report.ProblemCount);
        Assert.Equal(new[] { "fc2.weight" }, report.LoadedKeys);
        Assert.Equal(new[] { "fc2.bias" }, report.MissingKeys);
        Assert.Equal(new[] { "head.extra" }, report.UnexpectedKeys);
        var shape = Assert.Single(report.ShapeMismatches);
        Assert.Equal(("fc1.weight", "[8, 4]", "[4, 8]"), (shape.Key, shape.Model, shape.Checkpoint));
        Assert.Equal(new[] { "fc1.bias", "stats" }, report.DTypeMismatches.Select(m => m.Key));
        Assert.Equal(new[]
        {
            "missing key: fc2.bias",
            "unexpected key: head.extra",
            "shape mismatch: fc1.weight: model [8, 4], checkpoint [4, 8]",
            "dtype mismatch: fc1.bias: model F32, checkpoint F64",
            "dtype mismatch: stats: model F32, checkpoint F8_E4M3 (no TorchSharp type)",
        }, report.ProblemLines());

        var after = Values(model);
        Assert.Equal(fc2Weight, after["fc2.weight"]);
        foreach (var key in new[] { "fc1.weight", "fc1.bias", "fc2.bias", "stats" }) Assert.Equal(before[key], after[key]);
    }

    [Fact]
    public void CompareReportsWithoutLoading()
    {
        var path = MismatchedCheckpoint("cmp.safetensors", out _);
        using var model = new TestNet(5);
        var before = Values(model);
        var report = CheckpointLoader.Compare(model, path);
        Assert.Equal(5, report.ProblemCount);
        Assert.Empty(report.LoadedKeys);
        var after = Values(model);
        foreach (var (key, value) in before) Assert.Equal(value, after[key]);
    }

    [Fact]
    public void HalfPrecisionCheckpointNeedsTheConversionFlag()
    {
        var path = _files.PathOf("bf16.safetensors");
        using var source = new TestNet(6);
        var halves = source.state_dict().Select(kv => (kv.Key, kv.Key == "stats" ? kv.Value.to_type(ScalarType.Float16) : kv.Value.to_type(ScalarType.BFloat16))).ToList();
        SafeTensors.Save(path, halves);

        using var model = new TestNet(7);
        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(model, path));
        Assert.Equal(5, error.Report.DTypeMismatches.Count);
        Assert.Contains("dtype mismatch: fc1.weight: model F32, checkpoint BF16", error.Message);
        Assert.Contains("dtype mismatch: stats: model F32, checkpoint F16", error.Message);

        var report = CheckpointLoader.Load(model, path, convertDtypes: true);
        Assert.True(report.IsExactMatch);
        Assert.Equal(5, report.ConvertedKeys.Count);
        Assert.Equal(ScalarType.Float32, model.state_dict()["fc1.weight"].dtype);
        foreach (var (key, half) in halves)
        {
            using var widened = half.to_type(ScalarType.Float32);
            Assert.Equal(widened.data<float>().ToArray(), model.state_dict()[key].data<float>().ToArray());
        }
    }

    [Fact]
    public void IntegerDTypesNeverConvert()
    {
        var path = _files.PathOf("int.safetensors");
        using var source = new TestNet(8);
        var entries = source.state_dict().Select(kv => (kv.Key, kv.Key == "stats" ? kv.Value.to_type(ScalarType.Int32) : kv.Value)).ToList();
        SafeTensors.Save(path, entries);
        using var model = new TestNet(9);
        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(model, path, convertDtypes: true));
        Assert.Equal("stats", Assert.Single(error.Report.DTypeMismatches).Key);
    }

    [Fact]
    public void TorchSharpFormatGetsTheSameStrictness()
    {
        var path = _files.PathOf("other.dat");
        using (var other = nn.Sequential(("fc1", nn.Linear(4, 8)), ("fc2", nn.Linear(8, 3))))
            other.save(path); // TorchSharp's own writer

        using var model = new TestNet(10);
        var before = Values(model);
        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(model, path));
        _output.WriteLine(error.Message);
        Assert.Contains("  missing key: stats", error.Message.Split('\n'));
        Assert.Contains("  shape mismatch: fc2.weight: model [2, 8], checkpoint [3, 8]", error.Message.Split('\n'));
        Assert.Contains("  shape mismatch: fc2.bias: model [2], checkpoint [3]", error.Message.Split('\n'));
        Assert.Equal(3, error.Report.ProblemCount);
        var after = Values(model);
        foreach (var (key, value) in before) Assert.Equal(value, after[key]);

        var report = CheckpointLoader.Load(model, path, strict: false);
        Assert.Equal(new[] { "fc1.bias", "fc1.weight" }, report.LoadedKeys);
    }

    [Fact]
    public void TorchSharpFilesInteroperateBothWays()
    {
        using var source = new TestNet(20);
        var byTorchSharp = _files.PathOf("ts.dat");
        source.save(byTorchSharp);
        using var a = new TestNet(21);
        CheckpointLoader.Load(a, byTorchSharp);

        var byUs = _files.PathOf("us.dat");
        CheckpointLoader.Save(source, byUs);
        using var b = new TestNet(22);
        b.load(byUs); // TorchSharp's own reader, strict

        var expected = Values(source);
        foreach (var (key, value) in Values(a)) Assert.Equal(expected[key], value);
        foreach (var (key, value) in Values(b)) Assert.Equal(expected[key], value);
    }

    [Fact]
    public void FormatFollowsTheExtension()
    {
        Assert.Equal(CheckpointFormat.SafeTensors, CheckpointLoader.DetectFormat("x/model.safetensors"));
        Assert.Equal(CheckpointFormat.ShardedSafeTensors, CheckpointLoader.DetectFormat("x/model.safetensors.index.json"));
        Assert.Equal(CheckpointFormat.TorchSharp, CheckpointLoader.DetectFormat("x/weights.DAT"));
        Assert.Equal(CheckpointFormat.TorchSharp, CheckpointLoader.DetectFormat("x/weights.bin"));
        Assert.Throws<ArgumentException>(() => CheckpointLoader.DetectFormat("x/weights.pt"));
        using var model = new TestNet(1);
        Assert.Throws<NotSupportedException>(() =>
            CheckpointLoader.Save(model, _files.PathOf("m.dat"), new Dictionary<string, string> { ["a"] = "b" }));
    }

    [Fact]
    public void AFolderLoadsItsModelSafetensors()
    {
        using var source = new TestNet(30);
        CheckpointLoader.Save(source, Path.Combine(_files.Root, "model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" });
        using var target = new TestNet(31);
        Assert.True(CheckpointLoader.Load(target, _files.Root).IsExactMatch);
        var expected = Values(source);
        foreach (var (key, value) in Values(target)) Assert.Equal(expected[key], value);
    }

    [Fact]
    public void APyTorchPickleIsNamedAsSuch()
    {
        var path = _files.WriteBytes("pytorch_model.bin", new byte[] { (byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0 });
        using var model = new TestNet(1);
        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.Load(model, path));
        Assert.Contains("PyTorch pickle", error.Message);
    }
}
