using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The catalog's second part, continued, against the official code: the standard library's <c>monarch_mixer</c> in the
/// zoo's <c>m2_bert</c> against HazyResearch/m2's <c>BertModel</c> (bidirectional filter, residual long conv,
/// block-diagonal GLU MLP with a padded block), and alone against <c>MonarchMixerSequenceMixing</c> (causal filter,
/// input LayerNorm, w_mod 2). Fixtures: tests/Mix.Runtime.Tests/Fixtures/parity, made by
/// tests/parity/make_catalog2b_fixtures.py on the CPU with the official code imported. Strict loading (every key, the
/// shared Sin frequency under each of its keys), fp32, max abs error ≤ 1e-4 × max(1, max |reference|).
/// </summary>
public class Catalog2bParityTests
{
    static JsonElement Config(string name) => HuggingFaceParityTests.Config(name);

    [Fact]
    public void Generated_m2_bert_matches_the_official_BertModel()
    {
        const string name = "m2_bert";
        var c = Config(name);
        Assert.True(c.GetProperty("monarch_mixer_sequence_mixing").GetBoolean());
        Assert.True(c.GetProperty("use_glu_mlp").GetBoolean());
        Assert.Equal(0.0, c.GetProperty("hidden_dropout_prob").GetDouble());
        using var model = new M2Bert(new M2Bert.Options
        {
            VocabSize = c.GetProperty("vocab_size").GetInt64(),
            HiddenSize = c.GetProperty("hidden_size").GetInt64(),
            NumHiddenLayers = c.GetProperty("num_hidden_layers").GetInt64(),
            IntermediateSize = c.GetProperty("intermediate_size").GetInt64(),
            MaxPositionEmbeddings = c.GetProperty("max_position_embeddings").GetInt64(),
            TypeVocabSize = c.GetProperty("type_vocab_size").GetInt64(),
            LayerNormEps = c.GetProperty("layer_norm_eps").GetDouble(),
            HiddenDropoutProb = 0.0,
            UsePositionalEncodings = c.GetProperty("use_positional_encodings").GetBoolean(),
            LongConvLMax = c.GetProperty("long_conv_l_max").GetInt64(),
            Bidirectional = c.GetProperty("bidirectional").GetBoolean(),
            HyenaW = c.GetProperty("hyena_w").GetDouble(),
            HyenaWMod = c.GetProperty("hyena_w_mod").GetDouble(),
            HyenaEmbDim = c.GetProperty("hyena_emb_dim").GetInt64(),
            HyenaFilterOrder = c.GetProperty("hyena_filter_order").GetInt64(),
            ResidualLongConv = c.GetProperty("residual_long_conv").GetBoolean(),
            HyenaTrainingAdditions = c.GetProperty("hyena_training_additions").GetBoolean(),
            UseMonarchMlp = c.GetProperty("use_monarch_mlp").GetBoolean(),
            MonarchMlpNblocks = c.GetProperty("monarch_mlp_nblocks").GetInt64(),
        });
        // One Sin frequency per filter, shared by its six activation slots (implicit_filter and implicit_filter_rev).
        var sd = model.state_dict();
        var freqs = sd.Where(kv => kv.Key.EndsWith(".freq")).ToList();
        Assert.Equal(24, freqs.Count);
        Assert.Equal(4, model.parameters().Count(p => p.shape.Length == 2 && p.shape[0] == 1 && p.shape[1] == c.GetProperty("hyena_filter_order").GetInt64()));
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read(name, "input_ids");
        Assert.True(ids.shape[1] < c.GetProperty("long_conv_l_max").GetInt64()); // the filter is cut to the sequence
        using var y = model.call(ids);
        using var reference = HuggingFaceParityTests.Read(name, "last_hidden_state");
        HuggingFaceParityTests.AssertClose(reference, y, "generated m2_bert last hidden state");
    }

    [Fact]
    public void Generated_monarch_mixer_matches_MonarchMixerSequenceMixing()
    {
        const string name = "m2_mixer_causal";
        var c = Config(name);
        Assert.False(c.GetProperty("bidirectional").GetBoolean());
        Assert.False(c.GetProperty("residual_long_conv").GetBoolean());
        Assert.True(c.GetProperty("hyena_training_additions").GetBoolean());
        using var model = new M2MixerCausal(new M2MixerCausal.Options
        {
            DModel = c.GetProperty("d_model").GetInt64(),
            LMax = c.GetProperty("l_max").GetInt64(),
            HyenaW = c.GetProperty("hyena_w").GetDouble(),
            HyenaWMod = c.GetProperty("hyena_w_mod").GetDouble(),
            HyenaEmbDim = c.GetProperty("hyena_emb_dim").GetInt64(),
            HyenaFilterOrder = c.GetProperty("hyena_filter_order").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated monarch_mixer output");
    }

    [Fact]
    public void Generated_lmu_fft_cell_matches_LMUFFTCell()
    {
        const string name = "lmu_cell";
        var c = Config(name);
        using var model = new LmuCell(new LmuCell.Options
        {
            InputSize = c.GetProperty("input_size").GetInt64(),
            HiddenSize = c.GetProperty("hidden_size").GetInt64(),
            MemorySize = c.GetProperty("memory_size").GetInt64(),
            SeqLen = c.GetProperty("seq_len").GetInt64(),
            Theta = c.GetProperty("theta").GetDouble(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        Assert.Equal(c.GetProperty("seq_len").GetInt64(), x.shape[1]); // the official forward needs L = seq_len
        using var h = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "h");
        HuggingFaceParityTests.AssertClose(reference, h, "generated lmu_fft_cell h");
        using var hn = HuggingFaceParityTests.Read(name, "h_n");
        HuggingFaceParityTests.AssertClose(hn, h.select(1, -1), "generated lmu_fft_cell h_n (the last step)");
    }

    [Fact]
    public void Generated_lmu_former_matches_the_official_ConvLMU()
    {
        const string name = "lmu_former";
        var c = Config(name);
        using var model = new LmuFormer(new LmuFormer.Options
        {
            InChannels = c.GetProperty("in_channels").GetInt64(),
            NumClasses = c.GetProperty("num_classes").GetInt64(),
            EmbedDims = c.GetProperty("embed_dims").GetInt64(),
            MlpRatios = c.GetProperty("mlp_ratios").GetDouble(),
            Depths = c.GetProperty("depths").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var logits = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "logits");
        HuggingFaceParityTests.AssertClose(reference, logits, "generated lmu_former logits");
    }
}
