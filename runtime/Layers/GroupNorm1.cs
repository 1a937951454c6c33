using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Group normalization with a single group (timm <c>GroupNorm1</c>): each sample is normalized over all of
/// its channels and positions, then an affine per-channel <c>weight</c> and <c>bias</c> are applied.
/// </summary>
/// <remarks>
/// Shape contract: [B, C, *] in, the same shape out. Keys: <c>weight</c> [C], <c>bias</c> [C] (when affine).
/// timm's default eps (from <c>nn.GroupNorm</c>) is 1e-5.
/// </remarks>
public sealed class GroupNorm1 : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps => _eps;

    /// <summary>Per-channel scale, shape [C] (initialized to 1); null when not affine.</summary>
    public Parameter? weight;

    /// <summary>Per-channel offset, shape [C] (initialized to 0); null when not affine.</summary>
    public Parameter? bias;

    /// <summary>Creates a GroupNorm1.</summary>
    /// <param name="numChannels">Number of channels C.</param>
    /// <param name="eps">Added to the variance for numerical stability.</param>
    /// <param name="affine">Whether to learn <c>weight</c> and <c>bias</c>.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public GroupNorm1(int numChannels, double eps = 1e-5, bool affine = true, Device? device = null, ScalarType? dtype = null)
        : base(nameof(GroupNorm1))
    {
        _eps = eps;
        if (affine) {
            weight = ParameterFactory.Full(new long[] { numChannels }, 1.0, true, device, dtype);
            bias = ParameterFactory.Full(new long[] { numChannels }, 0.0, true, device, dtype);
        }
        RegisterComponents();
    }

    /// <summary>Normalizes each sample over (C, *).</summary>
    /// <param name="x">[B, C, *].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = nn.functional.group_norm(x, 1, weight, bias, _eps);
        return y.MoveToOuterDisposeScope();
    }
}
