using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// The layers of a residual sub-block <c>resScale(x) + layerScale(branch(norm(x)))</c>: what
/// <see cref="MixDispatch.Residual"/> and <see cref="MixDispatch.ResidualMixer"/> hand to the fused runtime, which
/// recognizes known combinations (PoolFormer's GroupNorm + pooling + layer scale, MLPs, ConvFormer's separable
/// convolution) by the modules' types.
/// </summary>
/// <param name="Norm">The norm before the branch.</param>
/// <param name="Branch">The branch: a token mixer or an MLP (any module).</param>
/// <param name="LayerScale">Scale of the branch's output (null or an identity module for none).</param>
/// <param name="ResScale">Scale of the shortcut (null or an identity module for none).</param>
/// <param name="BranchIsMixer">Whether the branch is a token mixer (applied through <see cref="MixDispatch.TokenMixer"/>).</param>
public readonly record struct ResidualParts(
    nn.Module<Tensor, Tensor> Norm,
    nn.Module<Tensor, Tensor> Branch,
    nn.Module<Tensor, Tensor>? LayerScale,
    nn.Module<Tensor, Tensor>? ResScale,
    bool BranchIsMixer);
