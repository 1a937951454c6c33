using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// StarReLU activation from "MetaFormer Baselines for Vision": <c>y = scale * relu(x)^2 + bias</c>,
/// with learnable scalar <c>scale</c> and <c>bias</c> (timm <c>StarReLU</c>).
/// </summary>
/// <remarks>
/// Shape contract: any shape in, the same shape out (element-wise). State-dict keys: <c>scale</c> [1], <c>bias</c> [1].
/// </remarks>
public sealed class StarReLU : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>The ReLU applied before squaring (no parameters; mirrors timm's <c>relu</c> submodule).</summary>
    public readonly ReLU relu;

    /// <summary>Learnable scalar multiplier, shape [1].</summary>
    public Parameter scale;

    /// <summary>Learnable scalar offset, shape [1].</summary>
    public Parameter bias;

    /// <summary>Creates a StarReLU.</summary>
    /// <param name="scaleValue">Initial value of <c>scale</c>.</param>
    /// <param name="biasValue">Initial value of <c>bias</c>.</param>
    /// <param name="scaleLearnable">Whether <c>scale</c> requires grad.</param>
    /// <param name="biasLearnable">Whether <c>bias</c> requires grad.</param>
    /// <param name="device">Device of the parameters (default CPU).</param>
    /// <param name="dtype">Element type of the parameters (default: torch default dtype).</param>
    public StarReLU(
        double scaleValue = 1.0,
        double biasValue = 0.0,
        bool scaleLearnable = true,
        bool biasLearnable = true,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(StarReLU))
    {
        relu = nn.ReLU();
        scale = ParameterFactory.Full(new long[] { 1 }, scaleValue, scaleLearnable, device, dtype);
        bias = ParameterFactory.Full(new long[] { 1 }, biasValue, biasLearnable, device, dtype);
        RegisterComponents();
    }

    /// <summary>Applies <c>scale * relu(x)^2 + bias</c>.</summary>
    /// <param name="x">Any shape.</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var r = relu.forward(x);
        var y = scale * r.square() + bias;
        return y.MoveToOuterDisposeScope();
    }
}
