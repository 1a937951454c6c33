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

    /// <summary>
    /// <c>causal_attention(q, k, v, scale)</c>: causal softmax attention of <paramref name="q"/> over
    /// <paramref name="k"/>/<paramref name="v"/> <c>[batch, heads, n, head_dim]</c>. Outside a decoding cache the n
    /// positions attend causally among themselves; while a cache decodes <paramref name="mixer"/>, the new keys and
    /// values are appended to its KV slot and the queries attend to everything cached before them (offsets, padding,
    /// sliding window and sinks, KV quantization: the slot's rules, as for the built-in attention).
    /// </summary>
    /// <param name="mixer">The generated mixer (<c>this</c>).</param>
    /// <param name="q">Queries.</param>
    /// <param name="k">Keys of the new positions.</param>
    /// <param name="v">Values of the new positions.</param>
    /// <param name="scale">Score scale; head_dim^-1/2 when null.</param>
    /// <param name="dropoutP">Dropout on the attention weights, only while <paramref name="mixer"/> trains (never when decoding).</param>
    public static Tensor CausalAttention(nn.Module mixer, Tensor q, Tensor k, Tensor v, double? scale = null, double dropoutP = 0.0)
    {
        if (Caches.CacheScope.Current is { } cache && cache.KvSlot(mixer) is { } slot)
        {
            double s = scale ?? 1.0 / Math.Sqrt(q.shape[^1]);
            var mask = cache.Mask;
            // while the step is recorded into a CUDA graph, a KV slot that records steps (full precision, no window) is
            // recorded with it; any other is left out of the graph (run between segments)
            if (slot.RecordsSteps || !Cuda.CapturedGraph.IsRecording) return slot.Attend(q, k, v, mask, s);
            var shape = q.shape.ToArray();
            shape[^1] = v.shape[^1];
            return Caches.DecodeGraph.Defer(new[] { q, k, v }, i => slot.Attend(i[0], i[1], i[2], mask, s), shape, q.dtype);
        }
        double p = mixer.training ? dropoutP : 0.0;
        if (scale is null) return Fn.ScaledDotProductAttention(q, k, v, p, causal: true, training: mixer.training);
        using var scope = torch.NewDisposeScope();
        using var causal = Caches.CachedAttention.CausalMask(q.shape[^2], q.device);
        var scores = torch.matmul(q, k.transpose(-2, -1)) * scale.Value;
        var weights = torch.nn.functional.softmax(scores.masked_fill(causal.logical_not(), double.NegativeInfinity), -1);
        if (p > 0) weights = torch.nn.functional.dropout(weights, p, training: true);
        return torch.matmul(weights, v).MoveToOuterDisposeScope();
    }
}
