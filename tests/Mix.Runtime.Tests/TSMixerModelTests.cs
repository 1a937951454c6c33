using System;
using System.Linq;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>The generated TSMixer (models/tsmixer.mix): shapes, keys, the zero-block case as a linear map over time
/// (against loops), gradients.</summary>
public class TSMixerModelTests
{
    [Fact]
    public void ProjectsTimeAxisToHorizon()
    {
        using var model = new Tsmixer(new Tsmixer.Options { SeqLen = 8, Channels = 3, PredLen = 5, NBlock = 2, FfDim = 6 });
        model.eval();
        using var x = torch.randn(2, 8, 3);
        using var y = model.forward(x);
        Assert.Equal(new long[] { 2, 5, 3 }, y.shape);
        var keys = model.state_dict().Keys.ToHashSet();
        Assert.Contains("blocks.1.temporal_linear.weight", keys);
        Assert.Contains("temporal_projection.weight", keys);
        Assert.Equal(new long[] { 5, 8 }, model.state_dict()["temporal_projection.weight"].shape);
    }

    [Fact]
    public void ZeroBlocksIsALinearMapOverTime()
    {
        using var model = new Tsmixer(new Tsmixer.Options { SeqLen = 4, Channels = 2, PredLen = 3, NBlock = 0 });
        RandomizeParameters(model, 3);
        model.to(ScalarType.Float64);
        var x = RandomArray(new Random(4), 4 * 2);
        using var xt = FromArray(x, new long[] { 1, 4, 2 });
        using var y = model.forward(xt);
        var p = ParameterArrays(model);
        var t = Loops.Linear(Loops.Transpose(x, 1, 4, 2), 2, 4, p["temporal_projection.weight"], p["temporal_projection.bias"], 3);
        AssertClose(Loops.Transpose(t, 1, 2, 3), ToArray(y), 1e-12);
    }

    [Fact]
    public void Backward()
    {
        using var model = new Tsmixer(new Tsmixer.Options { SeqLen = 6, Channels = 4, PredLen = 2, NBlock = 1, FfDim = 8 });
        using var x = torch.randn(3, 6, 4);
        using var y = model.forward(x);
        Assert.Equal(new long[] { 3, 2, 4 }, y.shape);
        using var loss = y.pow(2).mean();
        loss.backward();
        Assert.All(model.parameters(), p => Assert.NotNull(p.grad));
    }
}
