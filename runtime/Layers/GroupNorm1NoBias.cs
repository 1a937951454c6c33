using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Single-group group normalization with a per-channel <c>weight</c> and no bias (timm <c>GroupNorm1NoBias</c>,
/// used by PoolFormerV2 / IdentityFormer / RandFormer; equal to sail-sg's <c>LayerNormGeneral</c> over (H, W, C)
/// without bias).
/// </summary>
/// <remarks>Shape contract: [B, C, *] in, the same shape out. Key: <c>weight</c> [C]. Default eps 1e-6 (as timm).</remarks>
public sealed class GroupNorm1NoBias : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps => _eps;

    /// <summary>Per-channel scale, shape [C] (initialized to 1).</summary>
    public Parameter weight;

    /// <summary>Creates a GroupNorm1NoBias.</summary>
    /// <param name="numChannels">Number of channels C.</param>
    /// <param name="eps">Added to the variance for numerical stability.</param>
    /// <param name="device">Device of the parameter.</param>
    /// <param name="dtype">Element type of the parameter.</param>
    public GroupNorm1NoBias(int numChannels, double eps = 1e-6, Device? device = null, ScalarType? dtype = null)
        : base(nameof(GroupNorm1NoBias))
    {
        _eps = eps;
        weight = ParameterFactory.Full(new long[] { numChannels }, 1.0, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>Normalizes each sample over (C, *).</summary>
    /// <param name="x">[B, C, *].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.group_norm(x, 1, weight, null, _eps);
        return y.MoveToOuterDisposeScope();
    }
}
