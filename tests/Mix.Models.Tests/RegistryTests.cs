using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.ZooTests;

/// <summary>
/// The registry against the zoo itself: every <c>model</c> of models/*.mix (found by the front end, not by a list) is
/// registered, builds through <see cref="Mix.Models.Create(string, ModelOptions?)"/> with the front end's parameter
/// count, and every metadata entry names a zoo model.
/// </summary>
public class RegistryTests
{
    [Fact]
    public void Every_zoo_model_is_registered_and_nothing_else()
    {
        Assert.Equal(Repo.ZooModelNames(), Models.List().ToArray());
    }

    public static TheoryData<string> ZooModels()
    {
        var data = new TheoryData<string>();
        foreach (var n in Repo.ZooModelNames()) data.Add(n);
        return data;
    }

    [Theory]
    [MemberData(nameof(ZooModels))]
    public void Every_zoo_model_is_creatable_with_the_front_ends_parameter_count(string name)
    {
        var expected = Repo.Zoo().Find(name)!.Root!.ParameterCount();
        using var model = Models.Create(name);
        Assert.Equal(Models.Info(name).Type, model.GetType());
        Assert.Equal(expected, ParameterCount(model));
    }

    /// <summary>Distinct tensors: a tied weight counts once, as the front end and Hugging Face count it.</summary>
    internal static long ParameterCount(nn.Module model) =>
        model.parameters().Select(p => p.Handle).Distinct().Count() == model.parameters().Count()
            ? model.parameters().Sum(p => p.numel())
            : model.parameters().GroupBy(p => p.Handle).Sum(g => g.First().numel());

    [Fact]
    public void List_filters_by_glob()
    {
        Assert.Equal(new[] { "caformer_s18", "convformer_s18", "identityformer_s12", "iformer", "iformer_base", "iformer_base_384", "iformer_large", "iformer_large_384", "iformer_small", "iformer_small_384", "lmu_former", "metaformer", "poolformer_s12", "poolformer_s24", "poolformer_s36", "randformer_s12" },
            Models.List("*former*"));
        Assert.Equal(new[] { "poolformer_s12", "poolformer_s24", "poolformer_s36" }, Models.List("POOLFORMER_S??"));
        Assert.Empty(Models.List("resnet*"));
    }

    [Fact]
    public void Metadata_of_image_models_is_complete_and_keys_follow_timm_names()
    {
        foreach (var info in Models.All.Values)
        {
            Assert.Equal(info.Name, info.Name.Trim());
            Assert.Equal(typeof(PoolformerS12).Namespace, info.Type.Namespace);
            Assert.True(System.IO.File.Exists(System.IO.Path.Combine(Repo.ModelsDir, info.File)), info.File);
            Assert.False(string.IsNullOrEmpty(info.Paper), info.Name);
            Assert.False(string.IsNullOrEmpty(info.Source), info.Name);
            if (info.Task != "image-classification") continue;
            Assert.Equal(3, info.InputSize!.Count);
            Assert.Equal(3, info.Mean!.Count);
            Assert.Equal(3, info.Std!.Count);
            Assert.InRange(info.CropPct!.Value, 0.5, 1.0);
            Assert.Equal($"[B, {info.NumClasses}]", Repo.Zoo().Find(info.Name)!.Output!.ToString());
            // A timm name's architecture is the zoo model of the same name: same keys by construction.
            if (info.TimmArchitecture is { } arch) Assert.Equal(info.Name, arch);
        }
        var pool = Models.Info("poolformer_s12");
        Assert.Equal((0.9, "bicubic", "timm/poolformer_s12.sail_in1k"), (pool.CropPct, pool.Interpolation, pool.HfHubId));
        Assert.Equal("Apache-2.0", pool.License);
    }

    [Fact]
    public void Create_applies_num_classes_overrides_dtype()
    {
        using var model = Models.Create<MixerS16224>("mixer_s16_224", new ModelOptions
        {
            NumClasses = 7,
            DType = ScalarType.BFloat16,
            Overrides = new Dictionary<string, object?> { ["dim"] = 32, ["depth"] = 1, ["img_size"] = 32, ["patch"] = 8 },
        });
        var head = model.state_dict()["head.weight"];
        Assert.Equal(new long[] { 7, 32 }, head.shape);
        Assert.Equal(ScalarType.BFloat16, head.dtype);
        Assert.Single(model.state_dict().Keys, k => k.StartsWith("blocks.", StringComparison.Ordinal) && k.EndsWith("norm1.weight", StringComparison.Ordinal));
        using var _ = no_grad();
        using var y = model.call(randn(2, 3, 32, 32, dtype: ScalarType.BFloat16));
        Assert.Equal(new long[] { 2, 7 }, y.shape);
    }

    [Fact]
    public void Create_takes_arrays_and_enum_strings()
    {
        using var model = Models.Create("patchtsmixer", new ModelOptions
        {
            Overrides = new Dictionary<string, object?> { ["mode"] = "mix_channel", ["num_channels"] = 5, ["num_layers"] = 1 },
        });
        Assert.Contains("encoder.mlp_mixer_encoder.mixers.0.channel_feature_mixer.mlp.fc1.weight", model.state_dict().Keys);
        using var metaformer = Models.Create("metaformer", new ModelOptions
        {
            NumClasses = 3,
            Overrides = new Dictionary<string, object?> { ["depths"] = new[] { 1, 1, 1, 1 }, ["dims"] = new List<int> { 8, 16, 24, 32 } },
        });
        Assert.Equal(new long[] { 3, 128 }, metaformer.state_dict()["head.fc.fc2.weight"].shape);
        Assert.Equal(new long[] { 8, 3, 7, 7 }, metaformer.state_dict()["stem.conv.weight"].shape);
    }

    [Fact]
    public void Bad_names_and_values_are_clear_errors()
    {
        var unknown = Assert.Throws<KeyNotFoundException>(() => Models.Create("poolfromer_s12"));
        Assert.Contains("did you mean 'poolformer_s12'", unknown.Message);
        var param = Assert.Throws<ArgumentException>(() => Models.Create("mamba_130m", new ModelOptions { NumClasses = 10 }));
        Assert.Contains("mamba_130m has no parameter 'num_classes'", param.Message);
        Assert.Contains("d_state", param.Message);
        var type = Assert.Throws<ArgumentException>(() => Models.Create("tsmixer", new ModelOptions { Overrides = new Dictionary<string, object?> { ["seq_len"] = 9.5 } }));
        Assert.Contains("parameter 'seq_len' takes an int, not 9.5", type.Message);
    }
}
