using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>The generated PatchTSMixer (models/patchtsmixer.mix): Hugging Face PatchTSMixerModel's keys in both
/// channel modes, the std-scaled patches it mixes (against loops), gradients.</summary>
public class PatchTSMixerModelTests
{
    private static IEnumerable<string> MixerKeys(string prefix, bool gated = true)
    {
        foreach (var k in new[] { "norm.norm.weight", "norm.norm.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias" })
            yield return prefix + k;
        if (gated)
        {
            yield return prefix + "gating_block.attn_layer.weight";
            yield return prefix + "gating_block.attn_layer.bias";
        }
    }

    [Fact]
    public void HuggingFaceDefaultsHaveHuggingFaceKeys()
    {
        // HF defaults: context 32, patch 8/8, d_model 8, 3 layers, common_channel, gated.
        using var model = new Patchtsmixer(new Patchtsmixer.Options { DModel = 8, NumLayers = 3, NumChannels = 1 });
        var expected = new List<string> { "encoder.patcher.weight", "encoder.patcher.bias" };
        for (int i = 0; i < 3; i++)
        {
            expected.AddRange(MixerKeys($"encoder.mlp_mixer_encoder.mixers.{i}.patch_mixer."));
            expected.AddRange(MixerKeys($"encoder.mlp_mixer_encoder.mixers.{i}.feature_mixer."));
        }
        var sd = model.state_dict();
        Assert.Equal(expected.OrderBy(k => k, StringComparer.Ordinal), sd.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 8, 8 }, sd["encoder.patcher.weight"].shape);
        Assert.Equal(new long[] { 8, 4 }, sd["encoder.mlp_mixer_encoder.mixers.0.patch_mixer.mlp.fc1.weight"].shape);
        Assert.Equal(new long[] { 16, 8 }, sd["encoder.mlp_mixer_encoder.mixers.0.feature_mixer.mlp.fc1.weight"].shape);
    }

    [Fact]
    public void MixChannelKeys()
    {
        using var model = new Patchtsmixer(new Patchtsmixer.Options { NumChannels = 3, Mode = "mix_channel", NumLayers = 1 });
        var keys = model.state_dict().Keys.ToHashSet();
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.mlp.fc1.weight", keys);
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.gating_block.attn_layer.weight", keys);
        Assert.Equal(new long[] { 6, 3 }, model.state_dict()["encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.mlp.fc1.weight"].shape);
        using var x = torch.randn(2, 32, 3);
        using var y = model.forward(x);
        Assert.Equal(new long[] { 2, 3, 4, 16 }, y.shape);
    }

    [Fact]
    public void MixesStdScaledPatches()
    {
        // No layers: the output is the patch embedding of the std-scaled history cut into windows.
        using var model = new Patchtsmixer(new Patchtsmixer.Options { ContextLength = 12, PatchLength = 4, PatchStride = 4, NumChannels = 2, DModel = 6, NumLayers = 0 });
        model.eval();
        model.to(ScalarType.Float64);
        var x = RandomArray(new Random(91), 12 * 2);
        using var xt = FromArray(x, new long[] { 1, 12, 2 });
        using var noGrad = torch.no_grad();
        using var y = model.forward(xt);
        Assert.Equal(new long[] { 1, 2, 3, 6 }, y.shape);
        var scaled = new double[2 * 12];
        for (int c = 0; c < 2; c++)
        {
            double mean = 0, var = 0;
            for (int t = 0; t < 12; t++) mean += x[t * 2 + c] / 12;
            for (int t = 0; t < 12; t++) var += Math.Pow(x[t * 2 + c] - mean, 2) / 12;
            for (int t = 0; t < 12; t++) scaled[c * 12 + t] = (x[t * 2 + c] - mean) / Math.Sqrt(var + 1e-5);
        }
        var p = ParameterArrays(model);
        // patches [2 channels · 3 windows, 4] → Linear(4, 6)
        AssertClose(Loops.Linear(scaled, 6, 4, p["encoder.patcher.weight"], p["encoder.patcher.bias"], 6), ToArray(y), 1e-9);
    }

    [Fact]
    public void BackwardReachesAllParameters()
    {
        using var model = new Patchtsmixer(new Patchtsmixer.Options { NumChannels = 2, Mode = "mix_channel", NumLayers = 2 });
        using var x = torch.randn(3, 32, 2);
        using var loss = model.forward(x).pow(2).mean();
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.True(p.grad is not null, name);
    }
}
