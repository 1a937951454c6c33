using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// The padding mask of a plain (cache-less) forward: inside <c>using (PaddingMask.Use(mask)) model.call(ids)</c> the
/// .mix built-in <c>token_mask(x)</c> reads <c>mask</c> (<c>[B, L]</c>, non-zero at tokens, 0 at padding)
/// where it would otherwise read all ones, so that an encoder whose mixers honour <c>token_mask</c> (PoNet's) runs on
/// padded batches as the official code with its <c>attention_mask</c>. A <see cref="CausalModel"/> step inside the scope
/// still reads its own mask (that of the step's tokens). Per thread; scopes nest.
/// </summary>
public static class PaddingMask
{
    [ThreadStatic] private static Tensor? s_current;

    /// <summary>The mask in effect on this thread, or null.</summary>
    public static Tensor? Current => s_current;

    /// <summary>Makes <paramref name="mask"/> the padding mask until the returned scope is disposed.</summary>
    public static IDisposable Use(Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        if (mask.dim() != 2)
            throw new ArgumentException($"a padding mask is [B, L]; got [{string.Join(", ", mask.shape)}]", nameof(mask));
        return new Scope(mask);
    }

    private sealed class Scope : IDisposable
    {
        private readonly Tensor? previous = s_current;
        private bool disposed;

        public Scope(Tensor mask) => s_current = mask;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            s_current = previous;
        }
    }
}
