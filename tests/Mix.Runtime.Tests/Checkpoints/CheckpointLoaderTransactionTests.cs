using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>A plain load that fails after it has started reading (the file shrinks under it) leaves the module exactly
/// as it was: every tensor is read before any is copied in.</summary>
public sealed class CheckpointLoaderTransactionTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    /// <summary>A safetensors file that another process truncates right after the loader's first read.</summary>
    private sealed class TruncatedAfterFirstRead(SafeTensorsFile file) : ICheckpointSource
    {
        private int _reads;

        public string Path => file.Path;
        public IReadOnlyList<string> Names => file.Names;
        public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info) => file.TryGetInfo(name, out info);

        public Tensor Read(string name, Device? device = null)
        {
            var t = file.Read(name, device);
            if (_reads++ == 0)
            {
                using var fs = new FileStream(file.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
                fs.SetLength(file.DataOffset);
            }
            return t;
        }

        public void Dispose() => file.Dispose();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ALoadThatFailsMidwayChangesNothing(bool strict)
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Windows does not let a file be truncated while it is open");
        var path = _files.PathOf("net.safetensors");
        using (var saved = new TestNet(1)) CheckpointLoader.Save(saved, path);
        using var net = new TestNet(2);
        using var x = torch.randn(3, 4);
        using var before = net.forward(x);
        var values = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        using var source = new TruncatedAfterFirstRead(SafeTensorsFile.Open(path));
        var e = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.Load(net, source, strict, convertDtypes: false));
        Assert.Contains("truncated or rewritten while being read", e.Message);

        foreach (var (key, value) in net.state_dict()) Assert.True(TestUtil.Same(value, values[key]), $"{key} changed");
        using var after = net.forward(x);
        Assert.True(TestUtil.Same(after, before));
    }

    [Fact]
    public void ASuccessfulLoadStillCopiesIntoTheSameParameterObjects()
    {
        var path = _files.PathOf("net.safetensors");
        using var saved = new TestNet(1);
        CheckpointLoader.Save(saved, path);
        using var net = new TestNet(2);
        var parameters = net.parameters().ToArray();
        CheckpointLoader.Load(net, path);
        Assert.True(parameters.Zip(net.parameters()).All(p => ReferenceEquals(p.First, p.Second)));
        foreach (var (key, value) in net.state_dict()) Assert.True(TestUtil.Same(value, saved.state_dict()[key]), key);
    }
}
