using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>
/// Reads the Hugging Face fixtures made by tests/parity/make_fixtures.py (real safetensors files written by the Python
/// safetensors library) and checks them against what HF's Mamba and PatchTSMixer produce for the recorded configs.
/// </summary>
public sealed class ParityFixtureTests
{
    private static string Fixture(string file) =>
        Path.Combine(TestFiles.TestProjectDirectory(), "Fixtures", "parity", file);

    /// <summary>HF MambaModel's state dict for vocab V, hidden H, state N, L layers, conv K, expand E (no in/out
    /// projection bias, conv bias on): intermediate I = E·H, dt rank R = ceil(H/16).</summary>
    private static SortedDictionary<string, long[]> MambaKeys(string prefix, long v, long h, long n, int layers, long k, long e)
    {
        long i = e * h, r = (h + 15) / 16;
        var keys = new SortedDictionary<string, long[]>(StringComparer.Ordinal) { [prefix + "embeddings.weight"] = new[] { v, h }, [prefix + "norm_f.weight"] = new[] { h } };
        for (var l = 0; l < layers; l++)
        {
            var p = $"{prefix}layers.{l}.";
            keys[p + "norm.weight"] = new[] { h };
            keys[p + "mixer.A_log"] = new[] { i, n };
            keys[p + "mixer.D"] = new[] { i };
            keys[p + "mixer.conv1d.weight"] = new[] { i, 1, k };
            keys[p + "mixer.conv1d.bias"] = new[] { i };
            keys[p + "mixer.in_proj.weight"] = new[] { 2 * i, h };
            keys[p + "mixer.x_proj.weight"] = new[] { r + 2 * n, i };
            keys[p + "mixer.dt_proj.weight"] = new[] { i, r };
            keys[p + "mixer.dt_proj.bias"] = new[] { i };
            keys[p + "mixer.out_proj.weight"] = new[] { h, i };
        }
        return keys;
    }

    private static void AssertKeysAndShapes(SafeTensorsFile file, SortedDictionary<string, long[]> expected)
    {
        Assert.Equal(expected.Keys, file.Names);
        foreach (var (key, shape) in expected)
        {
            var info = file.Info(key);
            Assert.Equal("F32", info.DType);
            Assert.True(shape.SequenceEqual(info.Shape), $"{key}: expected {string.Join(",", shape)}, found {string.Join(",", info.Shape)}");
        }
    }

    [Fact]
    public void MambaModelWeightsHaveHuggingFaceKeysAndShapes()
    {
        using var file = SafeTensorsFile.Open(Fixture("mamba_model.weights.safetensors"));
        AssertKeysAndShapes(file, MambaKeys("", v: 64, h: 32, n: 8, layers: 2, k: 4, e: 2));
        Assert.Equal("MambaModel", file.Metadata["class"]);

        // The weights are the randomised ones, not HF's constant initial values.
        using var d = file.Read("layers.0.mixer.D");
        using var norm = file.Read("layers.1.norm.weight");
        Assert.True(d.std().item<float>() > 0.1f);
        Assert.True(norm.std().item<float>() > 0.05f);
        using var aLog = file.Read("layers.0.mixer.A_log");
        using var a = aLog.exp();
        Assert.InRange(a.min().item<float>(), 1f - 1e-5f, 16f);
        Assert.InRange(a.max().item<float>(), 1f, 16f + 1e-4f);
    }

