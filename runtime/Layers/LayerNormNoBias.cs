using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// LayerNorm over the last dimension with a per-channel <c>weight</c> and no bias (timm metaformer
/// <c>LayerNormNoBias</c>; used in CAFormer's attention stages on [B, N, C]).
/// </summary>
/// <remarks>Shape contract: [..., C] in, the same shape out. Key: <c>weight</c> [C]. Default eps 1e-6.</remarks>
public sealed class LayerNormNoBias : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps => _eps;
    private readonly long[] _normalizedShape;

    /// <summary>Per-channel scale, shape [C] (initialized to 1).</summary>
    public Parameter weight;

    /// <summary>Creates a LayerNormNoBias.</summary>
    /// <param name="numChannels">Size C of the last dimension.</param>
    /// <param name="eps">Added to the variance for numerical stability.</param>
    /// <param name="device">Device of the parameter.</param>
    /// <param name="dtype">Element type of the parameter.</param>
    public LayerNormNoBias(int numChannels, double eps = 1e-6, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LayerNormNoBias))
    {
        _eps = eps;
        _normalizedShape = new long[] { numChannels };
        weight = ParameterFactory.Full(_normalizedShape, 1.0, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>Normalizes over the last dimension.</summary>
    /// <param name="x">[..., C].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.layer_norm(x, _normalizedShape, weight, null, _eps);
        return y.MoveToOuterDisposeScope();
    }
}
