using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Checkpoints;
using Mix.Runtime.Tests.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Parity;

/// <summary>
/// Numeric parity of <see cref="MambaModel"/> and <see cref="MambaForCausalLM"/> with Hugging Face transformers 5.17
/// (fixtures <c>mamba_model</c> and <c>mamba_causal_lm</c>): the C# model is built from the fixture's HF config,
/// loaded strictly from the HF state dict, and run in eval mode in fp32 on the fixture's token ids. Every output must
/// be within <see cref="ParityAssert.RelativeTolerance"/> (max abs error ≤ 1e-4 × max(1, max |reference|)).
/// </summary>
public sealed class MambaParityTests
{
    /// <summary>HF <c>MambaConfig</c> fields that define the eval-mode forward, and where each goes.</summary>
    private static readonly string[] MappedFields =
    {
        "vocab_size", "hidden_size", "state_size", "num_hidden_layers", "conv_kernel", "expand",
        "intermediate_size",   // derived by the runtime (expand · hidden_size); checked below
        "time_step_rank", "use_bias", "use_conv_bias", "hidden_act", "layer_norm_epsilon", "residual_in_fp32",
        "tie_word_embeddings", "initializer_range",
    };

    /// <summary>HF fields that do not change an eval-mode forward from loaded weights.</summary>
    private static readonly string[] IgnoredFields =
    {
        "bos_token_id", "eos_token_id", "pad_token_id",                  // tokenizer / generation only
        "rescale_prenorm_residual",                                        // initialisation only
        "time_step_floor", "time_step_init_scheme", "time_step_max",       // dt_proj initialisation only
        "time_step_min", "time_step_scale",
        "use_cache",                                                        // HF generation cache (decoding is tested below)
        "use_mambapy", "use_associative_scan",                             // which HF scan implementation runs; same math
        "model_type", "transformers_version",
    };

    internal static long TimeStepRank(HuggingFaceFixture f)
    {
        var v = f.Config.GetProperty("time_step_rank");
        return v.ValueKind == System.Text.Json.JsonValueKind.String && v.GetString() == "auto" ? -1 : v.GetInt64();
    }

    private static void CheckConfig(HuggingFaceFixture f)
    {
        f.AssertEveryConfigFieldIsAccountedFor(MappedFields, IgnoredFields);
        // The runtime derives intermediate_size = expand · hidden_size (as HF's MambaConfig does); a config that
        // overrides it would need a constructor parameter the models do not have.
        Assert.Equal(f.Long("expand") * f.Long("hidden_size"), f.Long("intermediate_size"));
    }

    internal static MambaModel BuildModel(HuggingFaceFixture f)
    {
        CheckConfig(f);
        return new MambaModel(
            vocabSize: f.Long("vocab_size"), hiddenSize: f.Long("hidden_size"), stateSize: f.Long("state_size"),
            numHiddenLayers: f.Long("num_hidden_layers"), layerNormEpsilon: f.Double("layer_norm_epsilon"),
            expand: f.Long("expand"), convKernel: f.Long("conv_kernel"), useBias: f.Bool("use_bias"),
            useConvBias: f.Bool("use_conv_bias"), hiddenAct: f.String("hidden_act"),
            initializerRange: f.Double("initializer_range"), residualInFp32: f.Bool("residual_in_fp32"),
            timeStepRank: TimeStepRank(f));
    }

    internal static MambaForCausalLM BuildLM(HuggingFaceFixture f)
    {
        CheckConfig(f);
        return new MambaForCausalLM(
            vocabSize: f.Long("vocab_size"), hiddenSize: f.Long("hidden_size"), stateSize: f.Long("state_size"),
            numHiddenLayers: f.Long("num_hidden_layers"), layerNormEpsilon: f.Double("layer_norm_epsilon"),
            expand: f.Long("expand"), convKernel: f.Long("conv_kernel"), useBias: f.Bool("use_bias"),
            useConvBias: f.Bool("use_conv_bias"), hiddenAct: f.String("hidden_act"),
            initializerRange: f.Double("initializer_range"), residualInFp32: f.Bool("residual_in_fp32"),
            timeStepRank: TimeStepRank(f), tieWordEmbeddings: f.Bool("tie_word_embeddings"));
    }

