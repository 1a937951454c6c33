using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Mix.Generated.Models;
using Mix.Generated.Std;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The regions the planner finds in the third catalog part's models (issue 14: run 16j counted none in MambaOut,
/// iFormer, FFNet, MS-MLP, RaftMLP and WaveMix): which sub-blocks get which regions, and whole forwards of the parity
/// fixtures with every region emulated (g++; float32, 1e-5 relative) against the same forwards on the reference lambdas.
/// </summary>
// Counts launches through the emulator: never beside another class that runs emulated regions.
[Collection(nameof(PlannerSwitchCollection))]
public class Catalog3RegionTests
{
    static List<FusedRegionKernel> RegionsOf(Type t) =>
        t.GetNestedType("MixRegions", BindingFlags.NonPublic)?.GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Where(f => f.FieldType == typeof(FusedRegionKernel)).Select(f => (FusedRegionKernel)f.GetValue(null)!).ToList() ?? new();

    [Fact]
    public void MambaOut_gate_is_one_region_around_the_activation_layer()
    {
        // act(g) * concat([i, conv(c)]): the activation layer is chosen per instance, computed by the number it binds.
        var gate = Assert.Single(RegionsOf(typeof(GatedCnnBlock)));
        Assert.False(gate.IsRow);
        Assert.Equal(2, gate.Inputs);   // g and the concatenation
        Assert.Equal(1, gate.Scalars);  // FusedRegion.ActivationCode(act)
        Assert.Contains("mix_act(s[0], in[0])", gate.Source);
        Assert.Contains("(g, t0) => act.call(g) * t0", gate.Source);
    }

    [Fact]
    public void Activation_layers_bind_the_number_the_kernel_computes_them_by()
    {
        Assert.Equal(0, FusedRegion.ActivationCode(nn.Identity()));
        Assert.Equal(1, FusedRegion.ActivationCode(nn.ReLU()));
        Assert.Equal(2, FusedRegion.ActivationCode(nn.GELU()));
        Assert.Equal(3, FusedRegion.ActivationCode(nn.SiLU()));
        Assert.Equal(4, FusedRegion.ActivationCode(nn.Sigmoid()));
        Assert.Equal(5, FusedRegion.ActivationCode(nn.Tanh()));
        Assert.Equal(6, FusedRegion.ActivationCode(Builtin.SquaredReLU()));
        Assert.True(double.IsNaN(FusedRegion.ActivationCode(nn.GELU(approximate: TorchSharp.Modules.GELU.Approximate.tanh))));
        Assert.True(double.IsNaN(FusedRegion.ActivationCode(Builtin.StarReLU())));
        Assert.True(double.IsNaN(FusedRegion.ActivationCode(nn.Softplus())));
    }

    public static IEnumerable<object[]> Acts() => new[] { "identity", "relu", "gelu", "silu", "sigmoid", "tanh", "squared_relu", "starrelu", "gelu_tanh" }
        .Select(a => new object[] { a });

