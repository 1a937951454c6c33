using System.Linq;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// Hydra's matrix-mixer family (mix/std/matrix_*.mix), JustDense's <c>@unused</c> layers and the zoo's
/// <c>hydra_bert</c>: official keys and shapes, the length rules of the fixed matrices, and the annotation's checks.
/// Numerical parity with the official code: Mix.Generator.Tests' MatrixMixerParityTests.
/// </summary>
public class MatrixMixerTests
{
    static MixCompilation Use(string mixer, string input) => Repo.Compile($$"""
        import "mix/std/mixers.mix"
        model m() (x: {{input}}) -> {{input}} {
          mixer = {{mixer}}
          return mixer(x)
        }
        """);

    static System.Collections.Generic.Dictionary<string, string> Keys(MixCompilation c) =>
        c.Find("m")!.Root!.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);

    [Theory]
    // d_model 16, expand 2, headdim 8 (4 heads), qk_dim 4 (d_state 16), max_seq_len 8, d_conv 3, as the fixtures.
    [InlineData("matrix_dense(dim = 16, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.M=[4, 8, 8]")]
    [InlineData("matrix_toeplitz_fixed(dim = 16, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.conv_params=[4, 15]")]
    [InlineData("matrix_toeplitz(dim = 16, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[72, 16]", "")]
    [InlineData("matrix_vandermonde_dft(dim = 16, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.dft_matrix=[8, 8]")]
    [InlineData("matrix_vandermonde_fixed(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.q_bias=[4, 4, 8], matrix_mixer.k_bias=[4, 4, 8]")]
    [InlineData("matrix_vandermonde(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, L, 16]", "[96, 16]", "")]
    [InlineData("matrix_cauchy_fixed(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.q_matrix=[8, 4, 4], matrix_mixer.k_matrix=[8, 4, 4]")]
    [InlineData("matrix_cauchy(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, L, 16]", "[96, 16]", "matrix_mixer.bias=[]")]
    [InlineData("matrix_low_rank_fixed(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.q_matrix=[8, 4, 4], matrix_mixer.k_matrix=[8, 4, 4]")]
    [InlineData("matrix_low_rank(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8)", "[B, L, 16]", "[96, 16]", "")]
    [InlineData("matrix_attention_fixed(dim = 16, qk_dim = 4, d_conv = 3, headdim = 8)", "[B, 4, 16]", "[64, 16]", "matrix_mixer.q_matrix=[4, 4, 4], matrix_mixer.k_matrix=[4, 4, 4]")]
    [InlineData("matrix_attention(dim = 16, qk_dim = 4, d_conv = 3, headdim = 8)", "[B, L, 16]", "[96, 16]", "")]
    [InlineData("matrix_quasiseparable(dim = 16, qk_dim = 4, d_conv = 3, headdim = 8, chunk_size = 4)", "[B, L, 16]", "[104, 16]", "matrix_mixer.dt_bias=[4], matrix_mixer.A_log=[4], matrix_mixer.D=[4], matrix_mixer.fc_D.weight=[4, 32]")]
    [InlineData("matrix_quasiseparable_fixed(dim = 16, qk_dim = 4, max_seq_len = 8, d_conv = 3, headdim = 8, chunk_size = 4)", "[B, 8, 16]", "[64, 16]", "matrix_mixer.BC=[8, 32], matrix_mixer.dt_bias=[4], matrix_mixer.A_log=[4], matrix_mixer.D=[4], matrix_mixer.fc_D.weight=[4, 32]")]
    public void Each_variant_has_the_official_keys(string mixer, string input, string inProj, string matrixKeys)
    {
        var c = Use(mixer, input);
        Assert.Empty(c.Diagnostics);
        var keys = Keys(c);
        // The shell's keys, as MatrixMixer's: in_proj [2·inner + the matrix's inputs, d_model], conv over all but z.
        Assert.Equal(inProj, keys["mixer.in_proj.weight"]);
        Assert.Equal("[32]", keys["mixer.norm.weight"]);
        Assert.Equal("[16, 32]", keys["mixer.out_proj.weight"]);
        Assert.StartsWith("[", keys["mixer.conv1d.weight"]);
        Assert.EndsWith(", 1, 3]", keys["mixer.conv1d.weight"]);
        var expected = matrixKeys.Split(", matrix_mixer.", System.StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('='))
            .ToDictionary(p => "mixer.matrix_mixer." + p[0].Replace("matrix_mixer.", ""), p => p[1]);
        var matrix = keys.Where(k => k.Key.StartsWith("mixer.matrix_mixer.", System.StringComparison.Ordinal)).ToDictionary(k => k.Key, k => k.Value);
        Assert.Equal(expected.OrderBy(k => k.Key), matrix.OrderBy(k => k.Key));
        Assert.Equal(5 + expected.Count, keys.Count); // in_proj, conv1d weight and bias, norm, out_proj + the matrix's
    }

    [Theory]
    [InlineData("matrix_dense(dim = 16, max_seq_len = 8, headdim = 8)", "[B, 7, 16]")]
    [InlineData("matrix_quasiseparable_fixed(dim = 16, qk_dim = 4, max_seq_len = 8, headdim = 8)", "[B, L, 16]")]
    [InlineData("matrix_toeplitz(dim = 16, max_seq_len = 8, headdim = 8)", "[B, 9, 16]")]
    [InlineData("matrix_attention_fixed(dim = 16, qk_dim = 4, headdim = 8)", "[B, 8, 16]")] // the length is the head count, 4
    public void A_fixed_matrix_takes_exactly_its_length(string mixer, string input)
    {
        var d = Assert.Single(Use(mixer, input).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
    }

    [Fact]
    public void Justdense_keeps_the_layers_its_forward_never_calls()
    {
        var c = Use("justdense(dim = 6, max_seq_len = 8, nheads = 3)", "[B, 8, 6]");
        Assert.Empty(c.Diagnostics); // no MIX0109: the layers are @unused
        var keys = Keys(c);
        Assert.Equal("[3, 8, 8]", keys["mixer.matrix_mixer.M"]);
        Assert.Equal("[12, 6]", keys["mixer.in_proj.weight"]);
        Assert.Equal("[6]", keys["mixer.norm.weight"]);
        Assert.Equal("[6]", keys["mixer.norm.bias"]);
        Assert.Equal("[6, 6]", keys["mixer.out_proj.weight"]);
        Assert.Equal(5, keys.Count);
    }

    const string Kept = """
        block b(dim: int) (x: [B, dim]) -> [B, dim] {
          @unused("the official module declares it") fc = linear(dim, dim)
          return x
        }
        """;

    [Fact]
    public void Unused_annotation_silences_MIX0109_and_keeps_the_weights()
    {
        var c = Repo.Compile(Kept);
        Assert.Empty(c.Diagnostics);
        Assert.Equal(new[] { "fc.weight", "fc.bias" }, c.Find("b")!.Root!.AllWeights().Select(w => w.Key));
        var unmarked = Assert.Single(Repo.Compile(Kept.Replace("@unused(\"the official module declares it\") ", "")).Diagnostics);
        Assert.Equal("MIX0109", unmarked.Id);
    }

    [Theory]
    [InlineData("@unused fc = linear(dim, dim)", "@unused")]
    [InlineData("@unused(\"\") fc = linear(dim, dim)", "@unused(\"\")")]
    [InlineData("@unused(why = \"kept\") fc = linear(dim, dim)", "@unused(why = \"kept\")")]
    [InlineData("@unsued(\"kept\") fc = linear(dim, dim)", "unsued")]
    public void Unused_annotation_needs_one_reason(string statement, string marked)
    {
        var text = Kept.Replace("@unused(\"the official module declares it\") fc = linear(dim, dim)", statement);
        var errors = Repo.Compile(text).Diagnostics.Where(d => d.Id == "MIX0108").ToList();
        var d = Assert.Single(errors);
        Assert.Equal(new Text.TextSpan(text.IndexOf(marked, System.StringComparison.Ordinal), marked.Length), d.Span);
    }

    [Fact]
    public void Hydra_bert_keys_are_the_official_BertForMaskedLM_keys()
    {
        var root = MixCompilation.Create(Repo.ExampleSources()).Find("hydra_bert")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight);
        Assert.Equal("[30522, 256]", keys["bert.embeddings.word_embeddings.weight"].ShapeText);
        Assert.Equal("[2, 256]", keys["bert.embeddings.token_type_embeddings.weight"].ShapeText);
        Assert.Equal("[256]", keys["bert.embeddings.LayerNorm.bias"].ShapeText);
        // Hydra: in_proj [2·512 + 4·64 + 2·8, 256], conv over x, B_f, C_f, B_b, C_b.
        Assert.Equal("[1296, 256]", keys["bert.encoder.layer.3.layer.mixer.in_proj.weight"].ShapeText);
        Assert.Equal("[768, 1, 7]", keys["bert.encoder.layer.0.layer.mixer.conv1d.weight"].ShapeText);
        Assert.Equal("[8, 512]", keys["bert.encoder.layer.0.layer.mixer.fc_D.weight"].ShapeText);
        Assert.Equal("[256]", keys["bert.encoder.layer.0.layer.norm.weight"].ShapeText);
        Assert.Equal("[256, 256]", keys["cls.predictions.transform.dense.weight"].ShapeText);
        Assert.Equal("[256]", keys["cls.predictions.transform.LayerNorm.weight"].ShapeText);
        Assert.Equal("bert.embeddings.word_embeddings.weight", keys["cls.predictions.decoder.weight"].TiedTo);
        Assert.Equal("[30522]", keys["cls.predictions.decoder.bias"].ShapeText);
        Assert.DoesNotContain(keys.Keys, k => k.Contains("norm_f") || k.Contains("position"));
    }
}
