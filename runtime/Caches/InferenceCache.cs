using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>Memory of one layer's cache slot.</summary>
/// <param name="Layer">Layer index.</param>
/// <param name="Kind">Slot type name.</param>
/// <param name="BytesPerToken">Bytes per additional token per row (0 for recurrent layers).</param>
/// <param name="FixedBytesPerRow">Length-independent bytes per row (recurrent and conv states).</param>
/// <param name="AllocatedBytes">Bytes allocated now (all rows).</param>
public sealed record CacheLayerMemory(int Layer, string Kind, double BytesPerToken, long FixedBytesPerRow, long AllocatedBytes);

/// <summary>
/// The inference cache of one model: one typed <see cref="CacheSlot"/> per layer (<see cref="KvCacheSlot"/> or a
/// quantized KV slot for attention, <see cref="MambaCacheSlot"/> = <see cref="ConvStateSlot"/> +
/// <see cref="RecurrentStateSlot"/> for Mamba). Each slot counts its own tokens; there is no global counter.
/// </summary>
public sealed class InferenceCache : IDisposable
{
    private readonly CacheSlot[] slots;

    /// <summary>Creates a cache from its slots (index = layer).</summary>
    /// <param name="slots">One slot per layer.</param>
    public InferenceCache(IEnumerable<CacheSlot> slots)
    {
        this.slots = slots.ToArray();
        if (this.slots.Length == 0) throw new ArgumentException("a cache needs at least one slot", nameof(slots));
        Batch = this.slots[0].Batch;
        if (this.slots.Any(s => s.Batch != Batch)) throw new ArgumentException("all slots must hold the same batch", nameof(slots));
    }

    /// <summary>The slots, one per layer.</summary>
    public IReadOnlyList<CacheSlot> Slots => slots;

    /// <summary>Rows of the batch.</summary>
    public long Batch { get; }

    /// <summary>The slot of <paramref name="layer"/> as <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">Expected slot type.</typeparam>
    /// <param name="layer">Layer index.</param>
    public T Slot<T>(int layer) where T : CacheSlot =>
        slots[layer] as T ?? throw new InvalidOperationException(
            $"layer {layer} has a {slots[layer].GetType().Name}, not a {typeof(T).Name}");

    /// <summary>
    /// Checks a step of <paramref name="n"/> new tokens for <paramref name="batch"/> rows against every slot (batch,
    /// mask shape, capacity of fixed-capacity KV slots) before any slot is touched, so a step refused for its input
    /// leaves every slot as it was. Each <see cref="ICausalLM.Forward"/> of this library calls it first.
    /// </summary>
    /// <param name="batch">Rows of the new tokens.</param>
    /// <param name="n">New tokens per row.</param>
    /// <param name="attentionMask">Optional <c>[batch, n]</c> mask.</param>
    /// <exception cref="ArgumentException">Wrong batch, no tokens, or a mask of the wrong shape.</exception>
    /// <exception cref="InvalidOperationException">A fixed-capacity KV slot has no room for the step.</exception>
    public void CheckStep(long batch, long n, Tensor? attentionMask)
    {
        if (batch != Batch) throw new ArgumentException($"the cache holds {Batch} rows, the input has {batch}");
        foreach (var s in slots) s.CheckStep(batch, n, attentionMask);
    }

    /// <summary>
    /// <see cref="CheckStep(long, long, Tensor)"/> for token ids <c>[batch, n]</c>, which must also be integers within
    /// <c>[0, <paramref name="vocabSize"/>)</c> (see <see cref="TokenIds.Check(Tensor, long, string)"/>).
    /// </summary>
    /// <param name="inputIds">New token ids.</param>
    /// <param name="attentionMask">Optional mask.</param>
    /// <param name="vocabSize">Rows of the embedding table.</param>
    /// <param name="layer">The embedding's name, for messages.</param>
    public void CheckStep(Tensor inputIds, Tensor? attentionMask, long vocabSize, string layer)
    {
        CheckStepShape(inputIds, attentionMask, layer);
        deferredIds?.ThrowIfReported();
        TokenIds.Check(inputIds, vocabSize, layer);
    }

