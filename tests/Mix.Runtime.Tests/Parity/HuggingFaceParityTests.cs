using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Checkpoints;
using Mix.Zoo;
using Mix.Runtime.Tests.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Parity;

/// <summary>
/// Numeric parity of the zoo's generated Mamba LM (<see cref="Mamba130m"/>, models/mamba.mix) with Hugging Face
/// transformers 5.17 (fixtures <c>mamba_model</c> and <c>mamba_causal_lm</c>): the model is built from the fixture's HF
/// config, loaded strictly from the HF state dict (<c>MambaModel</c>'s keys into its <c>backbone</c>, whose keys are
/// exactly those; <c>MambaForCausalLM</c>'s into the whole model), and run in eval mode in fp32 on the fixture's token
/// ids. Every output must be within <see cref="ParityAssert.RelativeTolerance"/> (max abs error ≤ 1e-4 × max(1, max |reference|)).
/// </summary>
public sealed class MambaParityTests
{
    /// <summary>HF <c>MambaConfig</c> fields that define the eval-mode forward, and where each goes.</summary>
    private static readonly string[] MappedFields =
    {
        "vocab_size", "hidden_size", "state_size", "num_hidden_layers", "conv_kernel", "expand",
        "intermediate_size",   // = expand · hidden_size in mamba.mix; checked below
        "time_step_rank",      // = ceil(hidden_size / 16), the mixer's default; checked below
        "use_bias", "use_conv_bias", "hidden_act", "layer_norm_epsilon", // mamba.mix's fixed choices; checked below
        "residual_in_fp32",    // no effect in an fp32 forward
        "tie_word_embeddings", // @tied in mamba.mix; checked below
        "initializer_range",   // initialisation only (the weights are loaded)
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

    private static void CheckConfig(HuggingFaceFixture f)
    {
        f.AssertEveryConfigFieldIsAccountedFor(MappedFields, IgnoredFields);
        Assert.Equal(f.Long("expand") * f.Long("hidden_size"), f.Long("intermediate_size"));
        Assert.Equal((f.Long("hidden_size") + 15) / 16, f.Long("time_step_rank"));
        Assert.False(f.Bool("use_bias"));
        Assert.True(f.Bool("use_conv_bias"));
        Assert.Equal("silu", f.String("hidden_act"));
        Assert.Equal(1e-5, f.Double("layer_norm_epsilon"));
        Assert.True(f.Bool("tie_word_embeddings"));
    }

    internal static Mamba130m BuildLM(HuggingFaceFixture f)
    {
        CheckConfig(f);
        return new Mamba130m(new Mamba130m.Options
        {
            VocabSize = f.Long("vocab_size"), DModel = f.Long("hidden_size"), DState = f.Long("state_size"),
            NLayer = f.Long("num_hidden_layers"), DConv = f.Long("conv_kernel"), Expand = f.Long("expand"),
        });
    }

    /// <summary>Strict load of the fixture's weights into the LM. The fixture stores both tied keys
    /// (<c>lm_head.weight</c> and <c>backbone.embeddings.weight</c>, equal values); both are in the state dict too
    /// (one Parameter), so nothing is omitted and the load is strict.</summary>
    internal static Mamba130m LoadedLM(HuggingFaceFixture f)
    {
        var model = BuildLM(f);
        var report = CheckpointLoader.Load(model, f.WeightsPath, strict: true);
        Assert.True(report.IsExactMatch);
        Assert.Equal(model.state_dict().Count, report.LoadedKeys.Count);
        model.eval();
        return model;
    }

    /// <summary>The head and the embeddings share storage.</summary>
    private static void AssertTied(Mamba130m model)
    {
        var sd = model.state_dict();
        Assert.Equal(sd["backbone.embeddings.weight"].storage<float>().data_ptr(), sd["lm_head.weight"].storage<float>().data_ptr());
    }

    private static nn.Module<Tensor, Tensor> Child(nn.Module parent, string name) =>
        (nn.Module<Tensor, Tensor>)parent.named_children().Single(c => c.name == name).module;

    /// <summary>HF 5.x Mamba <c>hidden_states</c>: the output of every block, then the output after <c>norm_f</c>.</summary>
    private static List<Tensor> HiddenStates(nn.Module backbone, Tensor ids)
    {
        var states = new List<Tensor>();
        var h = Child(backbone, "embeddings").call(ids);
        foreach (var (_, layer) in Child(backbone, "layers").named_children())
        {
            h = ((nn.Module<Tensor, Tensor>)layer).call(h);
            states.Add(h);
        }
        states.Add(Child(backbone, "norm_f").call(h));
        return states;
    }

    [Fact]
    public void MambaModelMatchesHuggingFace()
    {
        using var f = HuggingFaceFixture.Open("mamba_model");
        Assert.Equal("MambaModel", f.HfClass);
        using var model = BuildLM(f);
        // HF MambaModel is the LM's backbone: its state dict loads strictly into it.
        var report = CheckpointLoader.Load(model.backbone, f.WeightsPath, strict: true);
        Assert.Equal(model.backbone.state_dict().Count, report.LoadedKeys.Count);
        model.eval();

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = f.Read("input_ids");
        Assert.Equal(ScalarType.Int64, ids.dtype);
        ParityAssert.Matches(f.Read("last_hidden_state"), model.backbone.call(ids), "mamba_model last_hidden_state");

        var names = f.HiddenStateNames;
        var states = HiddenStates(model.backbone, ids);
        Assert.Equal(names.Count, states.Count);
        for (int i = 0; i < names.Count; i++)
            ParityAssert.Matches(f.Read(names[i]), states[i], $"mamba_model {names[i]}");
    }

    [Fact]
    public void MambaForCausalLMMatchesHuggingFace()
    {
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        Assert.Equal("MambaForCausalLM", f.HfClass);
        using var model = LoadedLM(f);
        // Tied: one Parameter under both keys, and the file's two copies were equal, so it holds the value of both.
        AssertTied(model);
        using (var file = SafeTensorsFile.Open(f.WeightsPath))
        using (var stored = file.Read("lm_head.weight"))
            Assert.True(stored.allclose(model.state_dict()["lm_head.weight"], rtol: 0, atol: 0));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ids = f.Read("input_ids");
        ParityAssert.Matches(f.Read("logits"), model.call(ids), "mamba_causal_lm logits");

        var names = f.HiddenStateNames;
        var states = HiddenStates(model.backbone, ids);
        Assert.Equal(names.Count, states.Count);
        for (int i = 0; i < names.Count; i++)
            ParityAssert.Matches(f.Read(names[i]), states[i], $"mamba_causal_lm {names[i]}");
    }

    /// <summary>
    /// HF's <c>save_pretrained</c> drops <c>lm_head.weight</c> when it is tied (this fixture keeps both keys, but real
    /// Hub checkpoints do not). A strict load of such a file succeeds: the key is filled through the tie and listed in
    /// <see cref="CheckpointLoadReport.TiedKeys"/>, not as missing.
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
        var report = CheckpointLoader.Load(model, path, strict: true);
        Assert.Empty(report.MissingKeys);
        Assert.Equal(new[] { "lm_head.weight" }, report.TiedKeys);
        Assert.Equal(0, report.ProblemCount);
        AssertTied(model);
        using (var file = SafeTensorsFile.Open(path))
        using (var embeddings = file.Read("backbone.embeddings.weight"))
            Assert.True(embeddings.allclose(model.state_dict()["lm_head.weight"], rtol: 0, atol: 0));   // the head got its value through the tie
        model.eval();

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        ParityAssert.Matches(f.Read("logits"), model.call(f.Read("input_ids")), "mamba_causal_lm logits (tied key omitted)");
    }

