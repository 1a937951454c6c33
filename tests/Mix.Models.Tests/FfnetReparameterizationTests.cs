using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using Mix.Zoo;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.ZooTests;

/// <summary>
/// <see cref="FfnetReparameterization"/> against the official re-parameterisation: the zoo's <c>ffnet</c> at the
/// <c>ffnet</c> fixture's configuration (tests/parity/make_catalog3c_fixtures.py: ffnet_1's layout at small widths, the
/// official training-form weights with every parameter and BatchNorm statistic re-drawn) is fused here, and the fused
/// state dict must have exactly the keys of the official deploy model (fixture <c>ffnet_deploy</c>, made by
/// export_model.py's <c>replace_batchnorm</c>) with the same values, and the deploy-form model loaded with it must give
/// the training form's eval output (≤ 1e-5 relative) and the official deploy output (≤ 1e-4 of the output scale).
/// </summary>
public class FfnetReparameterizationTests
{
    static string Fixture(string file) => Path.Combine(Repo.Root, "tests", "Mix.Runtime.Tests", "Fixtures", "parity", file);

    static Tensor Read(string name, string tensor)
    {
        using var io = SafeTensorsFile.Open(Fixture(name + ".io.safetensors"));
        return io.Read(tensor);
    }

    // The ffnet fixture's configuration (its config.json, asserted in Mix.Generator.Tests' Catalog3cParityTests).
    static Ffnet Build(bool deploy, bool layerScale = false) => new(new Ffnet.Options
    {
        NumClasses = 10, EmbedDim = new long[] { 8, 16, 32, 32 }, InDim = 8,
        Depth = layerScale ? new long[] { 1, 1, 1, 1 } : new long[] { 2, 1, 2, 1 },
        KernelSizes = layerScale ? new long[] { 7, 7, 7, 7 } : new long[] { 3, 3, 3, 3 },
        KernelSizes1 = new long[] { 3, 3, 7, 7 }, KernelSizes2 = new long[] { 3, 3, 7, 7 },
        UseLayerScale = layerScale, LayerScaleInitValue = 1e-6, Deploy = deploy,
    });

    static double MaxRelative(Tensor reference, Tensor actual)
    {
        using var scope = torch.NewDisposeScope();
        var r = reference.to_type(ScalarType.Float64);
        return (actual.to_type(ScalarType.Float64) - r).abs().max().item<double>() / Math.Max(1e-12, r.abs().max().item<double>());
    }

