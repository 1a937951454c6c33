using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// PoNet (lxchtan/PoNet, LRA code): the library's <c>ponet</c> mixer and the zoo's <c>ponet_lra</c> classifier against
/// the official code (fixtures ponet_mixer and ponet_lra, made by tests/parity/make_catalog3e_fixtures.py: strict
/// load, fp32, ≤ 1e-4 of the output scale; on padded rows, ponet_mixer_padded and ponet_lra_padded through
/// <c>PaddingMask.Use</c>), the mixer against a loop-by-loop reference of the paper's three poolings at
/// sizes the fixtures do not cover (batch 1, lengths that the segments do not divide, more segments than tokens), the
/// ListOps model's parameter count, and its shape contract.
/// </summary>
public class Catalog3ePoNetTests
{
    static Std.Ponet Mixer(long dim, long headDim, long segmentNum, long seed)
    {
        var m = new Std.Ponet(new Std.Ponet.Options(dim) { HeadDim = headDim, SegmentNum = segmentNum });
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in m.named_parameters())
            p.copy_(p.dim() >= 2 ? torch.randn(p.shape, generator: g) / Math.Sqrt(p.shape[1]) : torch.randn(p.shape, generator: g) * 0.3);
        return m;
    }

    /// <summary>attention_ponet.py's forward written with loops over segments and windows (mask of ones).</summary>
    static Tensor Reference(nn.Module m, Tensor x, long heads, long headDim, long segmentNum)
    {
        var w = m.state_dict();
        Tensor Lin(string name, Tensor t) => F.linear(t, w[name + ".weight"], w[name + ".bias"]);
        long b = x.shape[0], l = x.shape[1], d = x.shape[2];
        var q = Lin("W_q", x).reshape(b, l, heads, headDim);
        var k = Lin("W_k", x).reshape(b, l, heads, headDim);
        var o = Lin("W_v", x).reshape(b, l, heads, headDim);
        var query = q.mean(new long[] { 1 });                                                   // [b, h, e]
        var att = torch.einsum("bhe,blhe->bhl", query, k).div(Math.Sqrt(headDim)).softmax(-1);
        var global = torch.einsum("blhe,bhl->bhe", k, att);
        var segmentIn = Lin("W_segment", x);
        var localIn = Lin("W_local", x);
        long segmentLen = l / segmentNum + 1;
        var segment = new List<Tensor>();
        var local = new List<Tensor>();
        for (long i = 0; i < l; i++)
        {
            long s = i / segmentLen * segmentLen;
            segment.Add(segmentIn.narrow(1, s, Math.Min(l, s + segmentLen) - s).amax(new long[] { 1 }));
            long lo = Math.Max(0, i - 1), hi = Math.Min(l, i + 2);
            local.Add(localIn.narrow(1, lo, hi - lo).amax(new long[] { 1 }));
        }
        var seg = torch.stack(segment, 1).reshape(b, l, heads, headDim);
        var loc = torch.stack(local, 1).reshape(b, l, heads, headDim);
        var y = (global.unsqueeze(1) + seg) * o + loc;
        return Lin("ff", y.reshape(b, l, heads * headDim));
    }

    [Theory]
    [InlineData(1, 7, 3)]    // batch 1, segments of 3: 3, 3, 1
    [InlineData(2, 5, 8)]    // more segments than tokens: one token each
    [InlineData(3, 11, 2)]   // segments of 6: 6, 5
    [InlineData(1, 1, 4)]    // one token
    public void Ponet_mixer_equals_the_loop_reference(long batch, long length, long segments)
    {
        using var scope = torch.NewDisposeScope();
        using var m = Mixer(12, 4, segments, 11 + length);
        m.eval();
        var x = torch.randn(new long[] { batch, length, 12 }, generator: new torch.Generator(5));
        using var _ = torch.no_grad();
        var y = m.call(x);
        Assert.Equal(new[] { batch, length, 12L }, y.shape);
        var expected = Reference(m, x, 3, 4, segments);
        double err = (y - expected).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max abs error {err}");
        if (batch > 1)   // rows are independent: the first alone gives its own output
            Assert.True((m.call(x.narrow(0, 0, 1)) - y.narrow(0, 0, 1)).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void Ponet_mixer_keys_are_the_official_attention_modules()
    {
        using var m = Mixer(16, 8, 4, 1);
        var keys = m.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").OrderBy(k => k, StringComparer.Ordinal);
        Assert.Equal(new[]
        {
            "W_k.bias [16]", "W_k.weight [16,16]", "W_local.bias [16]", "W_local.weight [16,16]", "W_q.bias [16]", "W_q.weight [16,16]",
            "W_segment.bias [16]", "W_segment.weight [16,16]", "W_v.bias [16]", "W_v.weight [16,16]", "ff.bias [16]", "ff.weight [16,16]",
        }, keys);
    }

    [Fact]
    public void Generated_ponet_mixer_matches_PoNet_attention()
    {
        var c = Catalog3eParity.Info("ponet_mixer", "ponet_mixer").GetProperty("config");
        long dim = c.GetProperty("transformer_dim").GetInt64(), headDim = c.GetProperty("head_dim").GetInt64();
        Assert.Equal(dim, c.GetProperty("num_head").GetInt64() * headDim);
        using var m = new Std.Ponet(new Std.Ponet.Options(dim) { HeadDim = headDim, SegmentNum = c.GetProperty("segment_num").GetInt64() });
        HuggingFaceParityTests.Load(m, "ponet_mixer");
        m.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read("ponet_mixer", "x");
        using var y = m.call(x);
        using var reference = HuggingFaceParityTests.Read("ponet_mixer", "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated ponet mixer");
    }

    [Fact]
    public void Generated_ponet_lra_matches_PoNet_ModelForSC()
    {
        var c = Catalog3eParity.Info("ponet_lra", "ponet_lra").GetProperty("config");
        // The test model ponet_lra_fixture (tests/Mix.Generator.Tests/Models/catalog3e.mix) has the fixture's config.
        Assert.Equal((16L, 32L, 16L, 24L, 8L, 2L, 4L, 2L), (c.GetProperty("vocab_size").GetInt64(), c.GetProperty("max_seq_len").GetInt64(),
            c.GetProperty("transformer_dim").GetInt64(), c.GetProperty("transformer_hidden_dim").GetInt64(), c.GetProperty("head_dim").GetInt64(),
            c.GetProperty("num_head").GetInt64(), c.GetProperty("segment_num").GetInt64(), c.GetProperty("num_layers").GetInt64()));
        Assert.Equal("MEAN", c.GetProperty("pooling_mode").GetString());
        using var model = new PonetLraFixture(new PonetLraFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        HuggingFaceParityTests.Load(model, "ponet_lra");
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read("ponet_lra", "input_ids");
        using var logits = model.call(ids);
        using var reference = HuggingFaceParityTests.Read("ponet_lra", "logits");
        HuggingFaceParityTests.AssertClose(reference, logits, "generated ponet_lra logits");
    }

    [Fact]
    public void Generated_ponet_mixer_matches_PoNet_attention_on_padded_rows()
    {
        // ponet_mixer's weights; rows of 10 and 4 tokens of 13 (segments of 3: the second row's last three segments are
        // all padding); the official forward with its attention_mask, the generated one inside PaddingMask.Use.
        var c = Catalog3eParity.Info("ponet_mixer", "ponet_mixer").GetProperty("config");
        long dim = c.GetProperty("transformer_dim").GetInt64(), headDim = c.GetProperty("head_dim").GetInt64();
        using var m = new Std.Ponet(new Std.Ponet.Options(dim) { HeadDim = headDim, SegmentNum = c.GetProperty("segment_num").GetInt64() });
        HuggingFaceParityTests.Load(m, "ponet_mixer");
        m.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read("ponet_mixer_padded", "x");
        using var mask = HuggingFaceParityTests.Read("ponet_mixer_padded", "mask");
        using var reference = HuggingFaceParityTests.Read("ponet_mixer_padded", "y");
        Assert.Equal(new long[] { 10, 4 }, mask.sum(1).to_type(ScalarType.Int64).data<long>().ToArray());
        Tensor y;
        using (Mix.Runtime.Caches.PaddingMask.Use(mask)) y = m.call(x);
        using var __ = y;
        HuggingFaceParityTests.AssertClose(reference, y, "generated ponet mixer, padded rows");
        // The mask matters: without it the output differs from the official masked one.
        using var unmasked = m.call(x);
        Assert.True((unmasked - reference).abs().max().item<float>() > 1e-2, "the padded fixture does not depend on the mask");
    }

    [Fact]
    public void Generated_ponet_lra_matches_PoNet_ModelForSC_on_padded_rows()
    {
        // ponet_lra's weights; rows of 23, 20 and 9 tokens of 23 with drawn ids at the padding.
        var c = Catalog3eParity.Info("ponet_lra", "ponet_lra").GetProperty("config");
        using var model = new PonetLraFixture(new PonetLraFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        HuggingFaceParityTests.Load(model, "ponet_lra");
        model.eval();
        using var _ = torch.no_grad();
        using var ids = HuggingFaceParityTests.Read("ponet_lra_padded", "input_ids");
        using var mask = HuggingFaceParityTests.Read("ponet_lra_padded", "mask");
        using var reference = HuggingFaceParityTests.Read("ponet_lra_padded", "logits");
        Assert.Equal(new long[] { 23, 20, 9 }, mask.sum(1).to_type(ScalarType.Int64).data<long>().ToArray());
        Tensor logits;
        using (Mix.Runtime.Caches.PaddingMask.Use(mask)) logits = model.call(ids);
        using var __ = logits;
        HuggingFaceParityTests.AssertClose(reference, logits, "generated ponet_lra logits, padded rows");
        // The padding's ids do not matter: other ids at the padded positions give the same logits.
        using var other = torch.where(mask > 0, ids, (ids + 5) % 16);
        using (Mix.Runtime.Caches.PaddingMask.Use(mask))
            Assert.True((model.call(other) - logits).abs().max().item<float>() < 1e-5, "a padded position's id changed the logits");
        // Outside the scope the mask is all ones again (the unpadded fixture's behaviour), and the answer differs.
        using var unmasked = model.call(ids);
        Assert.True((unmasked - reference).abs().max().item<float>() > 1e-2, "the padded fixture does not depend on the mask");
    }

    [Fact]
    public void A_padding_mask_of_the_wrong_shape_is_a_clear_error()
    {
        using var m = Mixer(12, 4, 3, 1);
        using var x = torch.randn(2, 7, 12);
        using var mask = torch.ones(2, 6);
        using var _ = torch.no_grad();
        using var scope = Mix.Runtime.Caches.PaddingMask.Use(mask);
        var e = Assert.Throws<InvalidOperationException>(() => m.call(x));
        Assert.Contains("token_mask: the padding mask is [2, 6] but the input is [2, 7, 12]", e.Message);
        Assert.Throws<ArgumentException>(() => Mix.Runtime.Caches.PaddingMask.Use(torch.ones(2, 7, 1)));
    }

    [Fact]
    public void An_alias_model_passes_eval_and_train_to_the_module_it_aliases()
    {
        // ponet_lra_fixture is an alias of ponet_lra, whose own forward applies dropout (p = 0.1) to the embeddings:
        // eval() on the alias must reach it (it did not: the aliased module is not a registered child).
        using var model = new PonetLraFixture(new PonetLraFixture.Options());
        var ids = torch.randint(0, 16, new long[] { 2, 9 }, generator: new torch.Generator(3));
        using var _ = torch.no_grad();
        model.eval();
        Assert.Equal(0, (model.call(ids) - model.call(ids)).abs().max().item<float>());
        model.train();
        Assert.True((model.call(ids) - model.call(ids)).abs().max().item<float>() > 0, "dropout is off in training");
    }

    [Fact]
    public void Ponet_lra_listops_has_the_official_parameter_count()
    {
        // ModelForSC with lra_config.py's ListOps model, max_seq_len rounded up to 2048 as run_tasks.py does: 226,442
        // parameters (make_catalog3e_fixtures.py prints the official count; make_catalog3e_fixtures.log).
        var zoo = MixCompilation.Create(new[] { new Mix.Dsl.Text.SourceText("m.mix", "import \"mix/models/ponet.mix\"\n") });
        Assert.Equal(226_442, zoo.Find("ponet_lra_listops")!.Root!.ParameterCount());
        using var model = new PonetLraFixture(new PonetLraFixture.Options());
        Assert.Equal(6_341, model.parameters().Sum(p => p.numel()));   // the fixture's official count ("parameters")
        Assert.Equal(6_341, Catalog3eParity.Info("ponet_lra", "ponet_lra").GetProperty("parameters").GetInt64());
    }

    [Theory]
    // channels first instead of tokens
    [InlineData("(x: [B, 16, L]) -> [B, 16, L]", "ponet(dim = 16, head_dim = 8)", "MIX0302")]
    // num_head · head_dim ≠ dim: the segment and local branches cannot be split into the heads
    [InlineData("(x: [B, L, 16]) -> [B, L, 16]", "ponet(dim = 16, head_dim = 8, num_head = 3)", "MIX0306")]
    public void Ponet_shape_contract_is_a_located_diagnostic(string signature, string mixer, string id)
    {
        var text = $"import \"mix/std/ponet.mix\"\nmodel m() {signature} {{\n  mixer = {mixer}\n  return mixer(x)\n}}\n";
        var c = MixCompilation.Create("m.mix", text);
        var errors = c.Diagnostics.Where(e => e.Severity == Mix.Dsl.Diagnostics.Severity.Error).ToList();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal(id, e.Id));
        var d = errors[0];
        Assert.True(d.Span.Length > 0);
        if (id == "MIX0302") Assert.Equal(("m.mix", text.IndexOf("mixer(x)", StringComparison.Ordinal)), (d.Path, d.Span.Start));
        else Assert.Equal("mix/std/ponet.mix", d.Path);
    }
}

/// <summary>The fixtures of tests/parity/make_catalog3e_fixtures.py: a missing one skips, naming the command.</summary>
internal static class Catalog3eParity
{
    internal static System.Text.Json.JsonElement Info(string name, string only)
    {
        if (!System.IO.File.Exists(HuggingFaceParityTests.Fixture(name + ".config.json")))
            Assert.Skip($"fixture {name} not made yet: run `/usr/bin/python3 tests/parity/make_catalog3e_fixtures.py --only {only} --ponet <PoNet source>` " +
                "(see tests/Mix.Runtime.Tests/Fixtures/parity/README.md)");
        using var doc = System.Text.Json.JsonDocument.Parse(System.IO.File.ReadAllText(HuggingFaceParityTests.Fixture(name + ".config.json")));
        return doc.RootElement.Clone();
    }
}