    /// <summary>Strict load of the fixture's weights into an LM. The fixture stores both tied keys
    /// (<c>lm_head.weight</c> and <c>backbone.embeddings.weight</c>, equal values); both are in the C# state dict too
    /// (one Parameter), so nothing is omitted and the load is strict.</summary>
    internal static MambaForCausalLM LoadedLM(HuggingFaceFixture f)
    {
        var model = BuildLM(f);
        var report = CheckpointLoader.Load(model, f.WeightsPath, strict: true);
        Assert.True(report.IsExactMatch);
        Assert.Equal(model.state_dict().Count, report.LoadedKeys.Count);
        model.eval();
        return model;
    }

    /// <summary>The head and the embeddings share storage (TorchSharp may hand out a new wrapper object per property
    /// read, so compare storage, not references).</summary>
    private static void AssertTied(MambaForCausalLM model)
    {
        Assert.True(model.TieWordEmbeddings);
        Assert.Equal(model.Backbone.Embeddings.weight!.storage<float>().data_ptr(), model.LmHead.weight!.storage<float>().data_ptr());
    }

    private static MambaRMSNorm FinalNorm(torch.nn.Module model, string prefix) =>
        (MambaRMSNorm)model.named_modules().Single(m => m.name == prefix + "norm_f").module;

    /// <summary>HF 5.x Mamba <c>hidden_states</c>: the output of every block, then the output after <c>norm_f</c>.</summary>
    private static List<Tensor> HiddenStates(MambaModel backbone, torch.nn.Module root, string prefix, Tensor ids)
    {
        var states = new List<Tensor>();
        var h = backbone.Embeddings.forward(ids);
        foreach (var layer in backbone.Layers)
        {
            var next = layer.forward(h);
            states.Add(next);
            h = next;
        }
        states.Add(FinalNorm(root, prefix).forward(h));
        return states;
    }

    [Fact]
    public void MambaModelMatchesHuggingFace()
    {
        using var f = HuggingFaceFixture.Open("mamba_model");
        Assert.Equal("MambaModel", f.HfClass);
        using var model = BuildModel(f);
        var report = CheckpointLoader.Load(model, f.WeightsPath, strict: true);
        Assert.Equal(model.state_dict().Count, report.LoadedKeys.Count);
        model.eval();

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = f.Read("input_ids");
        Assert.Equal(ScalarType.Int64, ids.dtype);
        ParityAssert.Matches(f.Read("last_hidden_state"), model.forward(ids), "mamba_model last_hidden_state");

        var names = f.HiddenStateNames;
        var states = HiddenStates(model, model, "", ids);
        Assert.Equal(names.Count, states.Count);
        for (int i = 0; i < names.Count; i++)
            ParityAssert.Matches(f.Read(names[i]), states[i], $"mamba_model {names[i]}");
    }

    [Fact]
    public void MambaForCausalLMMatchesHuggingFace()
    {
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        Assert.Equal("MambaForCausalLM", f.HfClass);
        Assert.True(f.Bool("tie_word_embeddings"));
        using var model = LoadedLM(f);
        // Tied: one Parameter under both keys, and the file's two copies were equal, so it holds the value of both.
        AssertTied(model);
        using (var file = SafeTensorsFile.Open(f.WeightsPath))
        using (var stored = file.Read("lm_head.weight"))
            Assert.True(stored.allclose(model.LmHead.weight!, rtol: 0, atol: 0));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = f.Read("input_ids");
        ParityAssert.Matches(f.Read("logits"), model.forward(ids), "mamba_causal_lm logits");

        var names = f.HiddenStateNames;
        var states = HiddenStates(model.Backbone, model, "backbone.", ids);
        Assert.Equal(names.Count, states.Count);
        for (int i = 0; i < names.Count; i++)
            ParityAssert.Matches(f.Read(names[i]), states[i], $"mamba_causal_lm {names[i]}");
    }

