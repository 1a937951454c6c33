using System.Runtime.CompilerServices;
using Mix.Runtime.Builtins;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Connects the residual sub-blocks of generated code and of the runtime blocks (<see cref="MixDispatch.Residual"/>,
    /// <see cref="MixDispatch.ResidualMixer"/>, <see cref="MixDispatch.TryFusedResidual"/>) to the fusion planner's
    /// runtime half, <see cref="SubBlockPlanner"/>: it plans each sub-block once (regions for the norm and the pointwise
    /// tails, the hand-written kernels as declared primitives) and declines (null: the reference expression runs) where
    /// it has nothing to fuse, with gradients enabled, or off CUDA.
    /// </summary>
    public static class FusedResiduals
    {
#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register() => MixDispatch.FusedResidual ??= TryForward;
#pragma warning restore CA2255

        /// <summary>The fused result of the sub-block <paramref name="parts"/> on <paramref name="x"/>, or null to run the reference.</summary>
        /// <param name="parts">The sub-block's layers.</param>
        /// <param name="x">Input (the shortcut).</param>
        public static Tensor? TryForward(ResidualParts parts, Tensor x) =>
            (!x.is_cuda && FusedRegion.Emulator is null) || torch.is_grad_enabled() ? null : SubBlockPlanner.TryRun(parts, x);
    }
}
