using System;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// One MetaFormer block (timm metaformer <c>MetaFormerBlock</c>):
/// <code>
/// x = res_scale1(x) + layer_scale1(drop_path1(token_mixer(norm1(x))))
/// x = res_scale2(x) + layer_scale2(drop_path2(mlp(norm2(x))))
/// </code>
/// <c>mlp</c> is a timm <see cref="Mlp"/> with hidden width 4·dim (1x1 convs when <c>useNchw</c>, Linears otherwise).
/// Layer/res scales are <see cref="Scale"/>s when their init value is given and Identity (no keys) when null;
/// drop paths are <see cref="DropPath"/> when <c>dropPath</c> &gt; 0, else Identity.
/// </summary>
/// <remarks>
/// Shape contract: [B, dim, H, W] in and out when <c>useNchw</c>; [B, N, dim] in and out otherwise (attention
/// stages). Keys: <c>norm1.*</c>, <c>token_mixer.*</c>, <c>layer_scale1.scale</c>?, <c>res_scale1.scale</c>?,
/// <c>norm2.*</c>, <c>mlp.fc1.*</c>, <c>mlp.act.*</c>?, <c>mlp.fc2.*</c>, <c>layer_scale2.scale</c>?, <c>res_scale2.scale</c>?.
/// </remarks>
public sealed class MetaFormerBlock : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Norm before the token mixer.</summary>
    public readonly nn.Module<Tensor, Tensor> norm1;

    /// <summary>The token mixer.</summary>
    public readonly nn.Module<Tensor, Tensor> token_mixer;

    /// <summary>Stochastic depth on the mixer branch (Identity when dropPath = 0).</summary>
    public readonly nn.Module<Tensor, Tensor> drop_path1;

    /// <summary>Layer scale on the mixer branch (Identity when layerScaleInitValue is null).</summary>
    public readonly nn.Module<Tensor, Tensor> layer_scale1;

    /// <summary>Res scale on the mixer shortcut (Identity when resScaleInitValue is null).</summary>
    public readonly nn.Module<Tensor, Tensor> res_scale1;

    /// <summary>Norm before the MLP.</summary>
    public readonly nn.Module<Tensor, Tensor> norm2;

    /// <summary>The channel MLP (dim → 4·dim → dim).</summary>
    public readonly Mlp mlp;

    /// <summary>Stochastic depth on the MLP branch (Identity when dropPath = 0).</summary>
    public readonly nn.Module<Tensor, Tensor> drop_path2;

    /// <summary>Layer scale on the MLP branch (Identity when layerScaleInitValue is null).</summary>
    public readonly nn.Module<Tensor, Tensor> layer_scale2;

    /// <summary>Res scale on the MLP shortcut (Identity when resScaleInitValue is null).</summary>
    public readonly nn.Module<Tensor, Tensor> res_scale2;

    /// <summary>Creates a MetaFormer block.</summary>
    /// <param name="dim">Channels.</param>
    /// <param name="tokenMixer">Token-mixer factory, called as <c>tokenMixer(dim, projDrop)</c> (default: <see cref="Pooling"/> with pool size 3).</param>
    /// <param name="mlpAct">MLP activation factory (default: <see cref="StarReLU"/>).</param>
    /// <param name="mlpBias">Whether the MLP projections have biases.</param>
    /// <param name="normLayer">Norm factory, given <paramref name="dim"/> (default: <see cref="LayerNorm2d"/>).</param>
    /// <param name="projDrop">Dropout of the MLP (and passed to the mixer factory).</param>
    /// <param name="dropPath">Stochastic-depth probability of both branches.</param>
    /// <param name="useNchw">NCHW input (1x1-conv MLP, [dim,1,1] scales) when true; [B, N, dim] otherwise.</param>
    /// <param name="layerScaleInitValue">Layer-scale init value, or null for no layer scale.</param>
    /// <param name="resScaleInitValue">Res-scale init value, or null for no res scale.</param>
    /// <param name="device">Device of the parameters made here (factories passed in choose their own).</param>
    /// <param name="dtype">Element type of the parameters made here.</param>
    public MetaFormerBlock(
        int dim,
        Func<int, double, nn.Module<Tensor, Tensor>>? tokenMixer = null,
        Func<nn.Module<Tensor, Tensor>>? mlpAct = null,
        bool mlpBias = false,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        double projDrop = 0.0,
        double dropPath = 0.0,
        bool useNchw = true,
        double? layerScaleInitValue = null,
        double? resScaleInitValue = null,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(MetaFormerBlock))
    {
        Func<int, nn.Module<Tensor, Tensor>> norm = normLayer ?? (c => new LayerNorm2d(c, device: device, dtype: dtype));
        Func<nn.Module<Tensor, Tensor>> act = mlpAct ?? (() => new StarReLU(device: device, dtype: dtype));

        norm1 = norm(dim);
        token_mixer = tokenMixer is null ? new Pooling() : tokenMixer(dim, projDrop);
        drop_path1 = dropPath > 0.0 ? new DropPath(dropPath) : nn.Identity();
        layer_scale1 = MakeScale(dim, layerScaleInitValue, useNchw, device, dtype);
        res_scale1 = MakeScale(dim, resScaleInitValue, useNchw, device, dtype);

        norm2 = norm(dim);
        mlp = new Mlp(dim, 4 * dim, actLayer: act, bias: mlpBias, drop: projDrop, useConv: useNchw, device: device, dtype: dtype);
        drop_path2 = dropPath > 0.0 ? new DropPath(dropPath) : nn.Identity();
        layer_scale2 = MakeScale(dim, layerScaleInitValue, useNchw, device, dtype);
        res_scale2 = MakeScale(dim, resScaleInitValue, useNchw, device, dtype);
        RegisterComponents();
    }

    private static nn.Module<Tensor, Tensor> MakeScale(int dim, double? init, bool useNchw, Device? device, ScalarType? dtype)
        => init.HasValue ? new Scale(dim, init.Value, useNchw: useNchw, device: device, dtype: dtype) : nn.Identity();

    /// <summary>Applies the two residual sub-blocks.</summary>
    /// <param name="x">[B, dim, H, W] (NCHW) or [B, N, dim].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    /// <remarks>
    /// On CUDA without gradients each sub-block is offered to the fused runtime first
    /// (<see cref="MixDispatch.TryFusedResidual"/>): PoolFormer's pooling sub-block as one statistics pass and one pooling
    /// pass, MLP and SepConv branches with their bias, activation, scales and residual add fused. While training with an
    /// active drop path, or when the fused path declines, the reference expression runs.
    /// </remarks>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var x1 = TryFused(norm1, token_mixer, layer_scale1, res_scale1, drop_path1, mixer: true, x)
                 ?? res_scale1.forward(x) + layer_scale1.forward(drop_path1.forward(token_mixer.forward(norm1.forward(x))));
        var y = TryFused(norm2, mlp, layer_scale2, res_scale2, drop_path2, mixer: false, x1)
                ?? res_scale2.forward(x1) + layer_scale2.forward(drop_path2.forward(mlp.forward(norm2.forward(x1))));
        return y.MoveToOuterDisposeScope();
    }

    private Tensor? TryFused(nn.Module<Tensor, Tensor> norm, nn.Module<Tensor, Tensor> branch, nn.Module<Tensor, Tensor> layerScale,
        nn.Module<Tensor, Tensor> resScale, nn.Module<Tensor, Tensor> dropPath, bool mixer, Tensor x)
    {
        if (training && dropPath is not Identity) return null;
        return MixDispatch.TryFusedResidual(new ResidualParts(norm, branch, layerScale, resScale, mixer), x);
    }
}
