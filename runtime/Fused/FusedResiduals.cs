using System.Runtime.CompilerServices;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Connects the fused kernels to the residual sub-blocks of generated code and of the runtime blocks
    /// (<see cref="MixDispatch.Residual"/>, <see cref="MixDispatch.ResidualMixer"/>, <see cref="MixDispatch.TryFusedResidual"/>):
    /// it recognizes the layers by type and declines (null: the reference expression runs) for anything else, with
    /// gradients enabled, or when a kernel does not apply.
    /// </summary>
    /// <remarks>
    /// Recognized (mixers through <see cref="KernelModules"/>: the built-in modules and the standard library's
    /// <c>@kernel</c> mixers alike), in order: PoolFormer's <c>x + ls ⊙ pool(GroupNorm1(x))</c> (one statistics pass and one pooling pass,
    /// <see cref="FusedOps.PoolingSubBlock"/>); an <see cref="Mlp"/> branch (projections without bias, bias + activation
    /// fused after the first, the second's bias and both scales fused into the residual add); a <see cref="SepConv"/>
    /// branch (likewise around its depthwise convolution); any other branch with a layer or res scale (scales and add in
    /// one pass). GroupNorm1 norms run as <see cref="FusedOps.GroupNorm1"/>.
    /// </remarks>
    public static class FusedResiduals
    {
#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register() => MixDispatch.FusedResidual ??= TryForward;
#pragma warning restore CA2255

        /// <summary>The fused result of the sub-block <paramref name="parts"/> on <paramref name="x"/>, or null to run the reference.</summary>
        /// <param name="parts">The sub-block's layers.</param>
        /// <param name="x">Input (the shortcut).</param>
        public static Tensor? TryForward(ResidualParts parts, Tensor x)
        {
            if (!x.is_cuda || torch.is_grad_enabled()) return null;
            if (!FusedBranches.TryScale(parts.LayerScale, out var ls) || !FusedBranches.TryScale(parts.ResScale, out var rs)) return null;
            if (KernelModules.PoolSize(parts.Branch) == 3 && parts.Norm is GroupNorm1 { weight: { } w, bias: { } b } gn
                && ls is { ChannelsFirst: true } && rs is null && x.dim() == 4)
                return FusedOps.PoolingSubBlock(x, w, b, gn.Eps, ls.scale);
            if (parts.Branch is Mlp mlp) return FusedBranches.MlpResidual(x, parts.Norm, mlp, ls, rs);
            if (KernelModules.SepConvOf(parts.Branch) is { } sep) return FusedBranches.SepConvResidual(x, parts.Norm, sep, ls, rs);
            // A plain add gains nothing from a kernel of ours.
            if (ls is null && rs is null) return null;
            using var scope = torch.NewDisposeScope();
            var n = FusedBranches.Norm(parts.Norm, x);
            var o = parts.BranchIsMixer ? MixDispatch.TokenMixer(parts.Branch, n) : parts.Branch.call(n);
            int channelDim = (ls ?? rs)!.ChannelsFirst ? 1 : -1;
            return FusedBranches.Epilogue(x, o, ls, rs, null, channelDim).MoveToOuterDisposeScope();
        }
    }
}