    /// <summary>
    /// HF's <c>save_pretrained</c> drops <c>lm_head.weight</c> when it is tied (this fixture keeps both keys, but real
    /// Hub checkpoints do not). A strict load of such a file names exactly that key as missing; the explicit handling
    /// is a non-strict load that asserts the only problem is the tied key, which the model fills through the tie.
    /// </summary>
    [Fact]
    public void CheckpointWithoutTiedHeadKeyIsHandledExplicitly()
    {
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        using var files = new TestFiles();
        var path = files.PathOf("no_lm_head.safetensors");
        using (var file = SafeTensorsFile.Open(f.WeightsPath))
        {
            var tensors = file.Names.Where(n => n != "lm_head.weight").Select(n => (n, file.Read(n))).ToList();
            SafeTensors.Save(path, tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }

        using var model = BuildLM(f);
        var error = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(model, path, strict: true));
        Assert.Equal(new[] { "lm_head.weight" }, error.Report.MissingKeys);
        Assert.Equal(1, error.Report.ProblemCount);

        var report = CheckpointLoader.Load(model, path, strict: false);
        Assert.Equal(new[] { "lm_head.weight" }, report.MissingKeys);
        Assert.Equal(1, report.ProblemCount);
        AssertTied(model);
        using (var file = SafeTensorsFile.Open(path))
        using (var embeddings = file.Read("backbone.embeddings.weight"))
            Assert.True(embeddings.allclose(model.LmHead.weight!, rtol: 0, atol: 0));   // the head got its value through the tie
        model.eval();

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        ParityAssert.Matches(f.Read("logits"), model.forward(f.Read("input_ids")), "mamba_causal_lm logits (tied key omitted)");
    }

    /// <summary>One <see cref="MambaBlock"/> on a prompt, keeping the mixer's decoding state.</summary>
    private static (Tensor h, Tensor conv, Tensor ssm) BlockPrefill(MambaBlock block, Tensor h)
    {
        var residual = block.ResidualInFp32 ? h.to_type(ScalarType.Float32) : h;
        var (y, conv, ssm) = block.Mixer.ForwardWithState(block.Norm.forward(h.to_type(block.Norm.Weight.dtype)));
        return (residual + y, conv, ssm);
    }

    /// <summary>One <see cref="MambaBlock"/> on one token through <see cref="MambaMixer.Step"/>.</summary>
    private static (Tensor h, Tensor conv, Tensor ssm) BlockStep(MambaBlock block, Tensor h, Tensor conv, Tensor ssm)
    {
        var residual = block.ResidualInFp32 ? h.to_type(ScalarType.Float32) : h;
        var (y, conv2, ssm2) = block.Mixer.Step(block.Norm.forward(h.to_type(block.Norm.Weight.dtype)), conv, ssm);
        return (residual + y, conv2, ssm2);
    }

