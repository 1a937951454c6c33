using System;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class FeatureMixerBlockTests
{
    [Fact]
    public void MixesFeaturesWithGateAndResidual()
    {
        int rows = 2 * 3, D = 4, hidden = 8;
        using var block = new FeatureMixerBlock(PatchMixerBlockTests.Small);
        RandomizeParameters(block, 71, -1, 1);
        block.to(ScalarType.Float64);
        block.eval();
        var x = RandomArray(new Random(72), rows * D);
        using var xt = FromArray(x, new long[] { 1, 2, 3, D });
        using var y = block.forward(xt);
        var p = ParameterArrays(block);
        var n = Loops.LayerNorm(x, rows, D, p["norm.norm.weight"], p["norm.norm.bias"], 1e-5);
        var h = Loops.Map(Loops.Linear(n, rows, D, p["mlp.fc1.weight"], p["mlp.fc1.bias"], hidden), Gelu);
        var m = Loops.Linear(h, rows, hidden, p["mlp.fc2.weight"], p["mlp.fc2.bias"], D);
        var logits = Loops.Linear(m, rows, D, p["gating_block.attn_layer.weight"], p["gating_block.attn_layer.bias"], D);
        for (int r = 0; r < rows; r++)
        {
            double z = 0;
            for (int i = 0; i < D; i++) z += Math.Exp(logits[r * D + i]);
            for (int i = 0; i < D; i++) m[r * D + i] *= Math.Exp(logits[r * D + i]) / z;
        }
        AssertClose(Loops.Add(x, m), ToArray(y), 1e-12, 1e-12);
    }
}
