using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MetaFormer downsampling (timm metaformer <c>Downsampling</c>): an optional norm over the input channels,
/// then a convolution (MetaFormer stages use kernel 3, stride 2, padding 1).
/// </summary>
/// <remarks>
/// Shape contract: [B, inChannels, H, W] → [B, outChannels, H', W'] with
/// H' = floor((H + 2·padding − kernelSize) / stride) + 1. Keys: <c>norm.*</c>?, <c>conv.weight</c>
/// [out, in, k, k], <c>conv.bias</c> [out].
/// </remarks>
public sealed class Downsampling : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Norm over the input channels (Identity when none).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>The strided convolution (with bias).</summary>
    public readonly Conv2d conv;

    /// <summary>Creates a Downsampling.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Convolution kernel size.</param>
    /// <param name="stride">Convolution stride.</param>
    /// <param name="padding">Convolution zero padding.</param>
    /// <param name="normLayer">Factory of the norm, given <paramref name="inChannels"/> (default: none).</param>
    /// <param name="device">Device of the convolution's parameters.</param>
    /// <param name="dtype">Element type of the convolution's parameters.</param>
    public Downsampling(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null, Device? device = null, ScalarType? dtype = null)
        : base(nameof(Downsampling))
    {
        norm = normLayer is null ? nn.Identity() : normLayer(inChannels);
        conv = nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>Normalizes then convolves.</summary>
    /// <param name="x">[B, inChannels, H, W].</param>
    /// <returns>[B, outChannels, H', W'].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = conv.forward(norm.forward(x));
        return y.MoveToOuterDisposeScope();
    }
}
