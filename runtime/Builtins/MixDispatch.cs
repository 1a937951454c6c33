using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Where generated code applies token mixers and layer sequences. A mixer call goes through
/// <see cref="TokenMixer"/> so that fused GPU kernels can replace the reference module without changing
/// generated code: the fused path runs only when <see cref="FusedEnabled"/> is on, the layer allows it
/// (no <c>@fused(false)</c>, options not opting out) and the input is on CUDA.
/// </summary>
public static class MixDispatch
{
    /// <summary>Global switch for fused kernels (on by default; the MSBuild property <c>MixFused</c> sets the default).</summary>
    public static bool FusedEnabled { get; set; } = true;

    /// <summary>A fused implementation of a mixer module, or null when there is none. Set by the fused runtime.</summary>
    public static System.Func<nn.Module<Tensor, Tensor>, Tensor, Tensor?>? FusedMixer { get; set; }

    /// <summary>Applies a token mixer, through its fused kernel when allowed and available.</summary>
    /// <param name="mixer">The reference module (its weights are the fused kernel's weights too).</param>
    /// <param name="x">Input.</param>
    /// <param name="allowFused">False for <c>@fused(false)</c> layers or options that turn fusion off.</param>
    public static Tensor TokenMixer(nn.Module<Tensor, Tensor> mixer, Tensor x, bool allowFused = true)
    {
        // Decoding with a cache (Caches.CausalModel): causal mixers continue from their slot.
        if (Caches.CacheScope.Current is { } cached && cached.TryForward(mixer, x) is Tensor y0) return y0;
        bool fusedAllowed = allowFused && FusedEnabled;
        if (fusedAllowed && x.is_cuda && FusedMixer is { } fused && fused(mixer, x) is Tensor y) return y;
        if (fusedAllowed) return mixer.call(x);
        // Some mixers reach their kernel from inside (Mamba's scan); keep it out for this call.
        using (Mix.Runtime.SelectiveScan.SuppressKernel()) return mixer.call(x);
    }

    /// <summary>Applies layers one after another.</summary>
    public static Tensor Sequence(IEnumerable<nn.Module<Tensor, Tensor>> layers, Tensor x)
    {
        foreach (var layer in layers) x = layer.call(x);
        return x;
    }
}
