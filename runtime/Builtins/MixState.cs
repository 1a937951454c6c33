using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// The decoding state of generated mixers (<c>name = state(shape)</c> in <c>.mix</c>). Outside a decoding cache a
/// state reads as zeros and its update is dropped, so the forward is the plain full-sequence forward; inside a
/// <see cref="Caches.CausalModel"/> forward it reads and writes the mixer's <see cref="Caches.StateCacheSlot"/>.
/// </summary>
public static class MixState
{
    /// <summary>The state <paramref name="name"/> of <paramref name="mixer"/>: its slot's tensor when a cache is decoding
    /// this mixer, otherwise zeros of <paramref name="shape"/> (float32) on <paramref name="like"/>'s device.</summary>
    /// <param name="mixer">The generated mixer (<c>this</c>).</param>
    /// <param name="name">The state's .mix name.</param>
    /// <param name="like">The mixer's first input (device).</param>
    /// <param name="shape">The declared shape for this input's batch.</param>
    public static Tensor Read(nn.Module mixer, string name, Tensor like, long[] shape)
    {
        if (Caches.CacheScope.Current?.StateSlot(mixer) is { } slot)
        {
            var held = slot.Get(name);
            if (!held.shape.SequenceEqual(shape))
                throw new InvalidOperationException(
                    $"state '{name}' of layer {slot.LayerIndex} is [{string.Join(", ", held.shape)}] in the cache but the forward declares [{string.Join(", ", shape)}]");
            return held;
        }
        return torch.zeros(shape, dtype: ScalarType.Float32, device: like.device);
    }

    /// <summary>Stores the final state <paramref name="value"/> in the mixer's slot when a cache is decoding it; does
    /// nothing otherwise.</summary>
    /// <param name="mixer">The generated mixer (<c>this</c>).</param>
    /// <param name="name">The state's .mix name.</param>
    /// <param name="value">The state after the forward's tokens.</param>
    public static void Write(nn.Module mixer, string name, Tensor value)
    {
        if (Caches.CacheScope.Current?.StateSlot(mixer) is { } slot) slot.Set(name, value);
    }
}
