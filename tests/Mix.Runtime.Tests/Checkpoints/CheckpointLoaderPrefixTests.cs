using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary><see cref="CheckpointLoader.Load(nn.Module, string, string, bool, bool)"/>: a checkpoint's tensors under a
/// prefix load as the module's keys; tensors outside it are not read; a missing key under the prefix is still one.</summary>
public class CheckpointLoaderPrefixTests
{
    [Fact]
    public void Tensors_under_the_prefix_load_and_the_rest_is_left_alone()
    {
        using var files = new TestFiles();
        var path = files.PathOf("task.safetensors");
        using var source = nn.Linear(3, 2);
        using var head = torch.ones(5);
        SafeTensors.Save(path, source.state_dict().Select(kv => ("model." + kv.Key, kv.Value)).Append(("head.weight", head)));
        Assert.Equal(new[] { "head.weight", "model.bias", "model.weight" }, CheckpointLoader.Keys(path));

        using var target = nn.Linear(3, 2);
        Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(target, path));
        var report = CheckpointLoader.Load(target, path, "model.");
        Assert.True(report.IsExactMatch);
        Assert.Equal(new[] { "bias", "weight" }, report.LoadedKeys.OrderBy(k => k));
        Assert.True(target.weight!.equal(source.weight!).all().item<bool>());

        using var wider = nn.Linear(4, 2);
        var mismatch = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(wider, path, "model."));
        Assert.Contains("weight", mismatch.Report.ShapeMismatches.Select(m => m.Key));
    }
}