    [Fact]
    public void MambaFixtureConfigAgreesWithTheWeights()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("mamba_model.config.json")));
        var config = doc.RootElement.GetProperty("config");
        Assert.Equal(64, config.GetProperty("vocab_size").GetInt32());
        Assert.Equal(32, config.GetProperty("hidden_size").GetInt32());
        Assert.Equal(8, config.GetProperty("state_size").GetInt32());
        Assert.Equal(2, config.GetProperty("num_hidden_layers").GetInt32());
        Assert.Equal(4, config.GetProperty("conv_kernel").GetInt32());
        Assert.Equal(64, config.GetProperty("intermediate_size").GetInt32());
        Assert.Equal(2, config.GetProperty("time_step_rank").GetInt32());
        var weights = doc.RootElement.GetProperty("weights").EnumerateObject().Select(p => p.Name);
        using var file = SafeTensorsFile.Open(Fixture("mamba_model.weights.safetensors"));
        Assert.Equal(weights, file.Names);
    }

    [Fact]
    public void MambaModelInputsAndOutputsAreThere()
    {
        using var io = SafeTensorsFile.Open(Fixture("mamba_model.io.safetensors"));
        Assert.Equal("I64", io.Info("input_ids").DType);
        Assert.Equal(new long[] { 2, 7 }, io.Info("input_ids").Shape);
        Assert.Equal(new long[] { 2, 7, 32 }, io.Info("last_hidden_state").Shape);
        using var ids = io.Read("input_ids");
        Assert.InRange(ids.min().item<long>(), 0, 63);
        Assert.InRange(ids.max().item<long>(), 0, 63);
        // HF returns the post-norm_f state as the last hidden_states element: bit-identical to last_hidden_state.
        var last = io.Names.Where(n => n.StartsWith("hidden_states.", StringComparison.Ordinal)).OrderBy(n => int.Parse(n["hidden_states.".Length..])).Last();
        using var a = io.Read(last);
        using var b = io.Read("last_hidden_state");
        Assert.Equal(b.bytes.ToArray(), a.bytes.ToArray());
    }

    [Fact]
    public void MambaForCausalLMHasBackbonePrefixAndTiedHead()
    {
        using var file = SafeTensorsFile.Open(Fixture("mamba_causal_lm.weights.safetensors"));
        var expected = MambaKeys("backbone.", v: 64, h: 32, n: 8, layers: 2, k: 4, e: 2);
        expected["lm_head.weight"] = new long[] { 64, 32 };
        AssertKeysAndShapes(file, expected);
        using var head = file.Read("lm_head.weight");
        using var embeddings = file.Read("backbone.embeddings.weight");
        Assert.Equal(embeddings.bytes.ToArray(), head.bytes.ToArray());

        using var io = SafeTensorsFile.Open(Fixture("mamba_causal_lm.io.safetensors"));
        Assert.Equal(new long[] { 2, 7, 64 }, io.Info("logits").Shape);
    }

    /// <summary>HF PatchTSMixerModel's state dict (LayerNorm, gated attention, no self-attention, no positional
    /// encoding): a patch embedding, then per layer a patch mixer (over P patches), a feature mixer (over d_model) and,
    /// in mix_channel mode, a channel mixer (over C channels); each mixer is norm, MLP with expansion X, gate.</summary>
    private static SortedDictionary<string, long[]> PatchTSMixerKeys(bool mixChannel, long patchLength, long patches,
        long channels, long dModel, int layers, long expansion)
    {
        var keys = new SortedDictionary<string, long[]>(StringComparer.Ordinal)
        {
            ["encoder.patcher.weight"] = new[] { dModel, patchLength },
            ["encoder.patcher.bias"] = new[] { dModel },
        };
        void Mixer(string p, long width)
        {
            keys[p + "norm.norm.weight"] = new[] { dModel };
            keys[p + "norm.norm.bias"] = new[] { dModel };
            keys[p + "mlp.fc1.weight"] = new[] { expansion * width, width };
            keys[p + "mlp.fc1.bias"] = new[] { expansion * width };
            keys[p + "mlp.fc2.weight"] = new[] { width, expansion * width };
            keys[p + "mlp.fc2.bias"] = new[] { width };
            keys[p + "gating_block.attn_layer.weight"] = new[] { width, width };
            keys[p + "gating_block.attn_layer.bias"] = new[] { width };
        }
        for (var l = 0; l < layers; l++)
        {
            var p = $"encoder.mlp_mixer_encoder.mixers.{l}.";
            Mixer(p + "patch_mixer.", patches);
            Mixer(p + "feature_mixer.", dModel);
            if (mixChannel) Mixer(p + "channel_feature_mixer.", channels);
        }
        return keys;
    }

    [Theory]
    [InlineData("patchtsmixer_common_channel", false)]
    [InlineData("patchtsmixer_mix_channel", true)]
    public void PatchTSMixerWeightsHaveHuggingFaceKeysAndShapes(string name, bool mixChannel)
    {
        using var weights = SafeTensorsFile.Open(Fixture(name + ".weights.safetensors"));
        AssertKeysAndShapes(weights, PatchTSMixerKeys(mixChannel, patchLength: 8, patches: 4, channels: 3, dModel: 16, layers: 2, expansion: 2));
        Assert.Equal("PatchTSMixerModel", weights.Metadata["class"]);

        using var io = SafeTensorsFile.Open(Fixture(name + ".io.safetensors"));
        Assert.Equal(new long[] { 2, 32, 3 }, io.Info("past_values").Shape);
        Assert.Equal(new long[] { 2, 3, 4, 16 }, io.Info("last_hidden_state").Shape); // [batch, channels, patches, d_model]
        Assert.Equal(new long[] { 2, 3, 4, 8 }, io.Info("patch_input").Shape);
        Assert.Equal(new long[] { 2, 1, 3 }, io.Info("scale").Shape);
        using var output = io.Read("last_hidden_state");
        Assert.False(output.isnan().any().item<bool>());
    }
}
