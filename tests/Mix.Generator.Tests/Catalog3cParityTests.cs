using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// iFormer and FFNet against the official code: the zoo's <c>iformer</c> (library <c>inception_mixer</c>) against
/// sail-sg/iFormer's <c>InceptionTransformer</c>, the zoo's <c>ffnet</c> (library <c>ffnified_attention</c>,
/// <c>repvgg_dw</c>, <c>conv2d_bn</c>) against ysj9909/FFNet's <c>FFNet</c> in its training form and, with
/// <c>deploy = true</c>, against the official re-parameterised model (its fused weights loaded by their official keys);
/// eval mode, BatchNorm running statistics re-drawn. Fixtures:
/// tests/Mix.Runtime.Tests/Fixtures/parity, made by tests/parity/make_catalog3c_fixtures.py. Strict loading, fp32, max
/// abs error ≤ 1e-4 × max(1, max |reference|) (the bound of <see cref="HuggingFaceParityTests"/>). A test whose fixture
/// is missing reports itself skipped, naming the command that makes it; it never passes without comparing.
/// </summary>
public class Catalog3cParityTests
{
    static JsonElement Config(string name, string only)
    {
        var info = Catalog3ParityTests.Info(name, only);
        return info.GetProperty("config");
    }

    internal static long[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();

    internal static Tensor Run(nn.Module<Tensor, Tensor> model, string name)
    {
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");
        var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read(name, "y");
        HuggingFaceParityTests.AssertClose(reference, y, $"generated {name} logits");
        return y;
    }

    [Fact]
    public void Generated_iformer_matches_InceptionTransformer()
    {
        var c = Config("iformer", "iformer");
        Assert.Equal(64, c.GetProperty("img_size").GetInt64());                      // the test model iformer_fixture
        Assert.Equal(new long[] { 2, 1, 2, 1 }, Ints(c.GetProperty("depths")));
        Assert.Equal(new long[] { 8, 16, 24, 32 }, Ints(c.GetProperty("embed_dims")));
        Assert.Equal(new long[] { 2, 4, 6, 8 }, Ints(c.GetProperty("num_heads")));
        Assert.Equal(new long[] { 1, 1, 2, 3, 4, 5 }, Ints(c.GetProperty("attention_heads")));
        Assert.True(c.GetProperty("use_layer_scale").GetBoolean());                  // stages 3-4 only
        using var model = new IformerFixture(new IformerFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        Run(model, "iformer").Dispose();
    }

    [Fact]
    public void Generated_iformer_resizes_its_positional_embeddings_as_InceptionTransformer()
    {
        Config("iformer", "iformer");
        if (!File.Exists(HuggingFaceParityTests.Fixture("iformer_96.io.safetensors")))
            Assert.Skip("fixture iformer_96 not made yet: run `/usr/bin/python3 tests/parity/make_catalog3c_fixtures.py --only iformer ...`");
        // The iformer fixture's weights (embeddings of 16, 8, 4, 2 per side) on a 96×96 image: maps of 24, 12, 6, 3.
        using var model = new IformerFixture(new IformerFixture.Options());
        HuggingFaceParityTests.Load(model, "iformer");
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read("iformer_96", "x");
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read("iformer_96", "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated iformer logits at 96×96");
    }

    [Fact]
    public void Generated_ffnet_matches_FFNet()
    {
        var c = Config("ffnet", "ffnet");
        Assert.Equal(new long[] { 2, 1, 2, 1 }, Ints(c.GetProperty("depth")));          // the test model ffnet_fixture
        Assert.Equal(new long[] { 8, 16, 32, 32 }, Ints(c.GetProperty("embed_dim")));
        Assert.Equal(8, c.GetProperty("in_dim").GetInt64());
        Assert.Equal(new long[] { 3, 3, 3, 3 }, Ints(c.GetProperty("kernel_sizes")));
        Assert.Equal(new long[] { 3, 3, 7, 7 }, Ints(c.GetProperty("kernel_sizes1")));
        Assert.Equal(new long[] { 3, 3, 7, 7 }, Ints(c.GetProperty("kernel_sizes2")));
        using var model = new FfnetFixture(new FfnetFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        Run(model, "ffnet").Dispose();
    }

    [Fact]
    public void Generated_ffnet_deploy_form_matches_the_official_re_parameterised_FFNet()
    {
        var c = Config("ffnet_deploy", "ffnet");
        Assert.Equal(new long[] { 2, 1, 2, 1 }, Ints(c.GetProperty("depth")));          // ffnet_fixture(deploy = true)
        using var model = new FfnetFixture(new FfnetFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64(), Deploy = true });
        Run(model, "ffnet_deploy").Dispose();
    }

    [Fact]
    public void Generated_ffnet_with_layer_scale_and_7x7_channel_convs_matches_FFNet()
    {
        var c = Config("ffnet_ls", "ffnet");
        Assert.Equal(new long[] { 1, 1, 1, 1 }, Ints(c.GetProperty("depth")));          // the test model ffnet_ls_fixture
        Assert.Equal(new long[] { 7, 7, 7, 7 }, Ints(c.GetProperty("kernel_sizes")));
        Assert.True(c.GetProperty("use_layer_scale").GetBoolean());
        using var model = new FfnetLsFixture(new FfnetLsFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        Run(model, "ffnet_ls").Dispose();
    }
}