    private void CheckStepShape(Tensor inputIds, Tensor? attentionMask, string layer)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2)
            throw new ArgumentException($"token ids for {layer} must be [batch, n], got [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        CheckStep(inputIds.shape[0], inputIds.shape[1], attentionMask);
    }

    /// <summary>
    /// Whether token ids already on a CUDA device are checked on the device without waiting for it (default: true). The
    /// ids a step embeds are then clamped to the vocabulary, and an out-of-range id is reported by the next step of this
    /// cache (or by <see cref="ThrowIfBadTokenIds"/>), after the bad step ran; every later step then throws until
    /// <see cref="Reset"/>. False: CUDA ids are copied to the host and checked before the step, which makes each step
    /// wait for the previous one (host and GPU time add up per token). CPU ids are always checked before the step.
    /// </summary>
    public bool DeferDeviceTokenIdCheck { get; set; } = true;

    private DeferredTokenIdCheck? deferredIds;
    private bool deferredIdsTried;

    /// <summary>
    /// <see cref="CheckStep(Tensor, Tensor, long, string)"/> for the library's own forwards: returns the ids the step
    /// must embed — <paramref name="inputIds"/> itself, or (CUDA ids under <see cref="DeferDeviceTokenIdCheck"/>) a
    /// clamped copy the caller disposes after the step.
    /// </summary>
    internal Tensor CheckStepIds(Tensor inputIds, Tensor? attentionMask, long vocabSize, string layer)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (DeferDeviceTokenIdCheck && inputIds.device_type == DeviceType.CUDA)
        {
            if (!deferredIdsTried)
            {
                deferredIdsTried = true;
                deferredIds = DeferredTokenIdCheck.TryCreate(inputIds.device);
            }
            if (deferredIds is not null && deferredIds.Serves(inputIds))
            {
                CheckStepShape(inputIds, attentionMask, layer);
                try
                {
                    return deferredIds.Check(inputIds, vocabSize, layer);
                }
                catch (CudaKernelUnavailableException e)
                {
                    // the launch failed: this cache checks on the host from now on (an earlier report still throws above)
                    KernelLog.WarnOnce("token_ids_launch:" + e.Message, $"Mix.Runtime: the device-side token-id check failed ({e.Message}); checking on the host.");
                    deferredIds.Dispose();
                    deferredIds = null;
                }
            }
        }
        CheckStep(inputIds, attentionMask, vocabSize, layer);
        return inputIds;
    }

    /// <summary>
    /// Waits for the GPU and throws if any step of this cache since it was created or reset embedded an out-of-range
    /// CUDA token id (see <see cref="DeferDeviceTokenIdCheck"/>); does nothing when no step was checked that way.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A reported id, with its position and step.</exception>
    public void ThrowIfBadTokenIds()
    {
        deferredIds?.Synchronize();
    }

    /// <summary>
    /// Opens a transactional step on every slot: unless <see cref="CacheStep.Commit"/> is called before the returned
    /// object is disposed, every slot returns to its present state (counts, entries, blocks, states), whatever failed in
    /// between. The library's <see cref="ICausalLM.Forward"/> implementations run each call inside one. Replaced tensors
    /// are kept until the step ends, so no data is copied for this.
    /// </summary>
    public CacheStep BeginStep()
    {
        int opened = 0;
        try
        {
            for (; opened < slots.Length; opened++) slots[opened].BeginStep();
        }
        catch
        {
            for (int i = 0; i < opened; i++) slots[i].RollbackStep();
            throw;
        }
        return new CacheStep(slots);
    }

    /// <summary>Forgets every layer's state (buffers are kept), so the cache can serve a new generation.</summary>
    public void Reset()
    {
        foreach (var s in slots) s.Reset();
        deferredIds?.Reset();
    }

    /// <summary>Per-layer memory accounting.</summary>
    public IReadOnlyList<CacheLayerMemory> Memory() =>
        slots.Select(s => new CacheLayerMemory(s.LayerIndex, s.GetType().Name, s.BytesPerToken, s.FixedBytesPerRow, s.AllocatedBytes)).ToList();

    /// <summary>Bytes one more token costs one row, summed over layers.</summary>
    public double BytesPerToken => slots.Sum(s => s.BytesPerToken);

    /// <summary>Length-independent bytes per row, summed over layers.</summary>
    public long FixedBytesPerRow => slots.Sum(s => s.FixedBytesPerRow);

    /// <summary>Bytes of cache for <paramref name="batch"/> rows of <paramref name="tokens"/> tokens (model summary).</summary>
    /// <param name="batch">Rows.</param>
    /// <param name="tokens">Tokens per row.</param>
    public double BytesFor(long batch, long tokens) => batch * (FixedBytesPerRow + tokens * BytesPerToken);

    /// <summary>A table of the per-layer memory for a model summary.</summary>
    public string Summary()
    {
        var sb = new StringBuilder();
        sb.AppendLine("layer  slot                     bytes/token/row  fixed bytes/row  allocated");
        foreach (var m in Memory())
            sb.AppendLine(string.Format(CultureInfo.InvariantCulture, "{0,5}  {1,-24} {2,15:0.##}  {3,15}  {4,9}",
                m.Layer, m.Kind, m.BytesPerToken, m.FixedBytesPerRow, m.AllocatedBytes));
        sb.Append(string.Format(CultureInfo.InvariantCulture, "total  {0,-24} {1,15:0.##}  {2,15}  {3,9}",
            "", BytesPerToken, FixedBytesPerRow, slots.Sum(s => s.AllocatedBytes)));
        return sb.ToString();
    }

    /// <summary>The device of the model that made this cache (null when made by hand).</summary>
    public Device? Device { get; init; }

    // CausalModel.CudaGraphs: the recorded one-token steps (one per mask mode), or why this cache records none.
    internal List<DecodeGraph>? DecodeGraphs { get; set; }
    internal string? DecodeGraphRefused { get; set; }

    internal void ReleaseDecodeGraphs()
    {
        if (DecodeGraphs is null) return;
        foreach (var g in DecodeGraphs) g.Dispose();
        DecodeGraphs = null;
        DecodeGraphRefused = null;
    }

    /// <summary>Releases every slot.</summary>
    public void Dispose()
    {
        ReleaseDecodeGraphs();
        foreach (var s in slots) s.Dispose();
        deferredIds?.Dispose();
    }
}

