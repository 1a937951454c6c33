using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// ConvFormer token mixer: inverted separable convolution from MobileNetV2 (timm metaformer <c>SepConv</c>):
/// <c>pwconv1 (1x1, C → 2C) → act1 (StarReLU) → dwconv (7x7 depthwise, pad 3) → act2 (Identity) → pwconv2 (1x1, 2C → C)</c>,
/// no biases by default.
/// </summary>
/// <remarks>
/// Shape contract: [B, C, H, W] in, the same shape out. timm implements the pointwise layers as 1x1
/// <c>Conv2d</c>s on NCHW input (sail-sg used <c>Linear</c>s on channels-last input; timm reshapes those weights
/// on load). Keys: <c>pwconv1.weight</c> [mid, C, 1, 1], <c>act1.scale</c>, <c>act1.bias</c> [1],
/// <c>dwconv.weight</c> [mid, 1, k, k], <c>pwconv2.weight</c> [C, mid, 1, 1] (mid = expansionRatio·C).
/// </remarks>
public sealed class SepConv : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Pointwise expansion C → mid (1x1 conv).</summary>
    public readonly Conv2d pwconv1;

    /// <summary>First activation (default StarReLU).</summary>
    public readonly nn.Module<Tensor, Tensor> act1;

    /// <summary>Depthwise k x k convolution on mid channels.</summary>
    public readonly Conv2d dwconv;

    /// <summary>Second activation (default Identity).</summary>
    public readonly nn.Module<Tensor, Tensor> act2;

    /// <summary>Pointwise projection mid → C (1x1 conv).</summary>
    public readonly Conv2d pwconv2;

    /// <summary>Creates a SepConv mixer.</summary>
    /// <param name="dim">Channels C.</param>
    /// <param name="expansionRatio">mid = (int)(expansionRatio · dim).</param>
    /// <param name="act1Layer">First activation factory (default: StarReLU on this module's device/dtype).</param>
    /// <param name="act2Layer">Second activation factory (default: Identity).</param>
    /// <param name="bias">Whether the three convolutions have biases.</param>
    /// <param name="kernelSize">Depthwise kernel size.</param>
    /// <param name="padding">Depthwise padding.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public SepConv(
        int dim,
        double expansionRatio = 2,
        Func<nn.Module<Tensor, Tensor>>? act1Layer = null,
        Func<nn.Module<Tensor, Tensor>>? act2Layer = null,
        bool bias = false,
        int kernelSize = 7,
        int padding = 3,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(SepConv))
    {
        int mid = (int)(expansionRatio * dim);
        pwconv1 = nn.Conv2d(dim, mid, 1, bias: bias, device: device, dtype: dtype);
        act1 = act1Layer is null ? new StarReLU(device: device, dtype: dtype) : act1Layer();
        dwconv = nn.Conv2d(mid, mid, kernelSize, padding: padding, groups: mid, bias: bias, device: device, dtype: dtype);
        act2 = act2Layer is null ? nn.Identity() : act2Layer();
        pwconv2 = nn.Conv2d(mid, dim, 1, bias: bias, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>Applies the inverted separable convolution.</summary>
    /// <param name="x">[B, C, H, W].</param>
    /// <returns>[B, C, H, W].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = PointwiseConv.Forward(pwconv1, x);
        h = act1.forward(h);
        h = dwconv.forward(h);
        h = act2.forward(h);
        var y = PointwiseConv.Forward(pwconv2, h);
        return y.MoveToOuterDisposeScope();
    }
}
