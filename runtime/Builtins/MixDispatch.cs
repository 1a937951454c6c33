using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Where generated code applies token mixers, residual sub-blocks and layer sequences. A mixer call goes through
/// <see cref="TokenMixer"/> and a residual sub-block <c>resScale(x) + layerScale(dropPath(branch(norm(x))))</c> through
/// <see cref="ResidualMixer"/> or <see cref="Residual"/>, so that fused GPU kernels can replace the reference modules
/// without changing generated code: the fused path runs only when <see cref="FusedEnabled"/> is on, the layer allows it
/// (no <c>@fused(false)</c>, options not opting out) and the input is on CUDA; otherwise the reference expression runs.
/// </summary>
public static class MixDispatch
{
    /// <summary>Global switch for fused kernels (on by default; the MSBuild property <c>MixFused</c> sets the default).</summary>
    public static bool FusedEnabled { get; set; } = true;

    /// <summary>A fused implementation of a mixer module, or null when there is none. Set by the fused runtime.</summary>
    public static System.Func<nn.Module<Tensor, Tensor>, Tensor, Tensor?>? FusedMixer { get; set; }

    /// <summary>
    /// A fused implementation of a whole residual sub-block (norm, branch, scales and the add), or null when there is
    /// none for those layers. Set by the fused runtime; called only on CUDA inputs with fusion allowed.
    /// </summary>
    public static System.Func<ResidualParts, Tensor, Tensor?>? FusedResidual { get; set; }

    /// <summary>
    /// A fused decoding step of a mixer that has a slot in the running decoding cache (it reads and writes the slot
    /// itself), or null when there is none for that mixer or input. Set by the fused runtime; called only on CUDA inputs
    /// with fusion allowed, while a <see cref="Caches.CausalModel"/> forward runs.
    /// </summary>
    public static System.Func<nn.Module<Tensor, Tensor>, Tensor, Tensor?>? FusedCachedMixer { get; set; }

    /// <summary>
    /// A fused decoding step of a whole residual sub-block whose mixer has a slot in the running decoding cache, or null.
    /// Set by the fused runtime; called like <see cref="FusedCachedMixer"/>.
    /// </summary>
    public static System.Func<ResidualParts, Tensor, Tensor?>? FusedCachedResidual { get; set; }

    /// <summary>
    /// A decoding step of a whole layer sequence (<see cref="MixSequence"/>) under the running decoding cache, or null
    /// to run its layers one by one. Set by the fused runtime; called only on CUDA inputs with fusion on.
    /// </summary>
    public static System.Func<MixSequence, Tensor, Tensor?>? FusedCachedSequence { get; set; }

    /// <summary>Applies a token mixer, through its fused kernel when allowed and available.</summary>
    /// <param name="mixer">The reference module (its weights are the fused kernel's weights too).</param>
    /// <param name="x">Input.</param>
    /// <param name="allowFused">False for <c>@fused(false)</c> layers or options that turn fusion off.</param>
    public static Tensor TokenMixer(nn.Module<Tensor, Tensor> mixer, Tensor x, bool allowFused = true)
    {
        bool fusedAllowed = allowFused && FusedEnabled;
        // Decoding with a cache (Caches.CausalModel): causal mixers continue from their slot.
        if (Caches.CacheScope.Current is { } cached)
        {
            if (fusedAllowed && x.is_cuda && FusedCachedMixer is { } step && step(mixer, x) is Tensor ys) return ys;
            if (cached.TryForward(mixer, x) is Tensor y0) return y0;
        }
        if (fusedAllowed && x.is_cuda && FusedMixer is { } fused && fused(mixer, x) is Tensor y) return y;
        if (fusedAllowed) return mixer.call(x);
        // Some mixers reach their kernel from inside (Mamba's scan); keep it out for this call.
        using (Mix.Runtime.SelectiveScan.SuppressKernel()) return mixer.call(x);
    }

