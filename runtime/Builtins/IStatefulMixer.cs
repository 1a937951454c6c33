using System.Collections.Generic;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// A mixer generated from <c>.mix</c> that declares decoding state (<c>conv_state = state([B, inner, d_conv - 1])</c>):
/// <see cref="Caches.CausalModel"/> gives it a <see cref="Caches.StateCacheSlot"/> holding these tensors, and while a
/// cached forward runs, <see cref="MixState.Read"/> hands the forward its slot's states and <see cref="MixState.Write"/>
/// stores the final ones; a mixer that calls <c>causal_attention</c> gets a <see cref="Caches.MixKvCacheSlot"/> instead,
/// which <see cref="MixState.CausalAttention"/> appends to. The forward is the step: prefill, chunked prefill and decode are the same code.
/// </summary>
public interface IStatefulMixer
{
    /// <summary>The states the mixer declares, with their shapes for <paramref name="batch"/> rows.</summary>
    /// <param name="batch">Rows of the batch (the first axis of every state).</param>
    IReadOnlyList<MixStateSpec> States(long batch);

    /// <summary>Whether this instance's forward calls <c>causal_attention</c>: the cache then gives it a KV slot
    /// (<see cref="Caches.MixKvCacheSlot"/>, shaped by its first keys) instead of a state slot.</summary>
    bool HasKeyValues => false;
}

/// <summary>One declared state: its name in the <c>.mix</c> body, its shape for a batch, its element type.</summary>
/// <param name="Name">The name bound by <c>name = state(...)</c>.</param>
/// <param name="Shape">The shape, batch first.</param>
/// <param name="DType">Element type (float32: scans keep their states in float32).</param>
public sealed record MixStateSpec(string Name, long[] Shape, ScalarType DType);
