using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// LayerNorm over the channel dimension of an NCHW tensor with a per-channel <c>weight</c> and no bias
/// (timm metaformer <c>LayerNorm2dNoBias</c>).
/// </summary>
/// <remarks>Shape contract: [B, C, H, W] in, the same shape out. Key: <c>weight</c> [C]. Default eps 1e-6.</remarks>
public sealed class LayerNorm2dNoBias : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps => _eps;
    private readonly long[] _normalizedShape;

    /// <summary>Per-channel scale, shape [C] (initialized to 1).</summary>
    public Parameter weight;

    /// <summary>Creates a LayerNorm2dNoBias.</summary>
    /// <param name="numChannels">Number of channels C.</param>
    /// <param name="eps">Added to the variance for numerical stability.</param>
    /// <param name="device">Device of the parameter.</param>
    /// <param name="dtype">Element type of the parameter.</param>
    public LayerNorm2dNoBias(int numChannels, double eps = 1e-6, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LayerNorm2dNoBias))
    {
        _eps = eps;
        _normalizedShape = new long[] { numChannels };
        weight = ParameterFactory.Full(_normalizedShape, 1.0, true, device, dtype);
        RegisterComponents();
    }

    // The channel norm's fused region bound to this instance's eps (NormRegions).
    private Mix.Runtime.Fused.FusedRegion? _region;

    /// <summary>Normalizes over C at every spatial position.</summary>
    /// <param name="x">[B, C, H, W].</param>
    /// <returns>[B, C, H, W].</returns>
    public override Tensor forward(Tensor x)
    {
        // NCHW on the GPU without gradients: the planner's region for this norm (one kernel, no permuted copies).
        if (Mix.Runtime.Fused.NormRegions.LayerNorm2d(ref _region, x, weight, null, _eps) is { } fused) return fused;
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), _normalizedShape, weight, null, _eps).permute(0, 3, 1, 2);
        return y.MoveToOuterDisposeScope();
    }
}
