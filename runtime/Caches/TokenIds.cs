using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Checks token ids against an embedding table in managed code, so a bad id is an exception that names the id, where
/// it is, the vocabulary and the layer, not a native "index out of range in self".
/// </summary>
/// <remarks>
/// Cost: ids in contiguous CPU memory are scanned in place (no tensor operation; about a microsecond for a decode
/// step); elsewhere one min and one max reduction and one read of the two results (on CUDA one synchronisation per
/// call). Only when the check fails is the offending position looked up. Decoding steps whose ids are already on the GPU
/// do not come here by default: <see cref="Caches.InferenceCache.DeferDeviceTokenIdCheck"/> checks them on the device
/// without waiting for it.
/// </remarks>
public static class TokenIds
{
    /// <summary>Throws unless <paramref name="ids"/> are integers (int64 or int32) in <c>[0, vocabSize)</c>.</summary>
    /// <param name="ids">Token ids, any shape.</param>
    /// <param name="vocabSize">Rows of the embedding table.</param>
    /// <param name="layer">The embedding's name (for the message), e.g. <c>embed_tokens</c>.</param>
    /// <exception cref="ArgumentException">A non-integer dtype.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An id below 0 or at least <paramref name="vocabSize"/>.</exception>
    public static void Check(Tensor ids, long vocabSize, string layer)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.dtype is not (ScalarType.Int64 or ScalarType.Int32))
            throw new ArgumentException($"token ids for {layer} must be int64 or int32, got {ids.dtype}", nameof(ids));
        if (ids.numel() == 0) return;
        (long min, long max) range;
        if (ids.device_type == DeviceType.CPU && ids.is_contiguous()) range = HostRange(ids);
        else if (ids.numel() <= SmallCopy)
        {
            // a decoding step's few ids: one copy to the host (the check has to wait for them either way) beats three
            // reductions and a copy
            using var copies = torch.NewDisposeScope();
            range = HostRange(ids.cpu().contiguous());
        }
        else range = DeviceRange(ids);
        var (min, max) = range;
        if (min >= 0 && max < vocabSize) return;
        var bad = min < 0 ? min : max;
        using var scope = torch.NewDisposeScope();
        var at = ids.eq(bad).nonzero()[0].cpu().data<long>().ToArray();
        throw new ArgumentOutOfRangeException(nameof(ids), bad,
            $"token id {bad} at [{string.Join(", ", at)}] is outside the vocabulary of {layer}: ids must lie in [0, {vocabSize})");
    }

    // CPU ids are scanned in place: no tensor operation for the one-token decode step.
    private const long SmallCopy = 4096;

    private static (long min, long max) HostRange(Tensor ids)
    {
        long min = long.MaxValue, max = long.MinValue;
        if (ids.dtype == ScalarType.Int64)
            foreach (var v in ids.data<long>()) { if (v < min) min = v; if (v > max) max = v; }
        else
            foreach (var v in ids.data<int>()) { if (v < min) min = v; if (v > max) max = v; }
        return (min, max);
    }

    private static (long min, long max) DeviceRange(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var range = torch.stack(new[] { ids.min(), ids.max() }).to_type(ScalarType.Int64).cpu();
        var values = range.data<long>().ToArray();
        return (values[0], values[1]);
    }

    /// <summary><see cref="Check(Tensor, long, string)"/> for a batch of sequences, which must be <c>[batch, L]</c>.</summary>
    /// <param name="ids">Token ids <c>[batch, L]</c>.</param>
    /// <param name="vocabSize">Rows of the embedding table.</param>
    /// <param name="layer">The embedding's name (for the message).</param>
    public static void CheckBatch(Tensor ids, long vocabSize, string layer)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.dim() != 2)
            throw new ArgumentException($"token ids for {layer} must be [batch, L], got [{string.Join(", ", ids.shape)}]", nameof(ids));
        Check(ids, vocabSize, layer);
    }

    /// <summary>Host-side <see cref="Check(Tensor, long, string)"/> of one id (no tensor, no synchronisation).</summary>
    /// <param name="id">The id.</param>
    /// <param name="vocabSize">Rows of the embedding table.</param>
    /// <param name="what">What the id is, e.g. <c>the pad token</c> or <c>prompt 2, position 5</c>.</param>
    public static void Check(long id, long vocabSize, string what)
    {
        if (id < 0 || id >= vocabSize)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} ({what}) is outside the vocabulary: ids must lie in [0, {vocabSize})");
    }
}