    [Fact]
    public void Fused_weights_are_the_official_deploy_weights_and_keep_the_output()
    {
        if (!File.Exists(Fixture("ffnet_deploy.weights.safetensors")))
            Assert.Skip("fixtures ffnet / ffnet_deploy not made yet: run `/usr/bin/python3 tests/parity/make_catalog3c_fixtures.py --only ffnet ...` (see tests/Mix.Runtime.Tests/Fixtures/parity/README.md)");
        using var scope = torch.NewDisposeScope();
        using var train = Build(deploy: false);
        Assert.True(CheckpointLoader.Load(train, Fixture("ffnet.weights.safetensors"), strict: true).IsExactMatch);
        train.eval();
        using var official = Build(deploy: true);                                   // the official deploy weights
        Assert.True(CheckpointLoader.Load(official, Fixture("ffnet_deploy.weights.safetensors"), strict: true).IsExactMatch);

        var fused = FfnetReparameterization.DeployStateDict(train.state_dict());
        var expected = official.state_dict();
        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), fused.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (key, value) in expected)
        {
            Assert.Equal(value.shape, fused[key].shape);
            if (value.dtype != ScalarType.Float32) continue;                             // num_batches_tracked of the kept norm
            double err = MaxRelative(value, fused[key]);
            Assert.True(err <= 1e-5, $"{key}: fused weight differs from the official by {err:G3} (relative to its max)");
        }

        using var deploy = Build(deploy: true);
        FfnetReparameterization.LoadDeployForm(train, deploy);
        deploy.eval();
        using var _ = torch.no_grad();
        var x = Read("ffnet", "x");
        var yTrain = train.call(x);
        var yDeploy = deploy.call(x);
        double rel = MaxRelative(yTrain, yDeploy);
        Assert.True(rel <= 1e-5, $"deploy form vs training form: {rel:G3} relative");
        var yOfficial = Read("ffnet_deploy", "y");
        double vsOfficial = (yDeploy - yOfficial).abs().max().item<float>() / Math.Max(1.0, yOfficial.abs().max().item<float>());
        Assert.True(vsOfficial <= 1e-4, $"deploy form vs the official deploy output: {vsOfficial:G3}");
    }

    [Fact]
    public void Fusing_7x7_channel_convs_with_layer_scale_keeps_the_output()
    {
        if (!File.Exists(Fixture("ffnet_ls.weights.safetensors")))
            Assert.Skip("fixture ffnet_ls not made yet: run `/usr/bin/python3 tests/parity/make_catalog3c_fixtures.py --only ffnet ...`");
        using var scope = torch.NewDisposeScope();
        using var train = Build(deploy: false, layerScale: true);
        Assert.True(CheckpointLoader.Load(train, Fixture("ffnet_ls.weights.safetensors"), strict: true).IsExactMatch);
        train.eval();
        using var deploy = Build(deploy: true, layerScale: true);
        FfnetReparameterization.LoadDeployForm(train, deploy);
        deploy.eval();
        Assert.DoesNotContain(deploy.state_dict().Keys, k => k.Contains(".bn.") || k.Contains(".conv1.c."));
        Assert.Equal(new long[] { 32, 1, 7, 7 }, deploy.state_dict()["stages.3.1.channel_mixer.main.conv.weight"].shape);
        using var _ = torch.no_grad();
        var x = Read("ffnet_ls", "x");
        double rel = MaxRelative(train.call(x), deploy.call(x));
        Assert.True(rel <= 1e-5, $"deploy form vs training form: {rel:G3} relative");
        // The fixture's own reference: the training form is the official model's output.
        var y = Read("ffnet_ls", "y");
        Assert.True(MaxRelative(y, deploy.call(x)) <= 1e-4);
    }

    [Fact]
    public void A_deploy_model_of_another_configuration_is_refused_with_the_keys_named()
    {
        using var train = Build(deploy: false);
        using var other = Build(deploy: false);                                      // not the deploy form
        var e = Assert.Throws<ArgumentException>(() => FfnetReparameterization.LoadDeployForm(train, other));
        Assert.Contains("missing [", e.Message);
        Assert.Contains("patch_embed.0.c.weight", e.Message);
    }

    [Theory]
    [InlineData(1, 37, 45)]    // batch 1, odd and non-square maps: every strided conv takes ceil(n / 2)
    [InlineData(3, 17, 16)]
    public void Deploy_form_equals_the_training_form_at_odd_sizes(long batch, long h, long w)
    {
        using var scope = torch.NewDisposeScope();
        using var train = Build(deploy: false, layerScale: true);
        var g = new torch.Generator(17);
        using (torch.no_grad())
        {
            foreach (var (name, p) in train.named_parameters())
                p.copy_(name.EndsWith(".bn.weight") ? torch.rand(p.shape, generator: g) + 0.5 : torch.randn(p.shape, generator: g) * 0.3);
            foreach (var (name, b) in train.named_buffers())
                if (name.EndsWith("running_mean")) b.copy_(torch.randn(b.shape, generator: g) * 0.2);
                else if (name.EndsWith("running_var")) b.copy_(torch.rand(b.shape, generator: g) + 0.5);
        }
        train.eval();
        using var deploy = Build(deploy: true, layerScale: true);
        FfnetReparameterization.LoadDeployForm(train, deploy);
        deploy.eval();
        using var _ = torch.no_grad();
        var x = torch.randn(new long[] { batch, 3, h, w }, generator: g);
        var y = train.call(x);
        Assert.Equal(new long[] { batch, 10 }, y.shape);
        double rel = MaxRelative(y, deploy.call(x));
        Assert.True(rel <= 1e-5, $"deploy vs training form at {h}×{w}: {rel:G3} relative");
    }
}
