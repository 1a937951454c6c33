using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

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

    [Fact]
    public void KeysMatchHuggingFaceMambaModel()
    {
        using var model = new MambaModel(vocabSize: 20, hiddenSize: 16, stateSize: 4, numHiddenLayers: 2);
        Assert.Equal(BackboneKeys(2).OrderBy(k => k, StringComparer.Ordinal),
            model.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 20, 16 }, model.state_dict()["embeddings.weight"].shape);
    }

    [Fact]
    public void ForwardIsEmbeddingThenBlocksThenNorm()
    {
        using var model = new MambaModel(vocabSize: 10, hiddenSize: 8, stateSize: 4, numHiddenLayers: 2);
        using var ids = torch.tensor(new long[] { 1, 2, 3, 9, 0, 4 }).reshape(2, 3);
        using var y = model.forward(ids);
        Assert.Equal(new long[] { 2, 3, 8 }, y.shape);
        using var scope = torch.NewDisposeScope();
        var h = model.Embeddings.forward(ids);
        foreach (var layer in model.Layers) h = layer.forward(h);
        var manual = model.ForwardEmbeddings(model.Embeddings.forward(ids));
        AssertClose(manual, y, 1e-6);
    }
}
