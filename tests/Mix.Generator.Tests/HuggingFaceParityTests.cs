using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The GENERATED classes (compiled into this project from models/*.mix) against Hugging Face transformers:
/// each is built with the fixture's config, loads the fixture's state dict with strict loading (so the generated keys
/// are exactly HF's), runs an eval fp32 forward on the fixture's inputs and must reproduce HF's outputs within
/// max abs error ≤ 1e-4 × max(1, max |reference|). Fixtures: tests/Mix.Runtime.Tests/Fixtures/parity (see its README).
/// </summary>
public class HuggingFaceParityTests
{
    const double RelativeTolerance = 1e-4;

    internal static string Fixture(string file) => Path.Combine(Harness.RepoRoot(), "tests", "Mix.Runtime.Tests", "Fixtures", "parity", file);

    internal static JsonElement Config(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture(name + ".config.json")));
        return doc.RootElement.GetProperty("config").Clone();
    }

    internal static Tensor Read(string name, string tensor)
    {
        using var io = SafeTensorsFile.Open(Fixture(name + ".io.safetensors"));
        return io.Read(tensor);
    }

    internal static void Load(nn.Module model, string name)
    {
        var report = CheckpointLoader.Load(model, Fixture(name + ".weights.safetensors"), strict: true);
        Assert.True(report.IsExactMatch);
        Assert.Equal(model.state_dict().Count, report.LoadedKeys.Count);
    }

    internal static void AssertClose(Tensor reference, Tensor actual, string what)
    {
        Assert.True(reference.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}], reference [{string.Join(", ", reference.shape)}]");
        Assert.Equal(reference.dtype, actual.dtype);
        using var scope = torch.NewDisposeScope();
        var r = reference.detach().to_type(ScalarType.Float64);
        var a = actual.detach().to_type(ScalarType.Float64);
        Assert.False(a.isnan().any().item<bool>(), $"{what}: NaN in the output");
        double maxRef = r.abs().max().item<double>();
        double maxErr = (a - r).abs().max().item<double>();
        double bound = RelativeTolerance * Math.Max(1.0, maxRef);
        TestContext.Current.TestOutputHelper?.WriteLine($"{what}: max abs error {maxErr:G3} (max |ref| {maxRef:G4}, bound {bound:G3})");
        Assert.True(maxErr <= bound, $"{what}: max abs error {maxErr:G6} > {bound:G6} (max |reference| {maxRef:G6})");
    }

    [Fact]
    public void Generated_mamba_130m_matches_MambaForCausalLM()
    {
        const string name = "mamba_causal_lm";
        var c = Config(name);
        Assert.Equal(1e-5, c.GetProperty("layer_norm_epsilon").GetDouble()); // the .mix rmsnorm default
        Assert.Equal(c.GetProperty("expand").GetInt64() * c.GetProperty("hidden_size").GetInt64(), c.GetProperty("intermediate_size").GetInt64());
        Assert.False(c.GetProperty("use_bias").GetBoolean());
        Assert.True(c.GetProperty("use_conv_bias").GetBoolean());
        // The .mix leaves dt_rank to the mixer's default, ceil(d_model / 16): HF's "auto" (stored resolved).
        Assert.Equal((c.GetProperty("hidden_size").GetInt64() + 15) / 16, c.GetProperty("time_step_rank").GetInt64());
        Assert.Equal("silu", c.GetProperty("hidden_act").GetString());
        using var model = new Mamba130m(new Mamba130m.Options
        {
            VocabSize = c.GetProperty("vocab_size").GetInt64(),
            DModel = c.GetProperty("hidden_size").GetInt64(),
            NLayer = c.GetProperty("num_hidden_layers").GetInt64(),
            DState = c.GetProperty("state_size").GetInt64(),
            DConv = c.GetProperty("conv_kernel").GetInt64(),
            Expand = c.GetProperty("expand").GetInt64(),
        });
        Load(model, name);
        Assert.Equal(new long[] { 64, 2 }, model.state_dict()["backbone.layers.0.mixer.dt_proj.weight"].shape);
        model.eval();
        using var _ = torch.no_grad();
        using var ids = Read(name, "input_ids");
        using var logits = model.call(ids);
        using var reference = Read(name, "logits");
        AssertClose(reference, logits, "generated mamba_130m logits");
    }

    [Theory]
    [InlineData("patchtsmixer_common_channel", false)]
    [InlineData("patchtsmixer_mix_channel", true)]
    public void Generated_patchtsmixer_matches_PatchTSMixerModel(string name, bool aliasClass)
    {
        var c = Config(name);
        Assert.Equal("std", c.GetProperty("scaling").GetString());
        Assert.Equal("LayerNorm", c.GetProperty("norm_mlp").GetString());
        Assert.Equal(1e-5, c.GetProperty("norm_eps").GetDouble());
        Assert.False(c.GetProperty("use_positional_encoding").GetBoolean());
        Assert.False(c.GetProperty("self_attn").GetBoolean());
        Assert.True(c.GetProperty("patch_last").GetBoolean());
        var options = new Patchtsmixer.Options
        {
            ContextLength = c.GetProperty("context_length").GetInt64(),
            PatchLength = c.GetProperty("patch_length").GetInt64(),
            PatchStride = c.GetProperty("patch_stride").GetInt64(),
            NumChannels = c.GetProperty("num_input_channels").GetInt64(),
            DModel = c.GetProperty("d_model").GetInt64(),
            NumLayers = c.GetProperty("num_layers").GetInt64(),
            Expansion = c.GetProperty("expansion_factor").GetInt64(),
            Drop = c.GetProperty("dropout").GetDouble(),
            Mode = c.GetProperty("mode").GetString()!,
            GatedAttn = c.GetProperty("gated_attn").GetBoolean(),
        };
        // patchtsmixer_mix_channel() = patchtsmixer(mode = mix_channel): its defaults are the fixture's config.
        using nn.Module<Tensor, Tensor> model = aliasClass ? new PatchtsmixerMixChannel() : new Patchtsmixer(options);
        Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var past = Read(name, "past_values");
        using var hidden = model.call(past);
        using var reference = Read(name, "last_hidden_state");
        AssertClose(reference, hidden, $"generated {(aliasClass ? "patchtsmixer_mix_channel" : "patchtsmixer")} last_hidden_state");
    }

    [Fact]
    public void Generated_hybrid_lm_builds_and_runs_causally()
    {
        using var model = new HybridLm(new HybridLm.Options { VocabSize = 50, DModel = 64, NLayer = 4, AttnEvery = 2 });
        model.eval();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7);
        var ids = torch.randint(0, 50, new long[] { 2, 6 }, dtype: ScalarType.Int64);
        var logits = model.call(ids);
        Assert.Equal(new long[] { 2, 6, 50 }, logits.shape);
        Assert.False(logits.isnan().any().item<bool>());
        // Causal: changing the last token leaves every earlier position's logits unchanged.
        var changed = ids.clone();
        changed[.., 5] = (ids[.., 5] + 1) % 50;
        var other = model.call(changed);
        Assert.True(other[.., ..5].allclose(logits[.., ..5], rtol: 0, atol: 1e-6));
        Assert.False(other[.., 5].allclose(logits[.., 5], rtol: 0, atol: 1e-6));
    }
}