/// <summary>A causal language model that decodes with an <see cref="InferenceCache"/>.</summary>
public interface ICausalLM
{
    /// <summary>Vocabulary size (last axis of the logits).</summary>
    long VocabSize { get; }

    /// <summary>Creates an empty cache for <paramref name="batch"/> rows.</summary>
    /// <param name="batch">Rows.</param>
    /// <param name="kvOptions">Options of the attention layers' KV slots (ignored by attention-free models).</param>
    InferenceCache CreateCache(long batch, KvCacheOptions? kvOptions = null);

    /// <summary>Logits <c>[batch, n, vocab]</c> (float32) of <c>n</c> new tokens <c>[batch, n]</c> continuing the cache.</summary>
    /// <param name="inputIds">New token ids.</param>
    /// <param name="cache">The cache.</param>
    /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask (nonzero = token).</param>
    Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null);
}

/// <summary>A step opened by <see cref="InferenceCache.BeginStep"/>: <see cref="Commit"/> keeps its changes; disposing it
/// uncommitted rolls every slot back.</summary>
public sealed class CacheStep : IDisposable
{
    private readonly CacheSlot[] slots;
    private bool closed;

    internal CacheStep(CacheSlot[] slots) => this.slots = slots;

    /// <summary>Keeps the step's changes.</summary>
    public void Commit()
    {
        if (closed) return;
        closed = true;
        foreach (var s in slots) s.CommitStep();
    }

    /// <summary>Rolls every slot back unless <see cref="Commit"/> was called.</summary>
    public void Dispose()
    {
        if (closed) return;
        closed = true;
        foreach (var s in slots) s.RollbackStep();
    }
}