    /// <summary>
    /// Applies the residual sub-block of a token mixer, <c>resScale(x) + layerScale(dropPath(mixer(norm(x)), p))</c>:
    /// as fused kernels where the fused runtime knows these layers, otherwise exactly that expression with the mixer
    /// applied through <see cref="TokenMixer"/>.
    /// </summary>
    /// <param name="x">Input (the shortcut).</param>
    /// <param name="norm">Norm before the mixer.</param>
    /// <param name="mixer">The token mixer.</param>
    /// <param name="layerScale">Scale of the mixer's output, or null.</param>
    /// <param name="resScale">Scale of the shortcut, or null.</param>
    /// <param name="dropPath">Stochastic-depth probability of the branch.</param>
    /// <param name="training">Whether the calling module is training (drop path active).</param>
    /// <param name="allowFused">False for <c>@fused(false)</c> mixers or options that turn fusion off.</param>
    public static Tensor ResidualMixer(Tensor x, nn.Module<Tensor, Tensor> norm, nn.Module<Tensor, Tensor> mixer,
        nn.Module<Tensor, Tensor>? layerScale = null, nn.Module<Tensor, Tensor>? resScale = null, double dropPath = 0.0,
        bool training = false, bool allowFused = true) =>
        Apply(new ResidualParts(norm, mixer, layerScale, resScale, BranchIsMixer: true), x, dropPath, training, allowFused);

    /// <summary>
    /// Applies a residual sub-block whose branch is not a token mixer (an MLP, a block),
    /// <c>resScale(x) + layerScale(dropPath(branch(norm(x)), p))</c>: as fused kernels where the fused runtime knows
    /// these layers, otherwise exactly that expression.
    /// </summary>
    /// <param name="x">Input (the shortcut).</param>
    /// <param name="norm">Norm before the branch.</param>
    /// <param name="branch">The branch.</param>
    /// <param name="layerScale">Scale of the branch's output, or null.</param>
    /// <param name="resScale">Scale of the shortcut, or null.</param>
    /// <param name="dropPath">Stochastic-depth probability of the branch.</param>
    /// <param name="training">Whether the calling module is training (drop path active).</param>
    /// <param name="allowFused">False for <c>@fused(false)</c> layers or options that turn fusion off.</param>
    public static Tensor Residual(Tensor x, nn.Module<Tensor, Tensor> norm, nn.Module<Tensor, Tensor> branch,
        nn.Module<Tensor, Tensor>? layerScale = null, nn.Module<Tensor, Tensor>? resScale = null, double dropPath = 0.0,
        bool training = false, bool allowFused = true) =>
        Apply(new ResidualParts(norm, branch, layerScale, resScale, BranchIsMixer: false), x, dropPath, training, allowFused);

    /// <summary>
    /// The fused result of a residual sub-block, or null when the fused path does not run: fusion off (globally or for
    /// this call), input not on CUDA, a decoding cache active, or no kernel for these layers. Blocks that apply their
    /// own drop path call this first and run their reference expression on null.
    /// </summary>
    /// <param name="parts">The sub-block's layers.</param>
    /// <param name="x">Input (the shortcut).</param>
    /// <param name="allowFused">False for <c>@fused(false)</c> layers.</param>
    public static Tensor? TryFusedResidual(ResidualParts parts, Tensor x, bool allowFused = true) =>
        allowFused && FusedEnabled && (x.is_cuda || Fused.FusedRegion.Emulator is not null) && Caches.CacheScope.Current is null
        && FusedResidual is { } fused
            ? fused(parts, x)
            : null;

    private static Tensor Apply(ResidualParts parts, Tensor x, double dropPath, bool training, bool allowFused)
    {
        bool dropsPaths = training && dropPath > 0.0;
        if (!dropsPaths && TryFusedResidual(parts, x, allowFused) is Tensor y) return y;
        if (!dropsPaths && parts.BranchIsMixer && allowFused && FusedEnabled && x.is_cuda && Caches.CacheScope.Current is not null
            && FusedCachedResidual is { } step && step(parts, x) is Tensor ys) return ys;
        var n = parts.Norm.call(x);
        var branch = parts.BranchIsMixer ? TokenMixer(parts.Branch, n, allowFused) : parts.Branch.call(n);
        branch = Fn.DropPath(branch, dropPath, training);
        if (parts.LayerScale is { } ls) branch = ls.call(branch);
        return (parts.ResScale is { } rs ? rs.call(x) : x) + branch;
    }

    /// <summary>Applies layers one after another.</summary>
    public static Tensor Sequence(IEnumerable<nn.Module<Tensor, Tensor>> layers, Tensor x)
    {
        foreach (var layer in layers) x = layer.call(x);
        return x;
    }
}
