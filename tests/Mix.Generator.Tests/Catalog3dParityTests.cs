using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// MS-MLP, RaftMLP and WaveMix against their official code: the zoo's <c>ms_mlp</c> (standard library
/// <c>mix_shift_block</c>) against JegZheng/MS-MLP's <c>MS_MLP</c>, the zoo's <c>raft_mlp</c> (library
/// <c>raft_permuted_block</c>) against okojoalg/raft-mlp's <c>RaftMLP</c> with both embeddings. Fixtures: tests/Mix.Runtime.Tests/Fixtures/parity,
/// made by tests/parity/make_catalog3d_fixtures.py from the official files on the CPU (every parameter and buffer
/// re-drawn, eval mode). Strict loading, fp32, max abs error ≤ 1e-4 × max(1, max |reference|) (the bound of
/// <see cref="HuggingFaceParityTests"/>). A test whose fixture is missing reports itself skipped, naming the command
/// that makes it; it never passes without comparing.
/// </summary>
public class Catalog3dParityTests
{
    static JsonElement Info(string name, string only, string repoArg)
    {
        if (!File.Exists(HuggingFaceParityTests.Fixture(name + ".config.json")))
            Assert.Skip($"fixture {name} not made yet: run `/usr/bin/python3 tests/parity/make_catalog3d_fixtures.py {repoArg} --only {only}` " +
                "(see tests/Mix.Runtime.Tests/Fixtures/parity/README.md)");
        using var doc = JsonDocument.Parse(File.ReadAllText(HuggingFaceParityTests.Fixture(name + ".config.json")));
        return doc.RootElement.Clone();
    }

    static long[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();

    static void RunImageModel(nn.Module<Tensor, Tensor> model, string name)
    {
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "y");
        HuggingFaceParityTests.AssertClose(reference, y, $"generated {name} logits");
    }

    [Fact]
    public void Generated_ms_mlp_matches_MS_MLP()
    {
        var info = Info("ms_mlp", "ms_mlp", "--msmlp <MS-MLP checkout>");
        var c = info.GetProperty("config");
        // The test model ms_mlp_fixture (tests/Mix.Generator.Tests/Models/catalog3d.mix) has this configuration.
        Assert.Equal(new long[] { 1, 1, 2, 1 }, Ints(c.GetProperty("depths")));
        Assert.Equal(9, c.GetProperty("embed_dim").GetInt64());
        Assert.Equal(40, c.GetProperty("img_size").GetInt64());
        Assert.Equal(5, c.GetProperty("shift_size").GetInt64());
        Assert.Equal(new long[] { -2, -1, 0, 1, 2 }, Ints(c.GetProperty("shift_dist")));
        Assert.Equal(new long[] { 1, 1, 3, 5, 7, 1, 3, 3, 5, 7, 1, 5, 5, 5, 7, 1, 7, 7, 7, 7 },
            c.GetProperty("mix_size").EnumerateArray().SelectMany(Ints).ToArray());
        Assert.Equal(2.0, c.GetProperty("mlp_ratio").GetDouble());
        using var model = new MsMlpFixture(new MsMlpFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        Assert.Equal(info.GetProperty("parameters").GetInt64(), model.parameters().Sum(p => p.numel()));
        RunImageModel(model, "ms_mlp");
    }

    [Theory]
    [InlineData("raft_mlp", "emb_cross_mlp")]
    [InlineData("raft_mlp_mixer", "emb_mixer")]
    public void Generated_raft_mlp_matches_RaftMLP(string name, string embedding)
    {
        var info = Info(name, "raft_mlp", "--raftmlp <raft-mlp checkout> --einops <einops checkout>");
        var c = info.GetProperty("config");
        // The test models raft_mlp_fixture and raft_mlp_mixer_fixture (Models/catalog3d.mix) have this configuration.
        Assert.Equal(embedding, c.GetProperty("embedding_type").GetString());
        Assert.Equal("ser_pm", c.GetProperty("token_mixing_type").GetString());
        Assert.False(c.GetProperty("shortcut").GetBoolean());
        Assert.Equal(32, c.GetProperty("pretrained_image_size").GetInt64());
        Assert.Equal(3, c.GetProperty("channel_expansion_factor").GetInt64());
        var layers = c.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(new long[] { 8, 12, 16, 20 }, layers.Select(l => l.GetProperty("dim").GetInt64()));
        Assert.Equal(new long[] { 1, 1, 2, 1 }, layers.Select(l => l.GetProperty("depth").GetInt64()));
        Assert.Equal(new long[] { 4, 2, 2, 2 }, layers.Select(l => l.GetProperty("patch_size").GetInt64()));
        Assert.Equal(new long[] { 2, 2, 4, 2 }, layers.Select(l => l.GetProperty("raft_size").GetInt64()));
        Assert.Equal(new long[] { 4, 8, 2, 4, 2, 4, 6, 2 }, layers.SelectMany(l => Ints(l.GetProperty("embedding_kernels"))));
        nn.Module<Tensor, Tensor> model = embedding == "emb_mixer"
            ? new RaftMlpMixerFixture(new RaftMlpMixerFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() })
            : new RaftMlpFixture(new RaftMlpFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        using var _ = model;
        Assert.Equal(info.GetProperty("parameters").GetInt64(), model.parameters().Sum(p => p.numel()));
        RunImageModel(model, name);
    }
}
