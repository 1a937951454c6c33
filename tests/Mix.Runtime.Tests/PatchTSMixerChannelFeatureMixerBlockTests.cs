using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PatchTSMixerChannelFeatureMixerBlockTests
{
    [Fact]
    public void GatesThenMixesAcrossChannels()
    {
        var cfg = new PatchTSMixerConfig
        {
            ContextLength = 12, PatchLength = 4, PatchStride = 4, DModel = 2, NumInputChannels = 3, Mode = "mix_channel",
        };
        int C = 3, P = 3, D = 2, hidden = 6;
        using var block = new PatchTSMixerChannelFeatureMixerBlock(cfg);
        RandomizeParameters(block, 81, -1, 1);
        block.to(ScalarType.Float64);
        block.eval();
        var x = RandomArray(new Random(82), C * P * D);
        using var xt = FromArray(x, new long[] { 1, C, P, D });
        using var y = block.forward(xt);
        var p = ParameterArrays(block);
        var n = Loops.LayerNorm(x, C * P, D, p["norm.norm.weight"], p["norm.norm.bias"], 1e-5);
        var expected = (double[])x.Clone();
        for (int pi = 0; pi < P; pi++)
        for (int d = 0; d < D; d++)
        {
            var v = Enumerable.Range(0, C).Select(c => n[(c * P + pi) * D + d]).ToArray();
            var logits = Loops.Linear(v, 1, C, p["gating_block.attn_layer.weight"], p["gating_block.attn_layer.bias"], C);
            double z = logits.Sum(Math.Exp);
            var g = v.Select((val, i) => val * Math.Exp(logits[i]) / z).ToArray();
            var h = Loops.Map(Loops.Linear(g, 1, C, p["mlp.fc1.weight"], p["mlp.fc1.bias"], hidden), Gelu);
            var m = Loops.Linear(h, 1, hidden, p["mlp.fc2.weight"], p["mlp.fc2.bias"], C);
            for (int c = 0; c < C; c++) expected[(c * P + pi) * D + d] += m[c];
        }
        AssertClose(expected, ToArray(y), 1e-12, 1e-12);
    }
}
