using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.ZooTests;

/// <summary>
/// <see cref="Mix.Models.FromPretrained(string, out PretrainedReport, PretrainedOptions?)"/> on folders laid out like
/// the real ones, written here from small random models: a timm folder (config.json with <c>architecture</c> +
/// model.safetensors), a Hugging Face hub cache (models--org--name, refs/main, snapshots/&lt;commit&gt; linking to blobs/)
/// with a sharded bfloat16 Mamba checkpoint that omits the tied lm_head, a PatchTSMixer config, and the failures.
/// </summary>
public class PretrainedTests
{
    const string Commit = "0123456789abcdef0123456789abcdef01234567";

    static readonly Dictionary<string, object?> SmallMixer = new() { ["dim"] = 32, ["depth"] = 2, ["img_size"] = 32, ["patch"] = 8 };

    static void WriteJson(string path, object value) => File.WriteAllText(path, JsonSerializer.Serialize(value));

    static Tensor Run(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        model.eval();
        using var _ = no_grad();
        return model.call(x);
    }

    [Fact]
    public void Timm_folder_builds_the_architecture_from_config_and_loads_every_key()
    {
        using var tmp = new TempFolder();
        using var source = Models.Create("mixer_s16_224", new ModelOptions { NumClasses = 7, Overrides = SmallMixer });
        var folder = tmp.Sub("mixer_s16_224.test");
        CheckpointLoader.Save(source, Path.Combine(folder, "model.safetensors"));
        WriteJson(Path.Combine(folder, "config.json"), new Dictionary<string, object>
        {
            ["architecture"] = "mixer_s16_224", ["num_classes"] = 7, ["num_features"] = 32,
            ["pretrained_cfg"] = new Dictionary<string, object> { ["tag"] = "test", ["crop_pct"] = 0.875 },
        });

        using var loaded = Models.FromPretrained(folder, out var report, new PretrainedOptions { Overrides = SmallMixer });
        Assert.IsType<MixerS16224>(loaded);
        Assert.Equal("mixer_s16_224", report.Model);
        Assert.Equal(7L, report.Parameters["num_classes"]);
        Assert.Equal(new[] { "num_classes" }, report.ConfigKeysUsed);
        Assert.Equal(new[] { "architecture", "num_features", "pretrained_cfg" }, report.ConfigKeysUnused.OrderBy(k => k));
        Assert.True(report.Checkpoint.IsExactMatch);
        Assert.Equal(source.state_dict().Count, report.Checkpoint.LoadedKeys.Count);

        var x = randn(2, 3, 32, 32);
        Assert.Equal(0, (Run(source, x) - Run(loaded, x)).abs().max().item<float>());
    }

