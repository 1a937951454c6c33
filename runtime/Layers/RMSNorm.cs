using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Root-mean-square normalization over the last dimension with a learnable <c>weight</c> and no bias, computed
/// in float32 like Hugging Face's <c>MambaRMSNorm</c>:
/// <c>y = weight * cast_back(x32 * rsqrt(mean(x32^2, -1) + eps))</c>.
/// </summary>
/// <remarks>
/// Shape contract: [..., hidden] in, the same shape out; the output dtype follows the promotion of
/// <c>weight</c> with the input dtype (as in HF). Key: <c>weight</c> [hidden]. Default eps 1e-6.
/// </remarks>
public sealed class RMSNorm : torch.nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>The epsilon added to the mean square.</summary>
    public double Eps => _eps;

    /// <summary>Per-channel scale, shape [hidden] (initialized to 1).</summary>
    public Parameter weight;

    /// <summary>Creates an RMSNorm.</summary>
    /// <param name="hiddenSize">Size of the last dimension.</param>
    /// <param name="eps">Added to the mean square for numerical stability.</param>
    /// <param name="device">Device of the parameter.</param>
    /// <param name="dtype">Element type of the parameter.</param>
    public RMSNorm(int hiddenSize, double eps = 1e-6, Device? device = null, ScalarType? dtype = null)
        : base(nameof(RMSNorm))
    {
        _eps = eps;
        weight = ParameterFactory.Full(new long[] { hiddenSize }, 1.0, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>Normalizes by the root mean square of the last dimension.</summary>
    /// <param name="x">[..., hidden].</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var inputType = x.dtype;
        var x32 = x.to_type(ScalarType.Float32);
        var variance = x32.square().mean(new long[] { -1 }, keepdim: true);
        var normed = x32 * (variance + _eps).rsqrt();
        var y = weight * normed.to_type(inputType);
        return y.MoveToOuterDisposeScope();
    }
}
