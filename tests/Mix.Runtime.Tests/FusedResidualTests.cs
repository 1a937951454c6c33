using System;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>Tests that switch fused kernels off or wrap the dispatch hooks: they run one at a time.</summary>
[CollectionDefinition(nameof(FusedSwitchCollection), DisableParallelization = true)]
public sealed class FusedSwitchCollection;

/// <summary>
/// Residual sub-blocks through <see cref="MixDispatch"/>: on the CPU the reference expression runs and the fused hook is
/// never asked; on CUDA without gradients PoolFormer, ConvFormer and channels-last MLP sub-blocks take the fused path
/// (counted through the hook) and match the reference within float32 1e-4 (TF32 convolutions on both sides) and
/// bfloat16 2e-2 (the reference rounds every intermediate to bfloat16).
/// </summary>
[Collection(nameof(FusedSwitchCollection))]
public class FusedResidualTests
{
    /// <summary>Runs <paramref name="body"/> with the residual hook wrapped to count the sub-blocks it fused.</summary>
    internal static int CountFused(Action body, Func<ResidualParts, bool>? which = null)
    {
        var inner = MixDispatch.FusedResidual;
        int hits = 0;
        MixDispatch.FusedResidual = (p, x) =>
        {
            var y = inner?.Invoke(p, x);
            if (y is not null && (which?.Invoke(p) ?? true)) hits++;
            return y;
        };
        try { body(); }
        finally { MixDispatch.FusedResidual = inner; }
        return hits;
    }

    /// <summary>The output with fused kernels off, then on; restores the switch.</summary>
    internal static (Tensor reference, Tensor fused, int hits) ReferenceAndFused(Func<Tensor> run)
    {
        var before = MixDispatch.FusedEnabled;
        try
        {
            MixDispatch.FusedEnabled = false;
            var reference = run();
            MixDispatch.FusedEnabled = true;
            Tensor? fused = null;
            int hits = CountFused(() => fused = run());
            return (reference, fused!, hits);
        }
        finally { MixDispatch.FusedEnabled = before; }
    }

    // The zoo's generated metaformer_block (models/metaformer.mix) in PoolFormer's and ConvFormer's configurations.
    private static Mix.Zoo.MetaformerBlock PoolFormerBlock(int dim) => ZooBlocks.PoolFormer(dim, layerScale: 0.5);

    private static Mix.Zoo.MetaformerBlock ConvFormerBlock(int dim) =>
        ZooBlocks.MetaFormer(dim, d => Builtin.SepConv(d), d => Builtin.LayerNorm2dNoBias(d), resScale: 1.0);

    private static void Randomize(nn.Module m)
    {
        using var _ = torch.no_grad();
        foreach (var p in m.parameters()) p.copy_(torch.randn_like(p) * 0.5 + (p.dim() == 1 ? 1.0 : 0.0));
    }

