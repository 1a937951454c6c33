using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PatchMixerBlockTests
{
    // context 12, patch 4, stride 4 → 3 patches
    internal static readonly PatchTSMixerConfig Small = new()
    {
        ContextLength = 12, PatchLength = 4, PatchStride = 4, DModel = 4, NumInputChannels = 2, ExpansionFactor = 2,
        NumLayers = 2, Dropout = 0.3,
    };

    [Fact]
    public void MixesAlongPatchesWithGateAndResidual()
    {
        int B = 1, C = 2, P = 3, D = 4, hidden = 6;
        using var block = new PatchMixerBlock(Small);
        RandomizeParameters(block, 61, -1, 1);
        block.to(ScalarType.Float64);
        block.eval();
        var x = RandomArray(new Random(62), B * C * P * D);
        using var xt = FromArray(x, new long[] { B, C, P, D });
        using var y = block.forward(xt);
        var p = ParameterArrays(block);
        var n = Loops.LayerNorm(x, B * C * P, D, p["norm.norm.weight"], p["norm.norm.bias"], 1e-5);
        var t = Loops.Transpose(n, B * C, P, D);                                                // [.., D, P]
        var h = Loops.Map(Loops.Linear(t, B * C * D, P, p["mlp.fc1.weight"], p["mlp.fc1.bias"], hidden), Gelu);
        var m = Loops.Linear(h, B * C * D, hidden, p["mlp.fc2.weight"], p["mlp.fc2.bias"], P);
        var logits = Loops.Linear(m, B * C * D, P, p["gating_block.attn_layer.weight"], p["gating_block.attn_layer.bias"], P);
        for (int r = 0; r < B * C * D; r++)
        {
            double z = 0;
            for (int i = 0; i < P; i++) z += Math.Exp(logits[r * P + i]);
            for (int i = 0; i < P; i++) m[r * P + i] *= Math.Exp(logits[r * P + i]) / z;
        }
        var expected = Loops.Add(x, Loops.Transpose(m, B * C, D, P));
        AssertClose(expected, ToArray(y), 1e-12, 1e-12);
        Assert.Equal(new[] { "gating_block.attn_layer.bias", "gating_block.attn_layer.weight", "mlp.fc1.bias",
            "mlp.fc1.weight", "mlp.fc2.bias", "mlp.fc2.weight", "norm.norm.bias", "norm.norm.weight" },
            block.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
    }

    [Fact]
    public void SelfAttentionVariantHasHuggingFaceKeysAndRuns()
    {
        var cfg = new PatchTSMixerConfig
        {
            ContextLength = 12, PatchLength = 4, PatchStride = 4, DModel = 4, NumInputChannels = 2,
            SelfAttn = true, SelfAttnHeads = 2, GatedAttn = false,
        };
        using var block = new PatchMixerBlock(cfg);
        var keys = block.state_dict().Keys.ToHashSet();
        foreach (var k in new[] { "self_attn_layer.q_proj.weight", "self_attn_layer.k_proj.bias", "self_attn_layer.v_proj.weight",
                     "self_attn_layer.out_proj.weight", "norm_attn.norm.weight" })
            Assert.Contains(k, keys);
        Assert.DoesNotContain("gating_block.attn_layer.weight", keys);
        using var x = torch.randn(2, 2, 3, 4).requires_grad_(true);
        using var loss = block.forward(x).sum();
        loss.backward();
        Assert.NotNull(x.grad);
    }
}
