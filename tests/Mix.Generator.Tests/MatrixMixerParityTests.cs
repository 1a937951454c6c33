using System;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Hydra's matrix-mixer family (mix/std/matrix_mixer.mix), JustDense and the zoo's <c>hydra_bert</c> against the
/// official code: goombalab/hydra <c>MatrixMixer</c> for every (matrix_mixer_type, is_data_dependent) pair, JustDense's
/// <c>MatrixMixer("dense")</c>, and Hydra's <c>BertForMaskedLM</c>. Fixtures in tests/Mix.Runtime.Tests/Fixtures/parity,
/// made by tests/parity/make_matrix_mixer_fixtures.py (every parameter re-drawn); strict loading, fp32, max abs error
/// ≤ 1e-4 × max(1, max |reference|).
/// </summary>
public class MatrixMixerParityTests
{
    static nn.Module<Tensor, Tensor> Create(string fixture) => fixture switch
    {
        "mm_dense" => new MmDense(),
        "mm_toeplitz_fixed" => new MmToeplitzFixed(),
        "mm_toeplitz" => new MmToeplitz(),
        "mm_vandermonde_dft" => new MmVandermondeDft(),
        "mm_vandermonde_fixed" => new MmVandermondeFixed(),
        "mm_vandermonde" => new MmVandermonde(),
        "mm_cauchy_fixed" => new MmCauchyFixed(),
        "mm_cauchy" => new MmCauchy(),
        "mm_low_rank_fixed" => new MmLowRankFixed(),
        "mm_low_rank" => new MmLowRank(),
        "mm_attention_fixed" => new MmAttentionFixed(),
        "mm_attention" => new MmAttention(),
        "mm_quasiseparable_fixed" => new MmQuasiseparableFixed(),
        "mm_quasiseparable" => new MmQuasiseparable(),
        "justdense" => new JustdenseLayer(),
        _ => throw new ArgumentException(fixture),
    };

    [Theory]
    [InlineData("mm_dense", "dense", false)]
    [InlineData("mm_toeplitz_fixed", "toeplitz", false)]
    [InlineData("mm_toeplitz", "toeplitz", true)]
    [InlineData("mm_vandermonde_dft", "vandermonde", false)]
    [InlineData("mm_vandermonde_fixed", "vandermonde", false)]
    [InlineData("mm_vandermonde", "vandermonde", true)]
    [InlineData("mm_cauchy_fixed", "cauchy", false)]
    [InlineData("mm_cauchy", "cauchy", true)]
    [InlineData("mm_low_rank_fixed", "low_rank", false)]
    [InlineData("mm_low_rank", "low_rank", true)]
    [InlineData("mm_attention_fixed", "attention", false)]
    [InlineData("mm_attention", "attention", true)]
    [InlineData("mm_quasiseparable_fixed", "quasiseparable", false)]
    [InlineData("mm_quasiseparable", "quasiseparable", true)]
    public void Library_matrix_mixer_matches_official_MatrixMixer(string fixture, string type, bool dataDependent)
    {
        var c = HuggingFaceParityTests.Config(fixture);
        // The test models (Models/matrix_mixers.mix) are written at this configuration.
        Assert.Equal(type, c.GetProperty("matrix_mixer_type").GetString());
        Assert.Equal(dataDependent, c.GetProperty("is_data_dependent").GetBoolean());
        Assert.Equal(16, c.GetProperty("d_model").GetInt64());
        Assert.Equal(2, c.GetProperty("expand").GetInt64());
        Assert.Equal(8, c.GetProperty("headdim").GetInt64());
        Assert.Equal(4, c.GetProperty("qk_dim").GetInt64());
        Assert.Equal(3, c.GetProperty("d_conv").GetInt64());
        Assert.Equal(4, c.GetProperty("chunk_size").GetInt64());
        Assert.Equal(fixture == "mm_attention_fixed" ? 4 : 8, c.GetProperty("max_seq_len").GetInt64());
        if (type == "vandermonde" && !dataDependent)
            Assert.Equal(fixture == "mm_vandermonde_dft", c.GetProperty("is_dft").GetBoolean());
        using var model = Create(fixture);
        HuggingFaceParityTests.Load(model, fixture);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(fixture, "x");
        using var o = model.call(x);
        using var reference = HuggingFaceParityTests.Read(fixture, "o");
        HuggingFaceParityTests.AssertClose(reference, o, fixture);
    }

    [Fact]
    public void Library_justdense_matches_JustDense_and_keeps_its_unused_layers()
    {
        const string name = "justdense";
        var c = HuggingFaceParityTests.Config(name);
        Assert.Equal("dense", c.GetProperty("matrix_mixer_type").GetString());
        Assert.Equal(6, c.GetProperty("d_model").GetInt64());
        Assert.Equal(3, c.GetProperty("nheads").GetInt64());
        Assert.Equal(8, c.GetProperty("max_seq_len").GetInt64());
        using var model = Create(name);
        // The official module's in_proj, norm (a LayerNorm) and out_proj are never called, but their keys load.
        var keys = model.state_dict().Keys;
        Assert.Contains("in_proj.weight", keys);
        Assert.Contains("norm.weight", keys);
        Assert.Contains("norm.bias", keys);
        Assert.Contains("out_proj.weight", keys);
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var o = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "o");
        HuggingFaceParityTests.AssertClose(reference, o, "justdense");
    }

    [Fact]
    public void Zoo_hydra_bert_matches_official_BertForMaskedLM()
    {
        const string name = "hydra_bert";
        var c = HuggingFaceParityTests.Config(name);
        Assert.Equal("hydra", c.GetProperty("matrix_mixer_type").GetString());
        Assert.False(c.GetProperty("use_position_embeddings").GetBoolean());
        Assert.Equal("gelu", c.GetProperty("hidden_act").GetString());
        using var model = new HydraBert(new HydraBert.Options
        {
            VocabSize = c.GetProperty("vocab_size").GetInt64(),
            HiddenSize = c.GetProperty("hidden_size").GetInt64(),
            NumHiddenLayers = c.GetProperty("num_hidden_layers").GetInt64(),
            MaxPositionEmbeddings = c.GetProperty("max_position_embeddings").GetInt64(),
            TypeVocabSize = c.GetProperty("type_vocab_size").GetInt64(),
            LayerNormEps = c.GetProperty("layer_norm_eps").GetDouble(),
            IsPrenorm = c.GetProperty("is_prenorm").GetBoolean(),
            DState = c.GetProperty("d_state").GetInt64(),
            DConv = c.GetProperty("d_conv").GetInt64(),
            Expand = c.GetProperty("expand").GetInt64(),
            Headdim = c.GetProperty("headdim").GetInt64(),
            ChunkSize = c.GetProperty("chunk_size").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read(name, "input_ids");
        using var logits = model.call(ids);
        using var reference = HuggingFaceParityTests.Read(name, "logits");
        HuggingFaceParityTests.AssertClose(reference, logits, "hydra_bert logits");
    }
}
