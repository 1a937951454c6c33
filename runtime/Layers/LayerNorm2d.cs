using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// LayerNorm over the channel dimension of an NCHW tensor (timm <c>LayerNorm2d</c>): every position (h, w) is
/// normalized over its C values, then per-channel <c>weight</c> and <c>bias</c> are applied.
/// </summary>
/// <remarks>Shape contract: [B, C, H, W] in, the same shape out. Keys: <c>weight</c> [C], <c>bias</c> [C]. Default eps 1e-6.</remarks>
public sealed class LayerNorm2d : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps => _eps;
    private readonly long[] _normalizedShape;

    /// <summary>Per-channel scale, shape [C] (initialized to 1); null when not affine.</summary>
    public Parameter? weight;

    /// <summary>Per-channel offset, shape [C] (initialized to 0); null when not affine.</summary>
    public Parameter? bias;

    /// <summary>Creates a LayerNorm2d.</summary>
    /// <param name="numChannels">Number of channels C.</param>
    /// <param name="eps">Added to the variance for numerical stability.</param>
    /// <param name="affine">Whether to learn <c>weight</c> and <c>bias</c>.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public LayerNorm2d(int numChannels, double eps = 1e-6, bool affine = true, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LayerNorm2d))
    {
        _eps = eps;
        _normalizedShape = new long[] { numChannels };
        if (affine) {
            weight = ParameterFactory.Full(_normalizedShape, 1.0, true, device, dtype);
            bias = ParameterFactory.Full(_normalizedShape, 0.0, true, device, dtype);
        }
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
        if (Mix.Runtime.Fused.NormRegions.LayerNorm2d(ref _region, x, weight, bias, _eps) is { } fused) return fused;
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), _normalizedShape, weight, bias, _eps).permute(0, 3, 1, 2);
        return y.MoveToOuterDisposeScope();
    }
}
