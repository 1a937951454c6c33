using System;
using System.IO;
using System.Linq;
using Mix.Dsl;
using Mix.Dsl.Text;
using Mix.Generated.Models;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// <c>@tied</c> in the zoo's Mamba LM (models/mamba.mix): the head is the embedding matrix, one Parameter,
/// counted once; checkpoints behave like Hugging Face's MambaForCausalLM (the tied key written on save, optional on a
/// strict load; two different values are a reported conflict).
/// </summary>
public sealed class TiedWeightsTests : IDisposable
{
    const string Head = "lm_head.weight";
    const string Embeddings = "backbone.embeddings.weight";
    readonly string _dir = Path.Combine(Path.GetTempPath(), "mix-tied-" + Guid.NewGuid().ToString("N"));

    public TiedWeightsTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static Mamba130m Small(int seed)
    {
        torch.manual_seed(seed);
        var model = new Mamba130m(new Mamba130m.Options { VocabSize = 48, DModel = 16, NLayer = 2, DState = 4 });
        model.eval();
        return model;
    }

    static Tensor Ids() => torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3 }).reshape(2, 5);

    [Fact]
    public void The_head_is_the_embedding_parameter_and_is_counted_once()
    {
        using var model = Small(0);
        var state = model.state_dict();
        Assert.Contains(Head, state.Keys);
        Assert.Contains(Embeddings, state.Keys);
        Assert.Equal(state[Embeddings].Handle, state[Head].Handle);
        // An optimizer sees the tensor once, and the count agrees with the front end's (the doc comment's).
        Assert.Single(model.parameters(), p => p.Handle == state[Head].Handle);
        var root = MixCompilation.Create(new[] { new SourceText("mamba.mix", File.ReadAllText(Path.Combine(Harness.RepoRoot(), "models", "mamba.mix"))
            .Replace("vocab_size: int = 50280, d_model: int = 768, n_layer: int = 24, d_state: int = 16", "vocab_size: int = 48, d_model: int = 16, n_layer: int = 2, d_state: int = 4")) })
            .Find("mamba_130m")!.Root!;
        Assert.Equal(root.ParameterCount(), model.parameters().Sum(p => p.numel()));
        Assert.Equal(root.AllWeights().Where(w => !w.Weight.IsBuffer).Sum(w => w.Weight.ElementCount!.Value) - 48 * 16, root.ParameterCount());
    }

    [Fact]
    public void Moving_the_model_keeps_one_tensor()
    {
        using var model = Small(11);
        model.to(torch.float64);
        var state = model.state_dict();
        Assert.Equal(ScalarType.Float64, state[Head].dtype);
        Assert.Equal(state[Embeddings].Handle, state[Head].Handle);
        Assert.Single(model.parameters(), p => p.Handle == state[Head].Handle);
    }

    [Fact]
    public void Default_mamba_130m_counts_the_parameters_of_Hugging_Face()
    {
        // MambaForCausalLM.from_pretrained("state-spaces/mamba-130m-hf").num_parameters() = 129,135,360.
        var source = File.ReadAllText(Path.Combine(Harness.RepoRoot(), "models", "mamba.mix"));
        Assert.Equal(129_135_360, MixCompilation.Create("mamba.mix", source).Find("mamba_130m")!.Root!.ParameterCount());
    }

    [Fact]
    public void A_checkpoint_without_the_head_loads_strictly_and_the_logits_use_the_embeddings()
    {
        using var trained = Small(1);
        var path = Path.Combine(_dir, "no-head.safetensors");
        SafeTensors.Save(path, trained.state_dict().Where(kv => kv.Key != Head).Select(kv => (kv.Key, kv.Value)));

        using var model = Small(2);
        var report = CheckpointLoader.Load(model, path, strict: true);
        Assert.Equal(new[] { Head }, report.TiedKeys);
        Assert.Empty(report.MissingKeys);
        Assert.True(report.IsExactMatch);
        using var _ = torch.no_grad();
        Assert.True(model.state_dict()[Head].eq(trained.state_dict()[Embeddings]).all().item<bool>());

        using var ids = Ids();
        using var logits = model.call(ids);
        using var hidden = model.backbone.call(ids);
        using var expected = hidden.matmul(model.state_dict()[Embeddings].t());
        Assert.True(logits.allclose(expected, rtol: 1e-5, atol: 1e-6));
        using var reference = trained.call(ids);
        Assert.True(logits.allclose(reference, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Save_writes_both_keys_and_loads_back_both_ways()
    {
        using var a = Small(3);
        var saved = Path.Combine(_dir, "saved.safetensors");
        CheckpointLoader.Save(a, saved);
        using (var file = SafeTensorsFile.Open(saved))
        {
            Assert.Contains(Head, file.Names);
            Assert.Contains(Embeddings, file.Names);
        }
        using var b = Small(4);
        var report = CheckpointLoader.Load(b, saved, strict: true);
        Assert.Empty(report.TiedKeys);
        Assert.Equal(b.state_dict().Count, report.LoadedKeys.Count);
        using var _ = torch.no_grad();
        using var ids = Ids();
        using var ya = a.call(ids);
        using var yb = b.call(ids);
        Assert.True(ya.eq(yb).all().item<bool>());
        Assert.Equal(b.state_dict()[Embeddings].Handle, b.state_dict()[Head].Handle); // still one tensor after the load

        // The other way: a Hugging Face style checkpoint without the head, loaded and saved again, has both keys.
        var hf = Path.Combine(_dir, "hf.safetensors");
        SafeTensors.Save(hf, a.state_dict().Where(kv => kv.Key != Head).Select(kv => (kv.Key, kv.Value)));
        using var c = Small(5);
        CheckpointLoader.Load(c, hf, strict: true);
        var resaved = Path.Combine(_dir, "resaved.dat");
        CheckpointLoader.Save(c, resaved);
        using var d = Small(6);
        Assert.True(CheckpointLoader.Load(d, resaved, strict: true).IsExactMatch);
        using var yd = d.call(ids);
        Assert.True(ya.eq(yd).all().item<bool>());
    }

    [Fact]
    public void Two_different_values_for_the_tied_keys_are_a_conflict()
    {
        using var a = Small(7);
        using var other = Small(8);
        var path = Path.Combine(_dir, "untied.safetensors");
        SafeTensors.Save(path, a.state_dict().Select(kv => (kv.Key, kv.Key == Head ? other.state_dict()[Embeddings] : kv.Value)));

        using var strict = Small(9);
        var before = strict.state_dict()[Embeddings].clone();
        var e = Assert.Throws<CheckpointMismatchException>(() => CheckpointLoader.Load(strict, path, strict: true));
        var conflict = Assert.Single(e.Report.TiedConflicts);
        Assert.Equal((Head, Embeddings), (conflict.Key, conflict.LoadedFrom));
        Assert.Contains("tied keys differ: lm_head.weight and backbone.embeddings.weight", string.Join("\n", e.Report.ProblemLines()));
        Assert.True(strict.state_dict()[Embeddings].eq(before).all().item<bool>()); // nothing copied

        // Not strict: the owner's value (the embeddings, registered first) stays, as Hugging Face's re-tying does.
        using var lenient = Small(10);
        var report = CheckpointLoader.Load(lenient, path, strict: false);
        Assert.Single(report.TiedConflicts);
        Assert.True(lenient.state_dict()[Head].eq(a.state_dict()[Embeddings]).all().item<bool>());
    }
}
