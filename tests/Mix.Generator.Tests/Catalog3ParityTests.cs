using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The catalog's third part against the official code: the zoo's <c>mambaout</c> (standard library
/// <c>gated_cnn_block</c>) against timm's <c>MambaOut</c>. Fixtures: tests/Mix.Runtime.Tests/Fixtures/parity, made by
/// tests/parity/make_catalog3_fixtures.py. Strict loading, fp32, max abs error ≤ 1e-4 × max(1, max |reference|) (the
/// bound of <see cref="HuggingFaceParityTests"/>). A test whose fixture is missing reports itself skipped, naming the
/// command that makes it; it never passes without comparing.
/// </summary>
public class Catalog3ParityTests
{
    static JsonElement Info(string name, string only)
    {
        if (!File.Exists(HuggingFaceParityTests.Fixture(name + ".config.json")))
            Assert.Skip($"fixture {name} not made yet: run `python3 tests/parity/make_catalog3_fixtures.py --only {only}` " +
                "(see tests/Mix.Runtime.Tests/Fixtures/parity/README.md)");
        using var doc = JsonDocument.Parse(File.ReadAllText(HuggingFaceParityTests.Fixture(name + ".config.json")));
        return doc.RootElement.Clone();
    }

    static long[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();

    static void RunMambaOut(nn.Module<Tensor, Tensor> model, string name)
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
    public void Generated_mambaout_matches_timm_MambaOut()
    {
        var c = Info("mambaout", "mambaout").GetProperty("config");
        Assert.Equal(new long[] { 2, 1, 2, 1 }, Ints(c.GetProperty("depths")));   // the test model mambaout_fixture
        Assert.Equal(new long[] { 16, 24, 32, 40 }, Ints(c.GetProperty("dims")));
        Assert.False(c.TryGetProperty("conv_ratio", out _));                      // timm's defaults: femto's block
        using var model = new MambaoutFixture(new MambaoutFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        RunMambaOut(model, "mambaout");
    }

    [Fact]
    public void Generated_mambaout_with_options_matches_timm_MambaOut()
    {
        var c = Info("mambaout_options", "mambaout").GetProperty("config");
        Assert.Equal(new long[] { 1, 1, 1, 1 }, Ints(c.GetProperty("depths")));   // the test model mambaout_options_fixture
        Assert.Equal(new long[] { 16, 24, 32, 40 }, Ints(c.GetProperty("dims")));
        Assert.Equal(0.75, c.GetProperty("conv_ratio").GetDouble());
        Assert.Equal("silu", c.GetProperty("act_layer").GetString());
        Assert.False(c.GetProperty("stem_mid_norm").GetBoolean());
        Assert.Equal("conv_nf", c.GetProperty("downsample").GetString());
        using var model = new MambaoutOptionsFixture(new MambaoutOptionsFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        RunMambaOut(model, "mambaout_options");
    }
}