    static nn.Module<Tensor, Tensor> Act(string name) => name switch
    {
        "identity" => Builtin.Identity(),
        "relu" => Builtin.ReLU(),
        "gelu" => Builtin.GELU(),
        "silu" => Builtin.SiLU(),
        "sigmoid" => Builtin.Sigmoid(),
        "tanh" => Builtin.Tanh(),
        "squared_relu" => Builtin.SquaredReLU(),
        "starrelu" => Builtin.StarReLU(scaleValue: 0.8, biasValue: -0.1),
        "gelu_tanh" => nn.GELU(approximate: TorchSharp.Modules.GELU.Approximate.tanh),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Acts))]
    public void A_gated_cnn_block_with_each_activation_matches_its_reference_with_the_gate_emulated(string act)
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(5);
        // conv_ratio 0.75: the identity part i is not empty; odd sizes.
        using var block = new GatedCnnBlock(new GatedCnnBlock.Options(12) { ConvRatio = 0.75, Act = () => Act(act) });
        block.eval();
        using var _ = torch.no_grad();
        var x = torch.randn(2, 5, 7, 12);
        var reference = block.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Tensor fused;
        try { fused = block.call(x); }
        finally { FusedRegion.Emulator = null; }
        // StarReLU (weights) and the tanh GELU have no number: the region keeps its reference for that instance.
        Assert.Equal(act is "starrelu" or "gelu_tanh" ? 0 : 1, emulator.Calls);
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"{act}: relative error {err}");
    }

    public static IEnumerable<object[]> Models() =>
        new[] { "mambaout", "mambaout_options", "iformer", "ffnet_ls", "ms_mlp" }.Select(m => new object[] { m });

    static int Count<T>(nn.Module m) => m.modules().Count(x => x is T);

    static (nn.Module<Tensor, Tensor> Model, Tensor X, Func<nn.Module, int> Regions) Model(string name) => name switch
    {
        // one gate region per Gated CNN block
        "mambaout" => (new MambaoutFixture(new MambaoutFixture.Options()), torch.randn(1, 3, 36, 44), Count<GatedCnnBlock>),
        "mambaout_options" => (new MambaoutOptionsFixture(new MambaoutOptionsFixture.Options()), torch.randn(2, 3, 32, 32), Count<GatedCnnBlock>),
        // x + layer_scale * branch twice per block of the last two stages (the first two have no layer scale)
        "iformer" => (new IformerFixture(new IformerFixture.Options()), torch.randn(1, 3, 64, 64), m => 2 * (2 + 1)),
        // x + m * layer_scale per residual
        "ffnet_ls" => (new FfnetLsFixture(new FfnetLsFixture.Options()), torch.randn(1, 3, 32, 32), Count<FfnetResidual>),
        // permute(x) + gamma * h per block
        "ms_mlp" => (new MsMlpFixture(new MsMlpFixture.Options()), torch.randn(1, 3, 40, 40), Count<MixShiftBlock>),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void Emulated_regions_match_the_reference_forward(string name)
    {
        var gxx = RegionEmulator.Gxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        torch.manual_seed(11);
        var (model, x, regions) = Model(name);
        using var __ = model;
        model.eval();
        using var _ = torch.no_grad();
        var reference = model.call(x);
        using var emulator = new RegionEmulator(gxx!);
        FusedRegion.Emulator = emulator.Run;
        Tensor fused;
        try { fused = model.call(x); }
        finally { FusedRegion.Emulator = null; }
        Assert.True(emulator.Calls > 0, $"{name}: no region ran");
        Assert.Equal(regions(model), emulator.Calls);
        Assert.Equal(reference.shape, fused.shape);
        var err = ((fused - reference).norm() / reference.norm()).item<float>();
        Assert.True(err <= 1e-5, $"{name}: relative error {err} over regions {string.Join(", ", emulator.Regions)}");
    }

    [Fact]
    public void Layer_scale_residuals_become_regions_where_the_drop_path_is_the_identity()
    {
        var iformer = RegionsOf(typeof(IformerBlock));
        Assert.Equal(2, iformer.Count);
        Assert.All(iformer, r => Assert.False(r.IsRow));
        Assert.All(iformer, r => Assert.Equal(3, r.Inputs));  // x, the layer scale, the branch
        var ffnet = Assert.Single(RegionsOf(typeof(FfnetResidual)));
        Assert.Equal(3, ffnet.Inputs);
        var msMlp = Assert.Single(RegionsOf(typeof(MixShiftBlock)));
        Assert.Equal(3, msMlp.Inputs);  // permute(x), gamma, h

        // The generated line keeps the exact path wherever the drop path acts or the layer scale is absent.
        var text = System.IO.File.ReadAllText(System.IO.Path.Combine(Harness.SnapshotDir, "Mix.Std.iformer_block.g.cs"));
        Assert.Contains("x = training && options.DropPathRate != 0 ? x + Fn.DropPath(options.UseLayerScale ? layer_scale_1! * a : a, "
            + "options.DropPathRate, training) : options.UseLayerScale ? fused0.Run(x, layer_scale_1!, a, (x, t0, a) => x + t0 * a) : x + a;", text);
    }
}
