using System;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PatchTSMixerGatedAttentionTests
{
    [Fact]
    public void MultipliesBySoftmaxOfLinear()
    {
        using var gate = new PatchTSMixerGatedAttention(3, 3);
        RandomizeParameters(gate, 51, -1, 1);
        gate.to(ScalarType.Float64);
        var x = RandomArray(new Random(52), 2 * 3);
        using var xt = FromArray(x, new long[] { 2, 3 });
        using var y = gate.forward(xt);
        var p = ParameterArrays(gate);
        var logits = Loops.Linear(x, 2, 3, p["attn_layer.weight"], p["attn_layer.bias"], 3);
        var expected = new double[6];
        for (int r = 0; r < 2; r++)
        {
            double max = Math.Max(logits[r * 3], Math.Max(logits[r * 3 + 1], logits[r * 3 + 2])), z = 0;
            for (int i = 0; i < 3; i++) z += Math.Exp(logits[r * 3 + i] - max);
            for (int i = 0; i < 3; i++) expected[r * 3 + i] = x[r * 3 + i] * Math.Exp(logits[r * 3 + i] - max) / z;
        }
        AssertClose(expected, ToArray(y), 1e-12);
    }
}