    /// <summary>
    /// Decoding the generated model with a cache (<see cref="CausalModel"/>: a prefill of the first
    /// <paramref name="prefill"/> tokens, then one token per step) reproduces the full-sequence logits, both the C# ones
    /// and HF's, within the parity tolerance; prefill lengths 0 (steps from empty state), 2 (shorter than the conv
    /// kernel) and 5 (longer).
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
        long L = ids.shape[1];
        Assert.True(prefill < L);
        var full = model.call(ids);
        var lm = new CausalModel(model, f.Long("vocab_size"));
        using var cache = lm.CreateCache(ids.shape[0]);
        var pieces = new List<Tensor>();
        if (prefill > 0) pieces.Add(lm.Forward(ids.narrow(1, 0, prefill), cache));
        for (long t = prefill; t < L; t++) pieces.Add(lm.Forward(ids.narrow(1, t, 1), cache));
        var decoded = torch.cat(pieces, 1);
        ParityAssert.Matches(full, decoded, $"decode (prefill {prefill}) vs C# full forward");
        ParityAssert.Matches(f.Read("logits"), decoded, $"decode (prefill {prefill}) vs HF logits");
    }
}

/// <summary>
/// Numeric parity of the zoo's generated <see cref="Patchtsmixer"/> (models/patchtsmixer.mix) with Hugging Face
/// transformers 5.17 <c>PatchTSMixerModel</c> in both channel modes (fixtures <c>patchtsmixer_common_channel</c>,
/// <c>patchtsmixer_mix_channel</c>): config from the fixture, strict load, eval mode, fp32. Checks
/// <c>last_hidden_state</c>, every <c>hidden_states.i</c> (HF: the output of mixer layer i), and <c>patch_input</c>
/// (HF's scaled, patched input) from HF's <c>loc</c> and <c>scale</c>, each within <see cref="ParityAssert.RelativeTolerance"/>.
/// </summary>
public sealed class PatchTSMixerParityTests
{
    private static readonly string[] MappedFields =
    {
        "context_length", "patch_length", "patch_stride", "num_input_channels", "d_model", "num_layers",
        "expansion_factor", "dropout", "mode", "gated_attn",
        // patchtsmixer.mix's fixed choices, checked below: LayerNorm (eps 1e-5), no self-attention, no positional
        // encoding, std scaling, patches last, num_patches derived.
        "norm_mlp", "self_attn", "self_attn_heads", "use_positional_encoding", "positional_encoding_type", "scaling",
        "norm_eps", "num_patches", "patch_last",
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

    internal static Patchtsmixer.Options BuildOptions(HuggingFaceFixture f)
    {
        f.AssertEveryConfigFieldIsAccountedFor(MappedFields, IgnoredFields);
        Assert.Equal("LayerNorm", f.String("norm_mlp"));
        Assert.False(f.Bool("self_attn"));
        Assert.False(f.Bool("use_positional_encoding"));
        Assert.Equal("std", f.String("scaling"));
        Assert.Equal(1e-5, f.Double("norm_eps"));
        Assert.True(f.Bool("patch_last"));
        Assert.Equal((f.Long("context_length") - f.Long("patch_length")) / f.Long("patch_stride") + 1, f.Long("num_patches"));
        return new Patchtsmixer.Options
        {
            ContextLength = f.Long("context_length"), PatchLength = f.Long("patch_length"), PatchStride = f.Long("patch_stride"),
            NumChannels = f.Long("num_input_channels"), DModel = f.Long("d_model"), NumLayers = f.Long("num_layers"),
            Expansion = f.Long("expansion_factor"), Drop = f.Double("dropout"), Mode = f.String("mode"), GatedAttn = f.Bool("gated_attn"),
        };
    }

    internal static Patchtsmixer Loaded(HuggingFaceFixture f)
    {
        var model = new Patchtsmixer(BuildOptions(f));
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
        ParityAssert.Matches(f.Read("last_hidden_state"), model.call(pastValues), $"{name} forward");

        // HF's patch_input is the input scaled by its loc and scale, cut into patches (patchify over time, patch last).
        var patchInput = Mix.Runtime.Builtins.Fn.Patchify((pastValues - f.Read("loc")) / f.Read("scale"), f.Long("patch_length"), f.Long("patch_stride"));
        ParityAssert.Matches(f.Read("patch_input"), patchInput, $"{name} patch_input");

        // hidden_states.i: the output of mixer layer i, from the patch embedding of HF's patched input.
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var h = ((nn.Module<Tensor, Tensor>)modules["encoder.patcher"]).call(f.Read("patch_input"));
        var names = f.HiddenStateNames;
        Assert.Equal(f.Long("num_layers"), names.Count);
        for (int i = 0; i < names.Count; i++)
        {
            h = ((nn.Module<Tensor, Tensor>)modules[$"encoder.mlp_mixer_encoder.mixers.{i}"]).call(h);
            ParityAssert.Matches(f.Read(names[i]), h, $"{name} {names[i]}");
        }
    }
}
