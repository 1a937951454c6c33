using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

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
    public void DefaultConfigHasHuggingFaceKeys()
    {
        var cfg = new PatchTSMixerConfig();   // HF defaults: 32/8/8, d_model 8, 3 layers, common_channel, gated
        using var model = new PatchTSMixerModel(cfg);
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
    public void MixChannelBatchNormAndPositionalEncodingKeys()
    {
        var cfg = new PatchTSMixerConfig
        {
            NumInputChannels = 3, Mode = "mix_channel", NormMlp = "BatchNorm", UsePositionalEncoding = true, NumLayers = 1,
        };
        using var model = new PatchTSMixerModel(cfg);
        var keys = model.state_dict().Keys.ToHashSet();
        Assert.Contains("encoder.positional_encoder.position_enc", keys);
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.mlp.fc1.weight", keys);
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.gating_block.attn_layer.weight", keys);
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.patch_mixer.norm.norm.batchnorm.running_mean", keys);
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.feature_mixer.norm.norm.batchnorm.weight", keys);
        // sincos encoding is fixed
        var pe = model.named_parameters().Single(np => np.name == "encoder.positional_encoder.position_enc").parameter;
        Assert.False(pe.requires_grad);
        using var x = torch.randn(2, 32, 3);
        using var y = model.forward(x);
        Assert.Equal(new long[] { 2, 3, 4, 8 }, y.shape);
    }

    [Fact]
    public void ScalesPatchesAndEncodes()
    {
        var cfg = new PatchTSMixerConfig { ContextLength = 12, PatchLength = 4, PatchStride = 4, NumInputChannels = 2, DModel = 6 };
        using var model = new PatchTSMixerModel(cfg);
        model.eval();
        var x = RandomArray(new Random(91), 12 * 2);
        using var xt = FromArray(x, new long[] { 1, 12, 2 }, ScalarType.Float32);
        var (hidden, patches, loc, scale) = model.ForwardDetailed(xt, null);
        Assert.Equal(new long[] { 1, 2, 3, 6 }, hidden.shape);
        Assert.Equal(new long[] { 1, 2, 3, 4 }, patches.shape);
        // patch input = std-scaled history cut into windows
        var expected = new double[2 * 12];
        for (int c = 0; c < 2; c++)
        {
            double mean = 0, var = 0;
            for (int t = 0; t < 12; t++) mean += x[t * 2 + c] / 12;
            for (int t = 0; t < 12; t++) var += Math.Pow(x[t * 2 + c] - mean, 2) / 12;
            for (int t = 0; t < 12; t++) expected[c * 12 + t] = (x[t * 2 + c] - mean) / Math.Sqrt(var + 1e-5);
        }
        AssertClose(expected, ToArray(patches), 1e-5);
        using var y = model.forward(xt);
        AssertClose(hidden, y, 1e-6);
        hidden.Dispose(); patches.Dispose(); loc.Dispose(); scale.Dispose();
    }

    [Fact]
    public void BackwardReachesAllParametersAndConfigIsValidated()
    {
        var cfg = new PatchTSMixerConfig { NumInputChannels = 2, Mode = "mix_channel", NumLayers = 2, SelfAttn = true, SelfAttnHeads = 2 };
        using var model = new PatchTSMixerModel(cfg);
        using var x = torch.randn(3, 32, 2);
        using var loss = model.forward(x).pow(2).mean();
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.True(p.grad is not null, name);
        Assert.Throws<ArgumentException>(() => new PatchTSMixerModel(new PatchTSMixerConfig { Mode = "flatten" }));
        Assert.Throws<ArgumentException>(() => new PatchTSMixerModel(new PatchTSMixerConfig { ContextLength = 8 }));
    }
}