    /// <summary>Logits <c>[batch, L, vocab]</c> from a prefill of the first <paramref name="prefill"/> tokens (none:
    /// decoding starts from zero states) and then one <see cref="MambaMixer.Step"/> per token and layer.</summary>
    private static Tensor DecodeLogits(MambaForCausalLM model, Tensor ids, int prefill)
    {
        var layers = model.Backbone.Layers.ToList();
        var normF = FinalNorm(model, "backbone.");
        long batch = ids.shape[0], L = ids.shape[1];
        var conv = new Tensor[layers.Count];
        var ssm = new Tensor[layers.Count];
        var pieces = new List<Tensor>();
        if (prefill > 0)
        {
            var h = model.Backbone.Embeddings.forward(ids.narrow(1, 0, prefill));
            for (int i = 0; i < layers.Count; i++) (h, conv[i], ssm[i]) = BlockPrefill(layers[i], h);
            pieces.Add(model.LmHead.forward(normF.forward(h)));
        }
        else
        {
            for (int i = 0; i < layers.Count; i++)
            {
                var m = layers[i].Mixer;
                conv[i] = torch.zeros(batch, m.IntermediateSize, m.ConvKernel);
                ssm[i] = torch.zeros(batch, m.IntermediateSize, m.StateSize);
            }
        }
        for (long t = prefill; t < L; t++)
        {
            var h = model.Backbone.Embeddings.forward(ids.select(1, t));   // [batch, hidden]
            for (int i = 0; i < layers.Count; i++) (h, conv[i], ssm[i]) = BlockStep(layers[i], h, conv[i], ssm[i]);
            pieces.Add(model.LmHead.forward(normF.forward(h)).unsqueeze(1));
        }
        return torch.cat(pieces, 1);
    }

    /// <summary>
    /// Token-by-token decoding with <see cref="MambaMixer"/>'s step API (prefill, then one step per token) reproduces
    /// the full-sequence logits, both the C# ones and HF's, within the parity tolerance; prefill lengths 0 (steps from
    /// zero states), 2 (shorter than the conv kernel) and 5 (longer).
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(5)]
    public void StepDecodingReproducesFullSequenceLogits(int prefill)
    {
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        using var model = LoadedLM(f);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = f.Read("input_ids");
        Assert.True(prefill < ids.shape[1]);
        var full = model.forward(ids);
        var decoded = DecodeLogits(model, ids, prefill);
        ParityAssert.Matches(full, decoded, $"decode (prefill {prefill}) vs C# full forward");
        ParityAssert.Matches(f.Read("logits"), decoded, $"decode (prefill {prefill}) vs HF logits");
    }
}

/// <summary>
/// Numeric parity of <see cref="PatchTSMixerModel"/> with Hugging Face transformers 5.17 <c>PatchTSMixerModel</c> in
/// both channel modes (fixtures <c>patchtsmixer_common_channel</c>, <c>patchtsmixer_mix_channel</c>): config from the
/// fixture, strict load, eval mode, fp32. Checks <c>last_hidden_state</c>, every <c>hidden_states.i</c> (HF: the output
/// of mixer layer i), <c>patch_input</c>, <c>loc</c> and <c>scale</c>, each within
/// <see cref="ParityAssert.RelativeTolerance"/>.
/// </summary>
public sealed class PatchTSMixerParityTests
{
    private static readonly string[] MappedFields =
    {
        "context_length", "patch_length", "patch_stride", "num_input_channels", "d_model", "num_layers",
        "expansion_factor", "dropout", "mode", "gated_attn", "norm_mlp", "self_attn", "self_attn_heads",
        "use_positional_encoding", "positional_encoding_type", "scaling", "norm_eps",
        "num_patches",   // derived by the runtime from context/patch length and stride; checked below
        "patch_last",    // the runtime always puts the patch axis last, as HF's PatchTSMixerPatchify does; checked below
    };

    /// <summary>HF fields that do not change <c>PatchTSMixerModel</c>'s forward (heads, pretraining masking —
    /// <c>PatchTSMixerModel(config)</c> has <c>mask_input=False</c> —, initialisation).</summary>
    private static readonly string[] IgnoredFields =
    {
        "distribution_output", "head_aggregation", "head_dropout", "loss", "num_parallel_samples", "num_targets",
        "output_range", "prediction_channel_indices", "prediction_length",
        "channel_consistent_masking", "mask_type", "mask_value", "masked_loss", "num_forecast_mask_patches",
        "random_mask_ratio", "unmasked_channel_indices",
        "init_std", "post_init",
        "model_type", "transformers_version",
    };

