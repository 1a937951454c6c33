using System;
using System.IO;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Text;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The generated classes, compiled into this project by the generator from examples/models/*.mix: they build, run a
/// forward pass, and their state dicts have exactly the keys and shapes the front end computes (timm's).
/// </summary>
public class RuntimeTests
{
    static readonly Lazy<MixCompilation> s_oracle = new(() => MixCompilation.Create(
        Directory.GetFiles(Path.Combine(Harness.RepoRoot(), "examples", "models"), "*.mix")
            .Select(p => new SourceText(p.Replace('\\', '/'), File.ReadAllText(p)))));

    static void AssertMatchesFrontEnd(nn.Module model, string name, long? expectedParams)
    {
        var root = s_oracle.Value.Find(name)?.Root ?? throw new InvalidOperationException($"no model {name}");
        var expected = root.AllWeights().Select(w => (w.Key, Shape: string.Join(",", w.Weight.Shape.Select(d => d.AsLong ?? -1)))).ToList();
        var actual = model.state_dict().Select(kv => (kv.Key, Shape: string.Join(",", kv.Value.shape))).ToList();
        Assert.Equal(expected.OrderBy(k => k.Key, StringComparer.Ordinal), actual.OrderBy(k => k.Key, StringComparer.Ordinal));
        if (expectedParams is long n)
        {
            Assert.Equal(n, root.ParameterCount());
            Assert.Equal(n, model.parameters().Sum(p => p.numel()));
        }
    }

    static void AssertForward(nn.Module<Tensor, Tensor> model, long size, long classes)
    {
        using var _ = torch.no_grad();
        model.eval();
        using var scope = torch.NewDisposeScope();
        var y = model.call(torch.randn(1, 3, size, size));
        Assert.Equal(new long[] { 1, classes }, y.shape);
        Assert.False(y.isnan().any().item<bool>());
    }

    [Fact]
    public void Poolformer_s12_keys_shapes_params_and_forward()
    {
        using var model = new PoolformerS12();
        AssertMatchesFrontEnd(model, "poolformer_s12", 11_915_176);
        AssertForward(model, 64, 1000);
    }

    [Fact]
    public void Convformer_s18_keys_shapes_params_and_forward()
    {
        using var model = new ConvformerS18();
        AssertMatchesFrontEnd(model, "convformer_s18", 26_774_448);
        AssertForward(model, 64, 1000);
    }

    [Fact]
    public void Caformer_s18_keys_shapes_params_and_forward()
    {
        using var model = new CaformerS18();
        AssertMatchesFrontEnd(model, "caformer_s18", 26_341_656);
        AssertForward(model, 64, 1000);
    }

    [Fact]
    public void Identityformer_and_randformer_match_the_front_end()
    {
        using var identity = new IdentityformerS12();
        AssertMatchesFrontEnd(identity, "identityformer_s12", null);
        AssertForward(identity, 64, 1000);
        using var rand = new RandformerS12(new RandformerS12.Options { NumClasses = 10 });
        AssertForward(rand, 224, 10);
        using var randDefault = new RandformerS12();
        AssertMatchesFrontEnd(randDefault, "randformer_s12", null);
    }

    [Fact]
    public void Options_change_the_model_and_the_keys_stay_timm_names()
    {
        using var model = new PoolformerS12(new PoolformerS12.Options { NumClasses = 10 });
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("stages.0.blocks.1.norm1.weight", keys);
        Assert.Contains("stages.0.blocks.1.layer_scale1.scale", keys);
        Assert.DoesNotContain(keys, k => k.Contains(".token_mixer.", StringComparison.Ordinal)); // pooling has no weights
        Assert.Contains("stages.3.blocks.1.mlp.fc2.bias", keys);
        Assert.Contains("head.fc.weight", keys);
        Assert.Equal(new long[] { 10, 512 }, model.state_dict()["head.fc.weight"].shape);
    }

    [Fact]
    public void Fused_switch_falls_back_to_the_reference_modules()
    {
        using var model = new ConvformerS18();
        var before = Mix.Runtime.Builtins.MixDispatch.FusedEnabled;
        try
        {
            Mix.Runtime.Builtins.MixDispatch.FusedEnabled = false;
            AssertForward(model, 32, 1000);
        }
        finally { Mix.Runtime.Builtins.MixDispatch.FusedEnabled = before; }
    }
}
