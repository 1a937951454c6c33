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
/// Cost: one min and one max reduction per call and one read of the two results (on CUDA that is one synchronisation
/// per call; decoding already synchronises once per token to read the logits). Only when the check fails is the
/// offending position looked up.
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
        using var scope = torch.NewDisposeScope();
        var range = torch.stack(new[] { ids.min(), ids.max() }).to_type(ScalarType.Int64).cpu();
        var minMax = range.data<long>().ToArray();
        if (minMax[0] >= 0 && minMax[1] < vocabSize) return;
        var bad = minMax[0] < 0 ? minMax[0] : minMax[1];
        var at = ids.eq(bad).nonzero()[0].cpu().data<long>().ToArray();
        throw new ArgumentOutOfRangeException(nameof(ids), bad,
            $"token id {bad} at [{string.Join(", ", at)}] is outside the vocabulary of {layer}: ids must lie in [0, {vocabSize})");
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