    /// <summary>HF <c>scaling</c>: "mean", "std" or <c>true</c> (= std); anything else (null, false, "none") = no scaling.</summary>
    private static string Scaling(HuggingFaceFixture f)
    {
        var v = f.Config.GetProperty("scaling");
        return v.ValueKind switch
        {
            System.Text.Json.JsonValueKind.True => "std",
            System.Text.Json.JsonValueKind.String when v.GetString() is "mean" or "std" => v.GetString()!,
            _ => "none",
        };
    }

    internal static PatchTSMixerConfig BuildConfig(HuggingFaceFixture f)
    {
        f.AssertEveryConfigFieldIsAccountedFor(MappedFields, IgnoredFields);
        var config = new PatchTSMixerConfig
        {
            ContextLength = f.Long("context_length"),
            PatchLength = f.Long("patch_length"),
            PatchStride = f.Long("patch_stride"),
            NumInputChannels = f.Long("num_input_channels"),
            DModel = f.Long("d_model"),
            NumLayers = f.Int("num_layers"),
            ExpansionFactor = f.Long("expansion_factor"),
            Dropout = f.Double("dropout"),
            Mode = f.String("mode"),
            GatedAttn = f.Bool("gated_attn"),
            NormMlp = f.String("norm_mlp"),
            SelfAttn = f.Bool("self_attn"),
            SelfAttnHeads = f.Long("self_attn_heads"),
            UsePositionalEncoding = f.Bool("use_positional_encoding"),
            PositionalEncodingType = f.String("positional_encoding_type"),
            Scaling = Scaling(f),
            NormEps = f.Double("norm_eps"),
        };
        config.Validate();
        Assert.Equal(f.Long("num_patches"), config.NumPatches);
        Assert.True(f.Bool("patch_last"));
        return config;
    }

    internal static PatchTSMixerModel Loaded(HuggingFaceFixture f)
    {
        var model = new PatchTSMixerModel(BuildConfig(f));
        var report = CheckpointLoader.Load(model, f.WeightsPath, strict: true);
        Assert.True(report.IsExactMatch);
        Assert.Equal(model.state_dict().Count, report.LoadedKeys.Count);
        model.eval();
        return model;
    }

    [Theory]
    [InlineData("patchtsmixer_common_channel")]
    [InlineData("patchtsmixer_mix_channel")]
    public void PatchTSMixerModelMatchesHuggingFace(string name)
    {
        using var f = HuggingFaceFixture.Open(name);
        Assert.Equal("PatchTSMixerModel", f.HfClass);
        using var model = Loaded(f);

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var pastValues = f.Read("past_values");
        var (hidden, patchInput, loc, scale) = model.ForwardDetailed(pastValues, null);
        ParityAssert.Matches(f.Read("last_hidden_state"), hidden, $"{name} last_hidden_state");
        ParityAssert.Matches(f.Read("patch_input"), patchInput, $"{name} patch_input");
        ParityAssert.Matches(f.Read("loc"), loc, $"{name} loc");
        ParityAssert.Matches(f.Read("scale"), scale, $"{name} scale");
        ParityAssert.Matches(f.Read("last_hidden_state"), model.forward(pastValues), $"{name} forward");

        // hidden_states.i: the output of mixer layer i, from the patch embedding of the patched input.
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var h = ((torch.nn.Module<Tensor, Tensor>)modules["encoder.patcher"]).forward(patchInput);
        if (modules.TryGetValue("encoder.positional_encoder", out var pe)) h = ((torch.nn.Module<Tensor, Tensor>)pe).forward(h);
        var names = f.HiddenStateNames;
        Assert.Equal(model.Config.NumLayers, names.Count);
        for (int i = 0; i < names.Count; i++)
        {
            h = ((PatchTSMixerLayer)modules[$"encoder.mlp_mixer_encoder.mixers.{i}"]).forward(h);
            ParityAssert.Matches(f.Read(names[i]), h, $"{name} {names[i]}");
        }
    }
}
