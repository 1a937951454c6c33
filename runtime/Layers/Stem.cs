using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MetaFormer stem (timm metaformer <c>Stem</c>): a 7x7 convolution with stride 4 and padding 2, then an
/// optional norm.
/// </summary>
/// <remarks>
/// Shape contract: [B, inChannels, H, W] → [B, outChannels, floor((H - 3) / 4) + 1, floor((W - 3) / 4) + 1]
/// (224 → 56). Keys: <c>conv.weight</c> [out, in, 7, 7], <c>conv.bias</c> [out], <c>norm.*</c>?.
/// </remarks>
public sealed class Stem : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>The 7x7 / stride 4 / padding 2 convolution (with bias).</summary>
    public readonly Conv2d conv;

    /// <summary>Norm over the output channels (Identity when none).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Creates a Stem.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="normLayer">Factory of the norm, given <paramref name="outChannels"/> (default: none).</param>
    /// <param name="device">Device of the convolution's parameters.</param>
    /// <param name="dtype">Element type of the convolution's parameters.</param>
    public Stem(int inChannels, int outChannels, Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        Device? device = null, ScalarType? dtype = null)
        : base(nameof(Stem))
    {
        conv = nn.Conv2d(inChannels, outChannels, 7, stride: 4, padding: 2, device: device, dtype: dtype);
        norm = normLayer is null ? nn.Identity() : normLayer(outChannels);
        RegisterComponents();
    }

    /// <summary>Convolves then normalizes.</summary>
    /// <param name="x">[B, inChannels, H, W].</param>
    /// <returns>[B, outChannels, H', W'].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = norm.forward(conv.forward(x));
        return y.MoveToOuterDisposeScope();
    }
}