    /// <summary>A tiny Mamba LM in the hub cache, as huggingface_hub stores state-spaces/mamba-130m-hf: bfloat16, two
    /// shards with an index, no lm_head.weight (tied to the embeddings), config.json with HF's names.</summary>
    static (string Cache, nn.Module<Tensor, Tensor> Source) MambaHubCache(TempFolder tmp)
    {
        var source = Models.Create("mamba_130m", new ModelOptions
        {
            Overrides = new Dictionary<string, object?> { ["vocab_size"] = 50, ["d_model"] = 16, ["n_layer"] = 2, ["d_state"] = 4 },
        });
        var cache = tmp.Sub("hub");
        var repo = tmp.Sub("hub", "models--state-spaces--mamba-130m-hf");
        File.WriteAllText(Path.Combine(tmp.Sub("hub", "models--state-spaces--mamba-130m-hf", "refs"), "main"), Commit);
        var snapshot = tmp.Sub("hub", "models--state-spaces--mamba-130m-hf", "snapshots", Commit);
        tmp.Sub("hub", "models--state-spaces--mamba-130m-hf", "blobs");
        WriteJson(Path.Combine(snapshot, "config.json"), new Dictionary<string, object>
        {
            ["architectures"] = new[] { "MambaForCausalLM" }, ["model_type"] = "mamba", ["vocab_size"] = 50, ["hidden_size"] = 16,
            ["num_hidden_layers"] = 2, ["state_size"] = 4, ["conv_kernel"] = 4, ["expand"] = 2, ["layer_norm_epsilon"] = 1e-5,
            ["tie_word_embeddings"] = true, ["torch_dtype"] = "bfloat16",
        });
        var entries = source.state_dict().Where(kv => kv.Key != "lm_head.weight").Select(kv => (kv.Key, kv.Value.to_type(ScalarType.BFloat16))).ToList();
        var half = entries.Count / 2;
        var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
        // huggingface_hub keeps the files in blobs/ and links them from the snapshot; the index is a plain file here.
        var blobs = Path.Combine(repo, "blobs");
        SafeTensors.Save(Path.Combine(blobs, "1f0a"), entries.Take(half));
        SafeTensors.Save(Path.Combine(blobs, "2b7c"), entries.Skip(half));
        File.CreateSymbolicLink(Path.Combine(snapshot, shards[0]), Path.Combine("..", "..", "blobs", "1f0a"));
        File.CreateSymbolicLink(Path.Combine(snapshot, shards[1]), Path.Combine("..", "..", "blobs", "2b7c"));
        WriteJson(Path.Combine(snapshot, ShardedSafeTensors.DefaultIndexFileName), new Dictionary<string, object>
        {
            ["metadata"] = new Dictionary<string, object> { ["total_size"] = 0 },
            ["weight_map"] = entries.Select((e, i) => (e.Key, File: shards[i < half ? 0 : 1])).ToDictionary(e => e.Key, e => e.File),
        });
        foreach (var (_, t) in entries) t.Dispose();
        Assert.True(Directory.Exists(repo));
        return (cache, source);
    }

