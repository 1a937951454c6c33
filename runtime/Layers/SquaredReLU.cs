using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Squared ReLU (https://arxiv.org/abs/2109.08668): <c>y = relu(x)^2</c> (timm <c>SquaredReLU</c>).
/// </summary>
/// <remarks>Shape contract: any shape in, the same shape out. No parameters.</remarks>
public sealed class SquaredReLU : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>The ReLU applied before squaring (mirrors timm's <c>relu</c> submodule).</summary>
    public readonly ReLU relu;

    /// <summary>Creates a SquaredReLU.</summary>
    /// <param name="inplace">Whether the inner ReLU works in place.</param>
    public SquaredReLU(bool inplace = false) : base(nameof(SquaredReLU))
    {
        relu = nn.ReLU(inplace);
        RegisterComponents();
    }

    /// <summary>Applies <c>relu(x)^2</c>.</summary>
    /// <param name="x">Any shape.</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = relu.forward(x).square();
        return y.MoveToOuterDisposeScope();
    }
}
