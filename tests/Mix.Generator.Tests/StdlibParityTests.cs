using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The standard library's mixers (dsl/Std/*.mix, generated into this project because Models/stdlib.mix imports
/// them) against the built-ins they re-express: same state-dict keys, shapes, parameter counts and trainable flags, and,
/// with the built-in's weights copied in by key, the same outputs and input gradients (fp32, ≤ 1e-6 relative) on
/// random inputs of odd sizes.
/// </summary>
public class StdlibParityTests
{
    const double Tolerance = 1e-6;

    static void AssertSameParameters(nn.Module builtin, nn.Module library)
    {
        var b = builtin.state_dict();
        var l = library.state_dict();
        Assert.Equal(b.Keys.OrderBy(k => k, StringComparer.Ordinal), l.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var key in b.Keys) Assert.Equal(b[key].shape, l[key].shape);
        Assert.Equal(builtin.parameters().Sum(p => p.numel()), library.parameters().Sum(p => p.numel()));
        var trainable = builtin.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        foreach (var (name, p) in library.named_parameters()) Assert.Equal(trainable[name], p.requires_grad);
    }

    /// <summary>Gives the built-in random weights (not its init, so that zero biases or unit scales hide nothing), then copies them into the library module by key.</summary>
    static void CopyWeights(nn.Module builtin, nn.Module library, long seed)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(seed);
        var target = library.state_dict();
        foreach (var (key, value) in builtin.state_dict())
        {
            if (value.is_floating_point()) value.copy_(torch.randn_like(value) * 0.5);
            target[key].copy_(value);
        }
    }

    static double RelativeError(Tensor actual, Tensor expected) =>
        (actual - expected).abs().max().item<float>() / Math.Max(expected.abs().max().item<float>(), 1e-30);

    static void AssertSameOutputs(nn.Module<Tensor, Tensor> builtin, nn.Module<Tensor, Tensor> library, params long[][] shapes)
    {
        AssertSameParameters(builtin, library);
        CopyWeights(builtin, library, 7);
        foreach (var training in new[] { false, true })
        {
            builtin.train(training);
            library.train(training);
            foreach (var shape in shapes)
            {
                using var scope = torch.NewDisposeScope();
                torch.manual_seed(shape.Sum());
                var x = torch.randn(shape, dtype: ScalarType.Float32);
                var xb = x.clone().requires_grad_(true);
                var xl = x.clone().requires_grad_(true);
                var yb = builtin.call(xb);
                var yl = library.call(xl);
                Assert.Equal(yb.shape, yl.shape);
                Assert.InRange(RelativeError(yl, yb), 0, Tolerance);
                var grad = torch.randn_like(yb);
                yb.backward(new[] { grad });
                yl.backward(new[] { grad });
                Assert.InRange(RelativeError(xl.grad!, xb.grad!), 0, Tolerance);
            }
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    public void Pool_equals_the_builtin(long poolSize)
    {
        using var builtin = Builtin.Pool(6, poolSize);
        using var library = new Std.Pool(new Std.Pool.Options(6) { PoolSize = poolSize });
        AssertSameOutputs(builtin, library, new long[] { 2, 6, 7, 9 }, new long[] { 1, 6, 5, 5 }, new long[] { 3, 6, 1, 13 });
    }

    public static IEnumerable<object[]> SepConvCases() => new[]
    {
        new object[] { 8L, 2.0, "starrelu", "identity", false, 7L, 3L },
        new object[] { 6L, 1.5, "gelu", "relu", true, 3L, 1L },
        new object[] { 5L, 3.0, "squared_relu", "starrelu", true, 5L, 2L },
    };

    static ActFactory Act(string name) => name switch
    {
        "starrelu" => () => Builtin.StarReLU(),
        "identity" => () => Builtin.Identity(),
        "gelu" => () => Builtin.GELU(),
        "relu" => () => Builtin.ReLU(),
        "squared_relu" => () => Builtin.SquaredReLU(),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(SepConvCases))]
    public void Sepconv_equals_the_builtin(long dim, double expansion, string act1, string act2, bool bias, long kernel, long padding)
    {
        using var builtin = Builtin.SepConv(dim, expansion, Act(act1), Act(act2), bias, kernel, padding);
        using var library = new Std.SepConv(new Std.SepConv.Options(dim)
        {
            ExpansionRatio = expansion, Act1 = Act(act1), Act2 = Act(act2), Bias = bias,
            KernelSize = kernel, Padding = padding,
        });
        AssertSameOutputs(builtin, library, new[] { 2, dim, 7, 9 }, new[] { 1, dim, 3, 3 }, new[] { 3, dim, 11, 5 });
    }

    public static IEnumerable<object[]> AttentionCases() => new[]
    {
        new object[] { 32L, 8L, null!, false, false, false },
        new object[] { 20L, 8L, 3L, true, true, false },
        new object[] { 24L, 6L, null!, true, false, true },
        new object[] { 16L, 16L, null!, false, true, false },
        new object[] { 48L, 32L, null!, false, false, true },
    };

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void Attention_equals_the_builtin(long dim, long headDim, long? numHeads, bool qkvBias, bool projBias, bool causal)
    {
        using var builtin = Builtin.Attention(dim, headDim, numHeads, qkvBias, projBias, causal: causal);
        using var library = new Std.Attention(new Std.Attention.Options(dim)
        {
            HeadDim = headDim, NumHeads = numHeads, QkvBias = qkvBias, ProjBias = projBias, Causal = causal,
        });
        AssertSameOutputs(builtin, library, new[] { 2, 7L, dim }, new[] { 1, 1L, dim }, new[] { 3, 13L, dim });
    }

    [Theory]
    [InlineData(3L, 4L)]
    [InlineData(5L, 7L)]
    [InlineData(1L, 1L)]
    public void Random_mixing_equals_the_builtin(long h, long w)
    {
        using var builtin = Builtin.RandomMixing(6, h * w);
        using var library = new Std.RandomMixing(new Std.RandomMixing.Options(6, h * w));
        AssertSameOutputs(builtin, library, new[] { 2, 6, h, w }, new[] { 1, 6, h, w });
        // Frozen like the built-in, and row-stochastic from its init.
        using var fresh = new Std.RandomMixing(new Std.RandomMixing.Options(6, h * w));
        var matrix = fresh.state_dict()["random_matrix"];
        Assert.False(fresh.parameters().Single().requires_grad);
        Assert.InRange((matrix.sum(1) - 1).abs().max().item<float>(), 0, 1e-5);
    }

    // Square grids: the runtime GlobalFilter reads [B, N, C] as a square grid (the library takes any h × w).
    [Theory]
    [InlineData(4L, 6L)]
    [InlineData(7L, 5L)]
    [InlineData(1L, 3L)]
    public void Global_filter_equals_the_builtin(long side, long dim)
    {
        using var builtin = Builtin.GlobalFilter(dim, side, side);
        using var library = new Std.GlobalFilter(new Std.GlobalFilter.Options(dim, side, side));
        AssertSameOutputs(builtin, library, new[] { 2, side * side, dim }, new[] { 3, side * side, dim });
    }

    [Theory]
    [InlineData(16L, 4L, 1.0, 1L)]
    [InlineData(12L, 3L, 0.5, 2L)]
    [InlineData(8L, 8L, 0.34, 1L)]
    public void Afno_equals_the_builtin(long dim, long blocks, double fraction, long factor)
    {
        using var builtin = Builtin.Afno(dim, blocks, 0.01, fraction, factor);
        using var library = new Std.Afno(new Std.Afno.Options(dim)
        {
            NumBlocks = blocks, HardThresholdingFraction = fraction, HiddenSizeFactor = factor,
        });
        AssertSameOutputs(builtin, library, new[] { 2, 5, 7, dim }, new[] { 1, 4, 4, dim }, new[] { 2, 3, 6, dim });
    }

    [Theory]
    [InlineData(16L, 4L, 1L)]
    [InlineData(12L, 3L, 2L)]
    public void Aff_equals_the_builtin(long dim, long blocks, long factor)
    {
        using var builtin = Builtin.Aff(dim, blocks, 0.01, 1.0, factor);
        using var library = new Std.Aff(new Std.Aff.Options(dim) { NumBlocks = blocks, HiddenSizeFactor = factor });
        AssertSameOutputs(builtin, library, new[] { 2, 5, 7, dim }, new[] { 1, 4, 4, dim }, new[] { 2, 3, 6, dim });
    }

    [Theory]
    [InlineData(8L, 16L, 4L, 2L, null, false, true)]
    [InlineData(12L, 4L, 3L, 1L, 3L, true, false)]
    [InlineData(20L, 6L, 2L, 2L, null, true, true)]
    public void Mamba_equals_the_builtin(long dim, long dState, long dConv, long expand, long? dtRank, bool bias, bool convBias)
    {
        using var builtin = Builtin.Mamba(dim, dState, dConv, expand, dtRank, bias, convBias);
        using var library = new Std.Mamba(new Std.Mamba.Options(dim)
        {
            DState = dState, DConv = dConv, Expand = expand, DtRank = dtRank, Bias = bias, ConvBias = convBias,
        });
        AssertSameOutputs(builtin, library, new[] { 2, 7L, dim }, new[] { 1, 1L, dim }, new[] { 3, 2L, dim }, new[] { 1, 33L, dim });
    }

    /// <summary><c>ceil(dim / 16)</c> on whole numbers: the generated code rounds the exact quotient up, as the checker
    /// does (C#'s long division alone would floor it: dim 17 gave rank 1).</summary>
    [Theory]
    [InlineData(16L, 1L)]
    [InlineData(17L, 2L)]
    [InlineData(33L, 3L)]
    [InlineData(768L, 48L)]
    public void Generated_ceil_of_a_whole_quotient_rounds_up_like_the_checker(long dim, long rank)
    {
        using var library = new Std.Mamba(new Std.Mamba.Options(dim));
        Assert.Equal(rank, library.dt_proj.state_dict()["weight"].shape[1]);
        using var builtin = (Mix.Runtime.MambaMixer)Builtin.Mamba(dim, 16, 4, 2, null, false, true);
        Assert.Equal(builtin.TimeStepRank, rank);
        var c = Mix.Dsl.MixCompilation.Create("m.mix",
            $"import \"mix/std/mamba.mix\"\nblock b() (x: [B, L, {dim}]) -> [B, L, {dim}] {{\n  m = mamba(dim = {dim})\n  return m(x)\n}}\n");
        Assert.False(c.HasErrors, string.Join("\n", c.Diagnostics));
        var node = c.Find("b")!.Root!.Children.Single(n => n.Name == "m").Children.Single(n => n.Name == "dt_proj");
        Assert.Equal(rank, node.Weights.Single(w => w.Name == "weight").Shape[1].AsLong);
    }

    [Fact]
    public void Fused_dispatch_recognizes_the_library_mixers_as_their_kernels()
    {
        using var pool = new Std.Pool(new Std.Pool.Options(8));
        Assert.Equal("pooling", KernelModules.KernelOf(pool));
        Assert.Equal(3L, KernelModules.PoolSize(pool));
        using var pool5 = new Std.Pool(new Std.Pool.Options(8) { PoolSize = 5 });
        Assert.Equal(5L, KernelModules.PoolSize(pool5));
        Assert.Equal(KernelModules.PoolSize(new Mix.Runtime.Pooling(5)), KernelModules.PoolSize(pool5));

        using var sep = new Std.SepConv(new Std.SepConv.Options(8) { Bias = true });
        Assert.Equal("sepconv", KernelModules.KernelOf(sep));
        var parts = KernelModules.SepConvOf(sep);
        Assert.NotNull(parts);
        // The kernel reads the module's own layers (the same weights), in the built-in's roles.
        Assert.Same(sep.pwconv1, parts!.Pwconv1);
        Assert.Same(sep.act1, parts.Act1);
        Assert.Same(sep.dwconv, parts.Dwconv);
        Assert.Same(sep.act2, parts.Act2);
        Assert.Same(sep.pwconv2, parts.Pwconv2);
        Assert.Same(parts, KernelModules.SepConvOf(sep)); // read once per instance

        using var square = new Std.GlobalFilter(new Std.GlobalFilter.Options(8, 4, 4));
        Assert.Equal("global_filter", KernelModules.KernelOf(square));
        Assert.Equal(square.state_dict()["complex_weight"].shape, KernelModules.GlobalFilterWeight(square)!.shape);
        // The fused filter reads [B, N, C] as a square grid, as the built-in does; another grid keeps the module.
        using var wide = new Std.GlobalFilter(new Std.GlobalFilter.Options(8, 2, 8));
        Assert.Null(KernelModules.KernelOf(wide));
        Assert.Null(KernelModules.GlobalFilterWeight(wide));

        using var mamba = new Std.Mamba(new Std.Mamba.Options(8));
        Assert.Equal("mamba", KernelModules.KernelOf(mamba));
        Assert.True(KernelModules.IsMamba(mamba));

        // No kernel was declared for these (none exists for their built-ins either).
        foreach (var other in new nn.Module[] { new Std.Afno(new Std.Afno.Options(8)), new Std.Aff(new Std.Aff.Options(8)),
                     new Std.RandomMixing(new Std.RandomMixing.Options(8, 4)) })
            Assert.Null(KernelModules.KernelOf(other));

        using var attention = new Std.Attention(new Std.Attention.Options(16) { HeadDim = 8 });
        Assert.Null(KernelModules.KernelOf(attention));
        Assert.Null(KernelModules.KernelOf(Builtin.Attention(16, 8)));
        Assert.False(KernelModules.IsMamba(attention));
    }

    /// <summary>The zoo's token mixers are the library's, and the fused dispatch sees in them the kernels it saw in the built-ins.</summary>
    [Fact]
    public void Zoo_models_use_the_library_mixers_that_the_fused_dispatch_recognizes()
    {
        static List<nn.Module> Mixers(nn.Module model) =>
            model.named_modules().Where(m => m.name.EndsWith(".token_mixer", StringComparison.Ordinal)).Select(m => m.module).ToList();

        using var poolformer = new Mix.Generated.Models.PoolformerS12();
        var pools = Mixers(poolformer);
        Assert.Equal(12, pools.Count);
        Assert.All(pools, m => Assert.IsType<Std.Pool>(m));
        Assert.All(pools, m => Assert.Equal(3L, KernelModules.PoolSize(m)));

        using var convformer = new Mix.Generated.Models.ConvformerS18();
        var seps = Mixers(convformer);
        Assert.Equal(18, seps.Count);
        Assert.All(seps, m => Assert.Equal("sepconv", KernelModules.KernelOf(m)));

        using var caformer = new Mix.Generated.Models.CaformerS18();
        var mixers = Mixers(caformer);
        Assert.Equal(6, mixers.Count(m => m is Std.SepConv && KernelModules.KernelOf(m) == "sepconv"));
        Assert.Equal(12, mixers.Count(m => m is Std.Attention));

        using var randformer = new Mix.Generated.Models.RandformerS12();
        var random = Mixers(randformer).OfType<Std.RandomMixing>().ToList();
        Assert.Equal(8, random.Count); // stages 3 and 4 (6 + 2 blocks)
        Assert.All(random, m => Assert.False(m.parameters().Single().requires_grad));
    }
}
