using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Per-channel scaling by a learnable vector (timm metaformer <c>Scale</c>; used for layer scale and res scale).
/// </summary>
/// <remarks>
/// Shape contract: with <c>useNchw</c> the input is [B, dim, H, W] (the scale is viewed as [dim, 1, 1]);
/// otherwise the input is [..., dim] (channels last). Output has the input's shape. Key: <c>scale</c> [dim].
/// </remarks>
public sealed class Scale : torch.nn.Module<Tensor, Tensor>
{
    private readonly long[] _shape;

    /// <summary>The scale vector, shape [dim].</summary>
    public Parameter scale;

    /// <summary>Whether the channels are dimension 1 of the input (NCHW); otherwise they are the last dimension.</summary>
    public bool ChannelsFirst => _shape.Length == 3;

    /// <summary>Creates a Scale.</summary>
    /// <param name="dim">Number of channels.</param>
    /// <param name="initValue">Initial value of every element of <c>scale</c>.</param>
    /// <param name="trainable">Whether <c>scale</c> requires grad.</param>
    /// <param name="useNchw">Channels-first input ([B, C, H, W]) when true, channels-last when false.</param>
    /// <param name="device">Device of the parameter.</param>
    /// <param name="dtype">Element type of the parameter.</param>
    public Scale(int dim, double initValue = 1.0, bool trainable = true, bool useNchw = true,
        Device? device = null, ScalarType? dtype = null)
        : base(nameof(Scale))
    {
        _shape = useNchw ? new long[] { dim, 1, 1 } : new long[] { dim };
        scale = ParameterFactory.Full(new long[] { dim }, initValue, trainable, device, dtype);
        RegisterComponents();
    }

    /// <summary>Multiplies <paramref name="x"/> by the scale vector along the channel dimension.</summary>
    /// <param name="x">[B, dim, H, W] (NCHW) or [..., dim] (channels last).</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = x * scale.view(_shape);
        return y.MoveToOuterDisposeScope();
    }
}