    [Fact]
    public void Hub_cache_id_resolves_refs_main_loads_shards_converts_bfloat16_and_fills_the_tied_head()
    {
        using var tmp = new TempFolder();
        var (cache, source) = MambaHubCache(tmp);
        using var _ = source;
        using var loaded = Models.FromPretrained("state-spaces/mamba-130m-hf", out var report, new PretrainedOptions { CacheDir = cache });

        Assert.IsType<Mamba130m>(loaded);
        Assert.Equal(Path.Combine(cache, "models--state-spaces--mamba-130m-hf", "snapshots", Commit), report.Snapshot);
        Assert.EndsWith(ShardedSafeTensors.DefaultIndexFileName, report.Weights);
        Assert.Equal(new Dictionary<string, object?> { ["vocab_size"] = 50L, ["d_model"] = 16L, ["n_layer"] = 2L, ["d_state"] = 4L, ["d_conv"] = 4L, ["expand"] = 2L },
            report.Parameters);
        Assert.Contains("layer_norm_epsilon", report.ConfigKeysUnused);
        Assert.Equal(new[] { "lm_head.weight" }, report.Checkpoint.TiedKeys);
        Assert.Empty(report.Checkpoint.MissingKeys);
        Assert.Equal(report.Checkpoint.LoadedKeys.Count(k => loaded.state_dict()[k].is_floating_point()), report.Checkpoint.ConvertedKeys.Count);
        Assert.Equal(ScalarType.Float32, loaded.state_dict()["backbone.embeddings.weight"].dtype);
        // The head is the embedding matrix, filled from the checkpoint's embeddings.
        Assert.True(loaded.state_dict()["lm_head.weight"].equal(loaded.state_dict()["backbone.embeddings.weight"]).all().item<bool>());

        // The source model rounded to bfloat16 is what the checkpoint holds: the outputs agree exactly.
        foreach (var (_, t) in source.state_dict())
            if (t.is_floating_point()) using (no_grad()) t.copy_(t.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32));
        var ids = randint(0, 50, new long[] { 2, 9 }, dtype: ScalarType.Int64);
        Assert.Equal(0, (Run(source, ids) - Run(loaded, ids)).abs().max().item<float>());
    }

    [Fact]
    public void Repo_folder_revision_by_commit_and_dtype_option()
    {
        using var tmp = new TempFolder();
        var (cache, source) = MambaHubCache(tmp);
        using var _ = source;
        var repo = Path.Combine(cache, "models--state-spaces--mamba-130m-hf");
        using var loaded = Models.FromPretrained(repo, out var report,
            new PretrainedOptions { Revision = Commit, DType = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, loaded.state_dict()["backbone.norm_f.weight"].dtype);
        Assert.Empty(report.Checkpoint.ConvertedKeys);

        var missing = Assert.Throws<FileNotFoundException>(() => Models.FromPretrained(repo, new PretrainedOptions { Revision = "v2" }));
        Assert.Contains("has no refs/v2", missing.Message);
        Assert.Contains(Commit, missing.Message);
    }

    [Fact]
    public void Hub_ids_are_looked_up_in_HF_HUB_CACHE_else_HF_HOME_hub()
    {
        using var tmp = new TempFolder();
        var (cache, source) = MambaHubCache(tmp);
        using var _ = source;
        var (hub, home) = (Environment.GetEnvironmentVariable("HF_HUB_CACHE"), Environment.GetEnvironmentVariable("HF_HOME"));
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", tmp.Path); // the cache is <HF_HOME>/hub
            using (var viaHome = Models.FromPretrained("state-spaces/mamba-130m-hf", out var r1))
                Assert.StartsWith(cache, r1.Weights);
            Environment.SetEnvironmentVariable("HF_HOME", Path.Combine(tmp.Path, "elsewhere"));
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", cache);
            using (var viaHub = Models.FromPretrained("state-spaces/mamba-130m-hf", out var r2))
                Assert.StartsWith(cache, r2.Weights);
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", hub);
            Environment.SetEnvironmentVariable("HF_HOME", home);
        }
    }

    [Fact]
    public void Single_file_with_explicit_model_and_a_non_strict_report()
    {
        using var tmp = new TempFolder();
        using var source = Models.Create("tsmixer", new ModelOptions { Overrides = new Dictionary<string, object?> { ["n_block"] = 1 } });
        var file = Path.Combine(tmp.Path, "weights.safetensors");
        var entries = source.state_dict().Where(kv => kv.Key != "temporal_projection.bias").Select(kv => (kv.Key, kv.Value))
            .Append(("extra.weight", zeros(3))).ToList();
        SafeTensors.Save(file, entries);

        var noConfig = Assert.Throws<ArgumentException>(() => Models.FromPretrained(file));
        Assert.Contains("pass PretrainedOptions.Model", noConfig.Message);

        var options = new PretrainedOptions { Model = "tsmixer", Overrides = new Dictionary<string, object?> { ["n_block"] = 1 } };
        var strict = Assert.Throws<CheckpointMismatchException>(() => Models.FromPretrained(file, options));
        Assert.Contains("temporal_projection.bias", strict.Message);

        using var loaded = Models.FromPretrained(file, out var report, options with { Strict = false });
        Assert.Equal(new[] { "temporal_projection.bias" }, report.Checkpoint.MissingKeys);
        Assert.Equal(new[] { "extra.weight" }, report.Checkpoint.UnexpectedKeys);
        Assert.True(loaded.state_dict()["temporal_projection.weight"].equal(source.state_dict()["temporal_projection.weight"]).all().item<bool>());
        Assert.Contains("missing key: temporal_projection.bias", report.ToString());
    }

    [Fact]
    public void PatchTSMixer_config_maps_to_the_mix_parameters()
    {
        using var tmp = new TempFolder();
        var p = new Dictionary<string, object?> { ["context_length"] = 24, ["patch_length"] = 6, ["patch_stride"] = 6, ["num_channels"] = 2,
            ["d_model"] = 8, ["num_layers"] = 1, ["mode"] = "mix_channel" };
        using var source = Models.Create("patchtsmixer", new ModelOptions { Overrides = p });
        var folder = tmp.Path;
        CheckpointLoader.Save(source, Path.Combine(folder, "model.safetensors"));
        WriteJson(Path.Combine(folder, "config.json"), new Dictionary<string, object>
        {
            ["model_type"] = "patchtsmixer", ["context_length"] = 24, ["patch_length"] = 6, ["patch_stride"] = 6, ["num_input_channels"] = 2,
            ["d_model"] = 8, ["num_layers"] = 1, ["expansion_factor"] = 2, ["dropout"] = 0.2, ["mode"] = "mix_channel", ["gated_attn"] = true,
            ["scaling"] = "std",
        });
        using var loaded = Models.FromPretrained(folder, out var report);
        Assert.Equal("patchtsmixer", report.Model);
        Assert.Equal("mix_channel", report.Parameters["mode"]);
        Assert.Equal(2L, report.Parameters["num_channels"]);
        Assert.Equal(new[] { "model_type", "scaling" }, report.ConfigKeysUnused);
        var x = randn(3, 24, 2);
        Assert.Equal(0, (Run(source, x) - Run(loaded, x)).abs().max().item<float>());
    }

    [Fact]
    public void A_task_models_checkpoint_loads_into_the_base_model_under_its_prefix()
    {
        // transformers' PatchTSMixerForPrediction saves the base model under "model." and its head under "head.".
        using var tmp = new TempFolder();
        var p = new Dictionary<string, object?> { ["context_length"] = 16, ["patch_length"] = 4, ["patch_stride"] = 4, ["num_channels"] = 2,
            ["d_model"] = 8, ["num_layers"] = 1 };
        using var source = Models.Create("patchtsmixer", new ModelOptions { Overrides = p });
        using var head = zeros(3, 32);
        SafeTensors.Save(Path.Combine(tmp.Path, "model.safetensors"),
            source.state_dict().Select(kv => ("model." + kv.Key, kv.Value)).Append(("head.base_forecast_block.weight", head)));
        WriteJson(Path.Combine(tmp.Path, "config.json"), new Dictionary<string, object>
        {
            ["architectures"] = new[] { "PatchTSMixerForPrediction" }, ["model_type"] = "patchtsmixer", ["context_length"] = 16,
            ["patch_length"] = 4, ["patch_stride"] = 4, ["num_input_channels"] = 2, ["d_model"] = 8, ["num_layers"] = 1,
        });
        using var loaded = Models.FromPretrained(tmp.Path, out var report);
        Assert.Equal("model.", report.KeyPrefix);
        Assert.Equal(new[] { "head.base_forecast_block.weight" }, report.IgnoredKeys);
        Assert.True(report.Checkpoint.IsExactMatch);
        Assert.Equal(source.state_dict().Count, report.Checkpoint.LoadedKeys.Count);
        var x = randn(2, 16, 2);
        Assert.Equal(0, (Run(source, x) - Run(loaded, x)).abs().max().item<float>());
    }

    [Fact]
    public void Nothing_is_downloaded_and_missing_things_say_where_they_looked()
    {
        using var tmp = new TempFolder();
        var notCached = Assert.Throws<FileNotFoundException>(() => Models.FromPretrained("timm/poolformer_s12.sail_in1k", new PretrainedOptions { CacheDir = tmp.Path }));
        Assert.Contains("nothing is downloaded", notCached.Message);
        Assert.Contains(Path.Combine(tmp.Path, "models--timm--poolformer_s12.sail_in1k"), notCached.Message);

        File.WriteAllText(Path.Combine(tmp.Path, "pytorch_model.bin"), "");
        var pickle = Assert.Throws<FileNotFoundException>(() => Models.FromPretrained(tmp.Path));
        Assert.Contains("pytorch_model.bin is a Python pickle", pickle.Message);

        File.WriteAllText(Path.Combine(tmp.Path, "model.safetensors"), "");
        WriteJson(Path.Combine(tmp.Path, "config.json"), new Dictionary<string, object> { ["architecture"] = "resnet50" });
        var unknown = Assert.Throws<ArgumentException>(() => Models.FromPretrained(tmp.Path));
        Assert.Contains("timm architecture 'resnet50' is not in the zoo", unknown.Message);
    }
}
