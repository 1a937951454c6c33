using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class TSMixerModelTests
{
    [Fact]
    public void ProjectsTimeAxisToHorizon()
    {
        using var model = new TSMixerModel(seqLen: 8, numFeatures: 3, predLen: 5, nBlock: 2, ffDim: 6, normType: "L");
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
        using var model = new TSMixerModel(seqLen: 4, numFeatures: 2, predLen: 3, nBlock: 0);
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
    public void TargetSliceAndBackward()
    {
        using var model = new TSMixerModel(seqLen: 6, numFeatures: 4, predLen: 2, nBlock: 1, ffDim: 8,
            targetSliceStart: 1, targetSliceLength: 2);
        using var x = torch.randn(3, 6, 4);
        using var y = model.forward(x);
        Assert.Equal(new long[] { 3, 2, 2 }, y.shape);
        using var loss = y.pow(2).mean();
        loss.backward();
        Assert.All(model.parameters(), p => Assert.NotNull(p.grad));
    }
}
