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
/// The generated classes, compiled into this project by the generator from models/*.mix: they build, run a
/// forward pass, and their state dicts have exactly the keys and shapes the front end computes (timm's).
/// </summary>
public class RuntimeTests
{
    static readonly Lazy<MixCompilation> s_oracle = new(() => MixCompilation.Create(
        Directory.GetFiles(Path.Combine(Harness.RepoRoot(), "models"), "*.mix")
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

/// <summary><c>@key</c>: dotted keys become nested registrations with exactly the dotted state-dict key; plain keys a
/// <c>[ComponentName]</c> field. Model: tests/Mix.Generator.Tests/Models/keys.mix.</summary>
public class KeyTests
{
    static MixCompilation Oracle() => MixCompilation.Create(new[]
    {
        new SourceText("keys.mix", File.ReadAllText(Path.Combine(Harness.TestDir(), "Models", "keys.mix"))),
    });

    [Fact]
    public void Dotted_and_plain_keys_are_the_front_end_keys()
    {
        using var model = new KeyedModel();
        var keys = model.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var compilation = Oracle();
        Assert.DoesNotContain(compilation.Diagnostics, d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error);
        var expected = compilation.Find("keyed_model")!.Root!.AllWeights().Select(w => w.Key).OrderBy(k => k, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, keys);
        Assert.Contains("encoder.layer.1.attention.self.query.weight", keys);
        Assert.Contains("encoder.layer.0.attention.output.dense.bias", keys);
        Assert.Contains("encoder.layer.0.head.weight", keys);      // [ComponentName(Name = "head")]
        Assert.Contains("embeddings.word.proj.weight", keys);      // dotted key inside an inline block
        Assert.Contains("pooler.dense.weight", keys);
        Assert.DoesNotContain(keys, k => k.StartsWith("pool.", StringComparison.Ordinal) || k.Contains(".fc.", StringComparison.Ordinal) || k.Contains(".q.", StringComparison.Ordinal));
    }

    [Fact]
    public void Emitted_registration_uses_the_exact_dotted_path()
    {
        var text = new InMemoryText(Harness.Root + "keys.mix", File.ReadAllText(Path.Combine(Harness.TestDir(), "Models", "keys.mix")));
        var result = Harness.Run(new[] { text }, out var output);
        Assert.Empty(result.Diagnostics);
        var source = result.Results.Single().GeneratedSources.Single(s => s.HintName == "keys.mix.g.cs").SourceText.ToString();
        Assert.Contains("var keyed_q = Builtin.Linear(options.Dim, options.Dim);", source);
        Assert.Contains("MixKeys.Register(this, \"attention.self.query\", q);", source);
        Assert.Contains("MixKeys.Register(this, \"encoder.layer\", layers);", source);
        Assert.Contains("[global::TorchSharp.Utils.ComponentName(Name = \"head\")]", source);
        Assert.Contains("(\"word.proj\", Builtin.Linear(options.Dim, options.Dim))", source);
        Assert.True(source.IndexOf("RegisterComponents();", StringComparison.Ordinal) < source.IndexOf("q = keyed_q;", StringComparison.Ordinal));
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning));
    }

    static nn.Module Submodule(nn.Module m, string path)
    {
        foreach (var name in path.Split('.')) m = m.named_children().Single(c => c.name == name).module;
        return m;
    }

    [Fact]
    public void Keyed_fields_are_the_registered_modules_and_the_forward_uses_them()
    {
        using var model = new KeyedModel();
        Assert.Same(model.pool, Submodule(model, "pooler.dense"));
        var block = (KeyedBlock)model.layers[0];
        var head = typeof(KeyedBlock).GetField("fc")!;
        Assert.Equal("head", ((TorchSharp.Utils.ComponentNameAttribute)Attribute.GetCustomAttribute(head, typeof(TorchSharp.Utils.ComponentNameAttribute))!).Name);
        Assert.Same(block.q, Submodule(block, "attention.self.query"));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(3, 8);
        var y = model.call(x);
        Assert.Equal(new long[] { 3, 8 }, y.shape);
        // Zeroing the dotted-key layer through the state dict changes the output: the forward runs the registered module.
        model.state_dict()["pooler.dense.weight"].zero_();
        model.state_dict()["pooler.dense.bias"].fill_(2.0);
        Assert.True(model.call(x).eq(2.0).all().item<bool>());
    }
}
