using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The catalog's second part against the official code: the standard library's <c>mamba2</c> (in the zoo's
/// <c>mamba2_lm</c>) against Hugging Face <c>Mamba2ForCausalLM</c>, and <c>gla</c> (alone, and in the zoo's
/// <c>gla_lm</c>) against flash-linear-attention's <c>GatedLinearAttention</c> / <c>GLAForCausalLM</c>, and
/// <c>hydra</c> against goombalab/hydra's <c>Hydra</c>, and the zoo's <c>softs</c> (library <c>star</c>) against
/// Secilia-Cxy/SOFTS. Fixtures:
/// tests/Mix.Runtime.Tests/Fixtures/parity, made by tests/parity/make_catalog2_fixtures.py on the GPU host (the
/// official code runs there). Strict loading, fp32, max abs error ≤ 1e-4 × max(1, max |reference|) (the bound of
/// <see cref="HuggingFaceParityTests"/>). A test whose fixture has not been made yet reports itself skipped, naming
/// the command that makes it; it never passes without comparing.
/// </summary>
public class Catalog2ParityTests
{
    static JsonElement Info(string name)
    {
        if (!File.Exists(HuggingFaceParityTests.Fixture(name + ".config.json")))
            Assert.Skip($"fixture {name} not made yet: run `python3 tests/parity/make_catalog2_fixtures.py --fla DIR --mamba DIR " +
                "--hydra DIR --softs DIR --only mamba2,gla` where torch ≥ 2.4, transformers and triton are installed (see tests/Mix.Runtime.Tests/Fixtures/parity/README.md)");
        using var doc = JsonDocument.Parse(File.ReadAllText(HuggingFaceParityTests.Fixture(name + ".config.json")));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void Generated_mamba2_lm_matches_Mamba2ForCausalLM()
    {
        const string name = "mamba2_causal_lm";
        var info = Info(name);
        var c = info.GetProperty("config");
        // HF's gated norm normalizes all channels at once (n_groups is 2 here): the zoo passes norm_group_size = expand·d.
        Assert.Equal(1, info.GetProperty("hf_gated_norm_groups").GetInt32());
        Assert.Equal(2, c.GetProperty("n_groups").GetInt64());
        Assert.Equal("silu", c.GetProperty("hidden_act").GetString());
        Assert.False(c.GetProperty("tie_word_embeddings").GetBoolean());
        long hidden = c.GetProperty("hidden_size").GetInt64(), expand = c.GetProperty("expand").GetInt64();
        Assert.Equal(hidden * expand, c.GetProperty("num_heads").GetInt64() * c.GetProperty("head_dim").GetInt64());
        var limit = c.GetProperty("time_step_limit");
        Assert.Equal(0.0, limit[0].GetDouble());
        using var model = new Mamba2Lm(new Mamba2Lm.Options
        {
            VocabSize = c.GetProperty("vocab_size").GetInt64(),
            DModel = hidden,
            NLayer = c.GetProperty("num_hidden_layers").GetInt64(),
            DState = c.GetProperty("state_size").GetInt64(),
            DConv = c.GetProperty("conv_kernel").GetInt64(),
            Expand = expand,
            Headdim = c.GetProperty("head_dim").GetInt64(),
            Ngroups = c.GetProperty("n_groups").GetInt64(),
            ChunkSize = c.GetProperty("chunk_size").GetInt64(),
            Bias = c.GetProperty("use_bias").GetBoolean(),
            ConvBias = c.GetProperty("use_conv_bias").GetBoolean(),
            Eps = c.GetProperty("layer_norm_epsilon").GetDouble(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read(name, "input_ids");
        Assert.True(ids.shape[1] > c.GetProperty("chunk_size").GetInt64()); // several chunks, the last one padded
        using var logits = model.call(ids);
        using var reference = HuggingFaceParityTests.Read(name, "logits");
        HuggingFaceParityTests.AssertClose(reference, logits, "generated mamba2_lm logits");
    }

    [Fact]
    public void Generated_gla_layer_matches_GatedLinearAttention()
    {
        const string name = "gla_layer";
        var c = Info(name).GetProperty("config");
        Assert.Equal(16, c.GetProperty("gate_logit_normalizer").GetInt64());
        Assert.True(c.GetProperty("fuse_norm").GetBoolean());
        using var model = new GlaLayer(new GlaLayer.Options
        {
            HiddenSize = c.GetProperty("hidden_size").GetInt64(),
            NumHeads = c.GetProperty("num_heads").GetInt64(),
            ExpandK = c.GetProperty("expand_k").GetDouble(),
            ExpandV = c.GetProperty("expand_v").GetDouble(),
            GateLowRankDim = c.GetProperty("gate_low_rank_dim").GetInt64(),
            NormEps = c.GetProperty("norm_eps").GetDouble(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var o = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "o");
        HuggingFaceParityTests.AssertClose(reference, o, "generated gla_layer output");
    }

    [Fact]
    public void Generated_gla_lm_matches_GLAForCausalLM()
    {
        const string name = "gla_causal_lm";
        var c = Info(name).GetProperty("config");
        Assert.Equal("swish", c.GetProperty("hidden_act").GetString());
        Assert.False(c.GetProperty("use_short_conv").GetBoolean());
        Assert.True(c.GetProperty("use_output_gate").GetBoolean());
        Assert.Equal(JsonValueKind.Null, c.GetProperty("feature_map").ValueKind);
        Assert.Equal(JsonValueKind.Null, c.GetProperty("clamp_min").ValueKind);
        Assert.False(c.GetProperty("tie_word_embeddings").GetBoolean());
        using var model = new GlaLm(new GlaLm.Options
        {
            VocabSize = c.GetProperty("vocab_size").GetInt64(),
            DModel = c.GetProperty("hidden_size").GetInt64(),
            NLayer = c.GetProperty("num_hidden_layers").GetInt64(),
            NumHeads = c.GetProperty("num_heads").GetInt64(),
            NumKvHeads = c.GetProperty("num_kv_heads").GetInt64(),
            ExpandK = c.GetProperty("expand_k").GetDouble(),
            ExpandV = c.GetProperty("expand_v").GetDouble(),
            IntermediateSize = c.GetProperty("intermediate_size").GetInt64(),
            Eps = c.GetProperty("norm_eps").GetDouble(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read(name, "input_ids");
        using var logits = model.call(ids);
        using var reference = HuggingFaceParityTests.Read(name, "logits");
        HuggingFaceParityTests.AssertClose(reference, logits, "generated gla_lm logits");
    }
    [Fact]
    public void Generated_hydra_layer_matches_Hydra()
    {
        const string name = "hydra_layer";
        var c = Info(name).GetProperty("config");
        using var model = new HydraLayer(new HydraLayer.Options
        {
            DModel = c.GetProperty("d_model").GetInt64(),
            DState = c.GetProperty("d_state").GetInt64(),
            DConv = c.GetProperty("d_conv").GetInt64(),
            Expand = c.GetProperty("expand").GetInt64(),
            Headdim = c.GetProperty("headdim").GetInt64(),
            Ngroups = c.GetProperty("ngroups").GetInt64(),
            ChunkSize = c.GetProperty("chunk_size").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var o = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "o");
        HuggingFaceParityTests.AssertClose(reference, o, "generated hydra_layer output");
    }
    [Fact]
    public void Generated_softs_matches_SOFTS()
    {
        const string name = "softs";
        var c = Info(name).GetProperty("config");
        Assert.Equal("gelu", c.GetProperty("activation").GetString());
        using var model = new Softs(new Softs.Options
        {
            SeqLen = c.GetProperty("seq_len").GetInt64(),
            PredLen = c.GetProperty("pred_len").GetInt64(),
            EncIn = c.GetProperty("enc_in").GetInt64(),
            DModel = c.GetProperty("d_model").GetInt64(),
            DCore = c.GetProperty("d_core").GetInt64(),
            DFf = c.GetProperty("d_ff").GetInt64(),
            ELayers = c.GetProperty("e_layers").GetInt64(),
            UseNorm = c.GetProperty("use_norm").GetBoolean(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x_enc");
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated softs forecast");
    }
    [Fact]
    public void Generated_mamba2_layer_matches_mamba_ssm_Mamba2()
    {
        const string name = "mamba2_layer";
        var info = Info(name);
        var c = info.GetProperty("config");
        Assert.False(c.GetProperty("use_mem_eff_path").GetBoolean());
        // mamba_ssm normalizes each of the ngroups groups: group size d_ssm / ngroups, the library's default.
        Assert.Equal(c.GetProperty("d_ssm").GetInt64() / c.GetProperty("ngroups").GetInt64(), info.GetProperty("norm_group_size").GetInt64());
        using var model = new Mamba2Layer(new Mamba2Layer.Options
        {
            DModel = c.GetProperty("d_model").GetInt64(),
            DState = c.GetProperty("d_state").GetInt64(),
            DConv = c.GetProperty("d_conv").GetInt64(),
            Expand = c.GetProperty("expand").GetInt64(),
            Headdim = c.GetProperty("headdim").GetInt64(),
            DSsm = c.GetProperty("d_ssm").GetInt64(),
            Ngroups = c.GetProperty("ngroups").GetInt64(),
            DHasHdim = c.GetProperty("D_has_hdim").GetBoolean(),
            ChunkSize = c.GetProperty("chunk_size").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var o = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "o");
        HuggingFaceParityTests.AssertClose(reference, o, "generated mamba2_layer output");
    }
}