    [Fact]
    public void OnTheCpuTheReferenceExpressionRunsAndTheHookIsNotAsked()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(5);
        var norm = new GroupNorm1(6);
        var mlp = new Mlp(6, 24, bias: true, useConv: true);
        var ls = new Scale(6, 0.3);
        var rs = new Scale(6, 0.9);
        Randomize(norm); Randomize(mlp); Randomize(ls); Randomize(rs);
        var x = torch.randn(2, 6, 5, 7);
        var expected = rs.call(x) + ls.call(mlp.call(norm.call(x)));
        Tensor? y = null;
        int hits = 0, asked = 0;
        var inner = MixDispatch.FusedResidual;
        MixDispatch.FusedResidual = (p, t) => { asked++; return inner?.Invoke(p, t); };
        try { hits = CountFused(() => y = MixDispatch.Residual(x, norm, mlp, ls, rs)); }
        finally { MixDispatch.FusedResidual = inner; }
        Assert.Equal(0, asked);
        Assert.Equal(0, hits);
        Assert.Equal(0.0, (y! - expected).abs().max().item<float>());
    }

    [Fact]
    public void ReferencePathAppliesDropPathWhileTrainingAndSkipsItInEval()
    {
        using var scope = torch.NewDisposeScope();
        var norm = nn.Identity();
        var branch = nn.Identity();
        var x = torch.ones(64, 3);
        // p = 0.5 while training: each sample's branch is either dropped (x + 0) or kept and rescaled (x + 2x)
        var y = MixDispatch.Residual(x, norm, branch, dropPath: 0.5, training: true);
        var rows = y[.., 0];
        Assert.True((rows.eq(1) | rows.eq(3)).all().item<bool>());
        Assert.True(rows.eq(1).any().item<bool>() && rows.eq(3).any().item<bool>());
        var eval = MixDispatch.Residual(x, norm, branch, dropPath: 0.5, training: false);
        Assert.True(eval.eq(2).all().item<bool>());
    }

    [Theory]
    [InlineData("f32", false)]
    [InlineData("bf16", false)]
    [InlineData("f32", true)]
    public void PoolFormerBlockFusesBothSubBlocks(string dtype, bool channelsLastInput)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(11);
        var m = PoolFormerBlock(32);
        Randomize(m);
        m.to(Gpu.Device).to(dt).eval();
        var x = torch.randn(3, 32, 14, 14, device: Gpu.Device).to_type(dt);
        if (channelsLastInput) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        var (reference, fused, hits) = ReferenceAndFused(() => m.forward(x));
        Assert.Equal(2, hits);
        Assert.InRange(Gpu.RelErr(fused, reference), 0, Gpu.Tol(dt, 1e-4, 1e-2, 2e-2));
    }

    [Theory]
    [InlineData("f32", false)]
    [InlineData("bf16", true)]
    public void ConvFormerBlockFusesSepConvAndMlpSubBlocks(string dtype, bool channelsLastInput)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(12);
        var m = ConvFormerBlock(32);
        Randomize(m);
        m.to(Gpu.Device).to(dt).eval();
        var x = torch.randn(2, 32, 14, 14, device: Gpu.Device).to_type(dt);
        if (channelsLastInput) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        var (reference, fused, hits) = ReferenceAndFused(() => m.forward(x));
        Assert.Equal(2, hits);
        Assert.InRange(Gpu.RelErr(fused, reference), 0, Gpu.Tol(dt, 1e-4, 1e-2, 2e-2));
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("bf16")]
    public void ChannelsLastLinearMlpSubBlockIsFused(string dtype)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(13);
        var m = ZooBlocks.MetaFormer(48, d => Builtin.Attention(d, headDim: 16), d => Builtin.LayerNormNoBias(d),
            useNchw: false, layerScale: 0.7, resScale: 1.1);
        Randomize(m);
        m.to(Gpu.Device).to(dt).eval();
        // the generated block takes [B, C, H, W] and runs its channels-last sub-blocks on tokens(x)
        var x = torch.randn(2, 48, 7, 7, device: Gpu.Device).to_type(dt);
        var (reference, fused, hits) = ReferenceAndFused(() => m.forward(x));
        // the attention sub-block's scales and add run as one epilogue; the MLP as linear, bias + StarReLU, linear, epilogue
        Assert.Equal(2, hits);
        Assert.InRange(Gpu.RelErr(fused, reference), 0, Gpu.Tol(dt, 1e-4, 1e-2, 2e-2));
    }

    [Fact]
    public void TrainingWithDropPathKeepsTheReferencePath()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var m = ZooBlocks.MetaFormer(16, d => Builtin.Pool(d), d => Builtin.GroupNorm1(d), dropPath: 0.2, layerScale: 0.5).to(Gpu.Device);
        m.train();
        var x = torch.randn(2, 16, 8, 8, device: Gpu.Device);
        Assert.Equal(0, CountFused(() => m.forward(x)));
        m.eval();
        Assert.Equal(2, CountFused(() => m.forward(x)));
    }

    [Fact]
    public void SepConvMixerCallSiteFusesItsActivation()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var sep = new SepConv(24);
        Randomize(sep);
        sep.to(Gpu.Device).eval();
        var x = torch.randn(2, 24, 9, 9, device: Gpu.Device);
        var fused = FusedMixers.TryForward(sep, x);
        Assert.NotNull(fused);
        Assert.InRange(Gpu.RelErr(fused!, MixDispatch.TokenMixer(sep, x, allowFused: false)), 0, 1e-4);
    }
}
