using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>The generated Mamba LM's backbone (models/mamba.mix) has Hugging Face MambaModel's keys and structure.</summary>
public class MambaModelTests
{
    internal static IEnumerable<string> BackboneKeys(int layers, string prefix = "")
    {
        yield return prefix + "embeddings.weight";
        for (int i = 0; i < layers; i++)
        {
            yield return $"{prefix}layers.{i}.norm.weight";
            foreach (var k in new[] { "A_log", "D", "conv1d.bias", "conv1d.weight", "dt_proj.bias", "dt_proj.weight",
                         "in_proj.weight", "out_proj.weight", "x_proj.weight" })
                yield return $"{prefix}layers.{i}.mixer.{k}";
        }
        yield return prefix + "norm_f.weight";
    }

    internal static Mamba130m Small(long vocab = 20, long dim = 16, long layers = 2) =>
        new(new Mamba130m.Options { VocabSize = vocab, DModel = dim, NLayer = layers, DState = 4 });

    [Fact]
    public void KeysMatchHuggingFaceMambaModel()
    {
        using var model = Small();
        Assert.Equal(BackboneKeys(2).OrderBy(k => k, StringComparer.Ordinal),
            model.backbone.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 20, 16 }, model.backbone.state_dict()["embeddings.weight"].shape);
    }

    [Fact]
    public void ForwardIsEmbeddingThenBlocksThenNorm()
    {
        using var model = Small(vocab: 10, dim: 8);
        model.eval();
        using var noGrad = torch.no_grad();
        using var ids = torch.tensor(new long[] { 1, 2, 3, 9, 0, 4 }).reshape(2, 3);
        using var y = model.backbone.call(ids);
        Assert.Equal(new long[] { 2, 3, 8 }, y.shape);
        using var scope = torch.NewDisposeScope();
        var children = model.backbone.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var h = children["embeddings"].call(ids);
        foreach (var (_, layer) in children["layers"].named_children()) h = ((nn.Module<Tensor, Tensor>)layer).call(h);
        AssertClose(children["norm_f"].call(h), y, 1e-6);
    }
}
