using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>Options of a key/value cache slot.</summary>
public sealed record KvCacheOptions
{
    /// <summary>Positions preallocated per row (default 64); a growing slot doubles when full.</summary>
    public int InitialCapacity { get; init; } = 64;

    /// <summary>When true the slot never grows: appending past <see cref="InitialCapacity"/> throws.</summary>
    public bool FixedCapacity { get; init; }

    /// <summary>Sliding window W (StreamingLLM): a query at position p sees keys at positions &gt; p − W, plus the
    /// attention sinks. Null = unbounded.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Attention-sink tokens: the first S valid tokens of each row stay visible forever (only with a window).</summary>
    public int SinkTokens { get; init; }

    /// <summary>KV-cache quantization (null = full precision in the model dtype).</summary>
    public KvQuantizationOptions? Quantization { get; init; }
}

/// <summary>
/// Base of the attention cache slots: bookkeeping of every cached entry (validity and row position per row, physical
/// position shared by the batch) and the attention mask of new queries against the cache. Masking rules, for a query at
/// physical position qp (row position qr) and a cached key at kp (row position kr):
/// allowed ⇔ key valid ∧ kp ≤ qp ∧ (no window ∨ qp − kp &lt; W ∨ kr &lt; S); every query also sees itself, so rows of
/// padding never produce an empty softmax.
/// </summary>
public abstract class AttentionCacheSlot : CacheSlot
{
    private Tensor? entryValid;   // [B, T] bool (sliding window only)
    private Tensor? entryRowPos;  // [B, T] int64 (sliding window only)
    private Tensor? entryPhys;    // [T] int64 (sliding window only)

    // Without a sliding window nothing is ever evicted, so an entry's physical position is its index and only its
    // validity is stored: a growing [B, capacity] bool buffer written in place. Entries from validWritten on were all
    // appended without a mask (valid) and are written lazily, so a decode step without padding touches no tensor.
    private Tensor? validBuf;
    private long stored;
    private long validWritten;
    private bool allValid = true;

    /// <summary>Creates a slot.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="numHeads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="options">Options (defaults when null).</param>
    protected AttentionCacheSlot(int layerIndex, long batch, long numHeads, long headDim, KvCacheOptions? options)
        : base(layerIndex, batch)
    {
        NumHeads = numHeads;
        HeadDim = headDim;
        Options = options ?? new KvCacheOptions();
        if (Options.SlidingWindow is <= 0) throw new ArgumentOutOfRangeException(nameof(options), "sliding window must be positive");
        if (Options.SinkTokens < 0) throw new ArgumentOutOfRangeException(nameof(options), "sink tokens must be ≥ 0");
    }

    /// <summary>Key/value heads.</summary>
    public long NumHeads { get; }

    /// <summary>Features per head.</summary>
    public long HeadDim { get; }

    /// <summary>The slot options.</summary>
    public KvCacheOptions Options { get; }

    /// <summary>Entries currently held (after eviction), padding included.</summary>
    public long Count => Windowed ? (entryPhys is null ? 0 : entryPhys.shape[0]) : stored;

    private bool Windowed => Options.SlidingWindow is not null;

    /// <summary>
    /// Appends the keys and values of <c>n</c> new tokens, <c>[batch, heads, n, headDim]</c> (keys already rotated if
    /// the model uses RoPE), and returns every cached key and value <c>[batch, heads, T, headDim]</c> (the new ones last)
    /// with the boolean mask <c>[batch, 1, n, T]</c> of what each new query may attend to. Advances the token counts.
    /// The returned tensors are valid until the next update.
    /// </summary>
    /// <param name="keys">New keys.</param>
    /// <param name="values">New values.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens (nonzero = valid).</param>
    public (Tensor keys, Tensor values, Tensor allowed) Update(Tensor keys, Tensor values, Tensor? mask = null)
    {
        var (k, v, allowed) = UpdateCore(keys, values, mask, materialize: true);
        return (k!, v!, allowed);
    }

    /// <summary>
    /// Cache-aware attention of <c>n</c> new queries: appends the new keys and values (as <see cref="Update"/>) and returns
    /// <c>softmax(q kᵀ·scale | allowed) v</c> <c>[batch, heads, n, headDim]</c>. The base implementation materialises
    /// the cache and calls <see cref="CachedAttention.Attend"/>; quantized slots override it with a fused CUDA kernel
    /// that reads the packed cache directly.
    /// </summary>
    /// <param name="q">Queries <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="keys">New keys.</param>
    /// <param name="values">New values.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    /// <param name="scale">Score scale.</param>
    public virtual Tensor Attend(Tensor q, Tensor keys, Tensor values, Tensor? mask, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (RecordsSteps && Cuda.CapturedGraph.IsRecording) return AttendRecorded(q, keys, values, mask, scale);
        using var scope = torch.NewDisposeScope();
        var (k, v, allowed) = Update(keys, values, mask);
        return CachedAttention.Attend(q, k, v, allowed, scale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Update"/>, optionally without returning the cached keys and values (then <see cref="Append"/> stores
    /// the new ones and nothing is materialised).
    /// </summary>
    /// <param name="keys">New keys.</param>
    /// <param name="values">New values.</param>
    /// <param name="mask">Optional mask of the new tokens.</param>
    /// <param name="materialize">Whether to return every cached key and value.</param>
    protected (Tensor? keys, Tensor? values, Tensor allowed) UpdateCore(Tensor keys, Tensor values, Tensor? mask, bool materialize)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        long n = CheckKeysValues(keys, values);
        CheckStep(keys.size(0), n, mask);
        using var scope = torch.NewDisposeScope();
        var device = keys.device;
        if (!Windowed) return UpdateUnwindowed(keys, values, mask, n, materialize);
        if (Options.SlidingWindow is int w) Evict(w);

        var newValid = mask is null ? torch.ones(new[] { Batch, n }, ScalarType.Bool, device) : mask.to(device).ne(0);
        var newRow = NewRowPositions(mask, n, device);
        var qPhys = torch.arange(TokensSeen, TokensSeen + n, dtype: ScalarType.Int64, device: device);
        Replace(ref entryValid, entryValid is null ? newValid : torch.cat(new[] { entryValid, newValid }, 1));
        Replace(ref entryRowPos, entryRowPos is null ? newRow : torch.cat(new[] { entryRowPos, newRow }, 1));
        Replace(ref entryPhys, entryPhys is null ? qPhys : torch.cat(new[] { entryPhys, qPhys }, 0));

        var kPhys = entryPhys!.view(1, 1, 1, -1);
        var qp = qPhys.view(1, 1, -1, 1);
        var allowed = entryValid!.view(Batch, 1, 1, -1).logical_and(kPhys.le(qp));
        if (Options.SlidingWindow is int window)
        {
            var inWindow = (qp - kPhys).lt(window);
            var sink = entryRowPos!.lt(Options.SinkTokens).view(Batch, 1, 1, -1);
            allowed = allowed.logical_and(inWindow.logical_or(sink));
        }
        allowed = allowed.logical_or(kPhys.eq(qp));

        if (!materialize)
        {
            Append(keys, values);
            Advance(mask, n);
            return (null, null, allowed.MoveToOuterDisposeScope());
        }
        var (k, v) = Store(keys, values);
        Advance(mask, n);
        return (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope(), allowed.MoveToOuterDisposeScope());
    }

    /// <summary>Checks the new keys and values <c>[batch, heads, n, headDim]</c> and returns n. Sizes are read one by one
    /// (<c>Tensor.shape</c> builds an array through several native calls: a decode step reads them often).</summary>
    private long CheckKeysValues(Tensor keys, Tensor values)
    {
        if (keys.dim() != 4 || keys.size(1) != NumHeads || keys.size(3) != HeadDim)
            throw new ArgumentException($"keys of layer {LayerIndex} must be [batch, {NumHeads}, n, {HeadDim}], got [{string.Join(", ", keys.shape)}]", nameof(keys));
        long b = keys.size(0), n = keys.size(2);
        if (values.dim() != 4 || values.size(0) != b || values.size(1) != NumHeads || values.size(2) != n || values.size(3) != HeadDim)
            throw new ArgumentException($"values of layer {LayerIndex} must match the keys [{string.Join(", ", keys.shape)}], got [{string.Join(", ", values.shape)}]", nameof(values));
        if (b != Batch)
            throw new ArgumentException($"the cache slot of layer {LayerIndex} holds {Batch} rows, the input has {b}");
        return n;
    }

    private (Tensor? keys, Tensor? values, Tensor allowed) UpdateUnwindowed(Tensor keys, Tensor values, Tensor? mask, long n, bool materialize)
    {
        WriteValidity(mask, n, keys, force: true);
        var allowed = AllowedForLast(n, stored + n, keys.device);
        stored += n;
        if (!materialize)
        {
            Append(keys, values);
            Advance(mask, n);
            return (null, null, allowed.MoveToOuterDisposeScope());
        }
        var (k, v) = Store(keys, values);
        Advance(mask, n);
        return (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope(), allowed.MoveToOuterDisposeScope());
    }

    /// <summary>allowed <c>[B, 1, n, T]</c> of the last <paramref name="n"/> of <paramref name="total"/> entries of a slot
    /// without a window: valid ∧ key ≤ query, and every query sees itself.</summary>
    private Tensor AllowedForLast(long n, long total, Device device)
    {
        FlushValidity(total);
        var kIdx = torch.arange(total, dtype: ScalarType.Int64, device: device).view(1, 1, 1, -1);
        var qIdx = torch.arange(total - n, total, dtype: ScalarType.Int64, device: device).view(1, 1, -1, 1);
        return validBuf!.narrow(1, 0, total).view(Batch, 1, 1, -1).logical_and(kIdx.le(qIdx)).logical_or(kIdx.eq(qIdx));
    }

    /// <summary>The mask <c>[B, 1, n, Count]</c> of the last <paramref name="n"/> entries, as <see cref="Update"/> returned
    /// it (slots without a sliding window; for a fallback after <see cref="AppendStep"/>).</summary>
    /// <param name="n">Queries (the last entries).</param>
    /// <param name="device">Device of the result.</param>
    protected Tensor AllowedForLast(long n, Device device)
    {
        if (Windowed) throw new InvalidOperationException("a sliding-window slot returns its mask from Update");
        return AllowedForLast(n, stored, device);
    }

    /// <summary>Writes the lazily valid entries [validWritten, upTo) into the buffer.</summary>
    private void FlushValidity(long upTo)
    {
        if (validWritten >= upTo) return;
        using var rows = validBuf!.narrow(1, validWritten, upTo - validWritten);
        rows.fill_(true);
        validWritten = upTo;
    }

    /// <summary>Records the validity of <paramref name="n"/> entries appended after the <see cref="stored"/> ones. Without a mask
    /// while every entry so far is valid nothing is written (unless <paramref name="force"/>).</summary>
    private void WriteValidity(Tensor? mask, long n, Tensor like, bool force)
    {
        // views are disposed here: a decode step may run without a dispose scope (every TorchSharp call is host time)
        long need = stored + n;
        if (!ValidityHolds(need, like.device))
        {
            long cap = Math.Max(64, validBuf is null ? 64 : validBuf.size(1));
            while (cap < need) cap *= 2;
            GrowValidity(cap, like.device);
        }
        if (mask is null && allValid && !force) return;
        FlushValidity(stored);
        using var rows = validBuf!.narrow(1, stored, n);
        if (mask is null) rows.fill_(true);
        else
        {
            using var ne = mask.ne(0);
            rows.copy_(ne);   // across devices when the mask lives elsewhere
            allValid = false;
        }
        validWritten = need;
    }

    /// <summary>
    /// The append half of <see cref="Update"/> for a decode step whose attention the caller computes itself, with no
    /// tensor work beyond <see cref="Append"/> (and the validity of masked tokens): no mask is built. Slots without a
    /// sliding window only. The queries of the step are the last <c>n</c> entries; <see cref="ValidEntries"/> tells
    /// which entries are valid.
    /// </summary>
    /// <param name="keys">New keys <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="values">New values.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    protected void AppendStep(Tensor keys, Tensor values, Tensor? mask)
    {
        if (Windowed) throw new InvalidOperationException("AppendStep is for slots without a sliding window");
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        long n = CheckKeysValues(keys, values);
        CheckStep(keys.size(0), n, mask);
        WriteValidity(mask, n, keys, force: false);
        stored += n;
        Append(keys, values);
        Advance(mask, n);
    }

    /// <summary>Validity of the entries, bool <c>[batch, ≥ Count]</c> (true = valid), or null while every entry is valid
    /// (slots without a sliding window).</summary>
    protected Tensor? ValidEntries
    {
        get
        {
            if (allValid || validBuf is null) return null;
            FlushValidity(stored);
            return validBuf;
        }
    }

    /// <summary>Positions a fixed-capacity slot holds at most (<see cref="KvCacheOptions.InitialCapacity"/>, at least 1).</summary>
    public long CapacityLimit => Math.Max(1, Options.InitialCapacity);

    /// <inheritdoc/>
    /// <remarks>Also refuses, before anything changes, a step that a fixed-capacity slot has no room for (entries kept
    /// after the sliding window's eviction plus the new ones over <see cref="CapacityLimit"/>).</remarks>
    public override void CheckStep(long batch, long n, Tensor? mask)
    {
        base.CheckStep(batch, n, mask);
        if (!Options.FixedCapacity) return;
        long kept = Options.SlidingWindow is int w ? KeptAfterEviction(w) : Count;
        if (kept + n > CapacityLimit)
            throw new InvalidOperationException(
                $"the KV cache of layer {LayerIndex} is full: it holds {kept} of {CapacityLimit} positions and {n} new tokens do not fit " +
                "(FixedCapacity); nothing was changed");
    }

    /// <summary>Entries the next eviction keeps (no change made).</summary>
    private long KeptAfterEviction(int window)
    {
        if (entryPhys is null) return 0;
        using var scope = torch.NewDisposeScope();
        return RetainedOnEviction(Needed(window)).sum().item<long>();
    }

    private Tensor Needed(int window) => entryPhys!.gt(TokensSeen - window).unsqueeze(0)
        .logical_or(entryValid!.logical_and(entryRowPos!.lt(Options.SinkTokens)))
        .any(0);

    /// <summary>Stores the new keys/values without returning the cache (default: <see cref="Store"/>, result dropped).</summary>
    /// <param name="keys">New keys <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="values">New values.</param>
    protected virtual void Append(Tensor keys, Tensor values)
    {
        var (k, v) = Store(keys, values);
        k.Dispose();
        v.Dispose();
    }

    /// <summary>Stores the new keys/values after the entries kept so far and returns all of them.</summary>
    /// <param name="keys">New keys <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="values">New values.</param>
    protected abstract (Tensor keys, Tensor values) Store(Tensor keys, Tensor values);

    /// <summary>Keeps only the entries at <paramref name="keep"/> (indices into the current entries, ascending, as
    /// returned by <see cref="RetainedOnEviction"/>).</summary>
    /// <param name="keep">Kept entry indices (int64).</param>
    protected abstract void Compact(Tensor keep);

    /// <summary>
    /// The entries a sliding-window eviction keeps, given those a future query can still see (<c>[T]</c> bool). A slot
    /// whose storage cannot drop single entries widens the set (a quantized slot keeps a packed block whole while any
    /// of its tokens is needed); entries kept beyond need are masked out by the window rule, so results do not change.
    /// </summary>
    /// <param name="needed">Entries some future query may attend to.</param>
    protected virtual Tensor RetainedOnEviction(Tensor needed) => needed;

    private void Evict(int window)
    {
        if (entryPhys is null) return;
        // Future queries sit at physical positions ≥ TokensSeen: they can see kp > TokensSeen − W, and sinks.
        using var scope = torch.NewDisposeScope();
        var needed = RetainedOnEviction(Needed(window));
        long kept = needed.sum().item<long>();
        if (kept == Count) return;
        var keep = needed.nonzero().squeeze(1);
        Compact(keep);
        Replace(ref entryValid, entryValid!.index_select(1, keep).MoveToOuterDisposeScope());
        Replace(ref entryRowPos, entryRowPos!.index_select(1, keep).MoveToOuterDisposeScope());
        Replace(ref entryPhys, entryPhys.index_select(0, keep).MoveToOuterDisposeScope());
    }

    /// <summary>The one-token append and attention of a recorded step (see <see cref="CacheSlot.RecordsSteps"/>).</summary>
    internal virtual Tensor AttendRecorded(Tensor q, Tensor keys, Tensor values, Tensor? mask, double scale) =>
        throw new NotSupportedException($"the cache slot of layer {LayerIndex} ({GetType().Name}) cannot be recorded");

    /// <summary>The validity buffer sized for <paramref name="capacity"/> entries and written up to the stored ones.</summary>
    private protected void PrepareRecordedValidity(long capacity, Device device)
    {
        if (!ValidityHolds(capacity, device)) GrowValidity(capacity, device);
        FlushValidity(stored);
    }

    private bool ValidityHolds(long entries, Device device) =>
        validBuf is not null && validBuf.size(1) >= entries && validBuf.device_type == device.type && validBuf.device_index == device.index;

    /// <summary>A validity buffer of <paramref name="capacity"/> entries on <paramref name="device"/> holding the written
    /// ones (the old buffer is retired: a step that rolls back gets it back).</summary>
    private void GrowValidity(long capacity, Device device)
    {
        var grown = torch.zeros(new[] { Batch, capacity }, ScalarType.Bool, device);
        if (validBuf is not null && validWritten > 0)
            using (var dst = grown.narrow(1, 0, validWritten)) using (var src = validBuf.narrow(1, 0, validWritten)) dst.copy_(src);
        var old = validBuf;
        validBuf = grown.DetachFromDisposeScope();
        Retire(old);
    }

    /// <summary>Writes the new entry's validity at the device position <paramref name="pos"/> <c>[1]</c> and returns what
    /// the query may attend to among all <paramref name="capacity"/> entries <c>[batch, 1, 1, capacity]</c>: valid and
    /// not after it, itself always. The same mask as the eager step's over its first stored + 1 entries, zero past them.</summary>
    private protected Tensor RecordedAllowed(Tensor pos, Tensor? mask, long capacity, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var valid = mask is null ? torch.ones(new[] { Batch, 1L }, ScalarType.Bool, device) : mask.to(device).ne(0);
        validBuf!.index_copy_(1, pos, valid);
        var kIdx = torch.arange(capacity, dtype: ScalarType.Int64, device: device).view(1, 1, 1, -1);
        var p = pos.view(1, 1, 1, 1);
        return validBuf.narrow(1, 0, capacity).view(Batch, 1, 1, capacity).logical_and(kIdx.le(p)).logical_or(kIdx.eq(p))
            .MoveToOuterDisposeScope();
    }

    /// <summary>The host side of one appended token (what <see cref="Update"/> records besides the tensors).</summary>
    private protected void RecordedValidityDone(Tensor? mask)
    {
        stored += 1;
        validWritten = stored;
        if (mask is not null) allValid = false;
        Advance(mask, 1);
    }

    private protected IntPtr ValidityAddress => validBuf is null ? IntPtr.Zero : Cuda.TensorPointers.Address(validBuf);

    private void Replace(ref Tensor? field, Tensor value)
    {
        if (ReferenceEquals(field, value)) return;
        var old = field;
        field = value.DetachFromDisposeScope();
        Retire(old);
    }

    private (Tensor? valid, Tensor? rowPos, Tensor? phys) stepEntries;
    private (Tensor? buf, long stored, long written, bool allValid) stepValidity;

    /// <inheritdoc/>
    protected override void OnBeginStep()
    {
        stepEntries = (entryValid, entryRowPos, entryPhys);
        stepValidity = (validBuf, stored, validWritten, allValid);
    }

    /// <inheritdoc/>
    protected override void OnCommitStep()
    {
        stepEntries = default;
        stepValidity = default;
    }

    /// <inheritdoc/>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        static void Restore(ref Tensor? field, Tensor? original, HashSet<object> live)
        {
            if (!ReferenceEquals(field, original)) field?.Dispose();
            field = original;
            if (original is not null) live.Add(original);
        }
        Restore(ref entryValid, stepEntries.valid, live);
        Restore(ref entryRowPos, stepEntries.rowPos, live);
        Restore(ref entryPhys, stepEntries.phys, live);
        stepEntries = default;
        // entries appended in the step were written past the step's count (or into a grown buffer), so the buffer of
        // the start still holds the start's validity
        Restore(ref validBuf, stepValidity.buf, live);
        (stored, validWritten, allValid) = (stepValidity.stored, stepValidity.written, stepValidity.allValid);
        stepValidity = default;
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        if (InStep) throw new InvalidOperationException($"the cache slot of layer {LayerIndex} cannot be reset inside a step");
        base.Reset();
        entryValid?.Dispose(); entryValid = null;
        entryRowPos?.Dispose(); entryRowPos = null;
        entryPhys?.Dispose(); entryPhys = null;
        stored = 0;
        validWritten = 0;
        allValid = true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        entryValid?.Dispose();
        entryRowPos?.Dispose();
        entryPhys?.Dispose();
        validBuf?.Dispose();
    }

    /// <inheritdoc/>
    public override long FixedBytesPerRow => 0;
}

/// <summary>
/// Full-precision key/value cache of one attention layer: preallocated <c>[batch, heads, capacity, headDim]</c> key and
/// value buffers that grow by doubling (or stay fixed), with an optional StreamingLLM sliding window with attention
/// sinks (evicted entries are compacted away before the next append).
/// </summary>
public sealed class KvCacheSlot : AttentionCacheSlot
{
    private Tensor keyBuffer;
    private Tensor valueBuffer;
    private long stored;

    /// <summary>Creates an empty slot.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="numHeads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="options">Options.</param>
    /// <param name="dtype">Element type of the cache.</param>
    /// <param name="device">Device.</param>
    public KvCacheSlot(int layerIndex, long batch, long numHeads, long headDim, KvCacheOptions? options = null,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch, numHeads, headDim, options)
    {
        if (Options.Quantization is not null) throw new ArgumentException("use QuantizedKvCacheSlot for a quantized cache", nameof(options));
        long cap = Math.Max(1, Options.InitialCapacity);
        keyBuffer = torch.zeros(new[] { batch, numHeads, cap, headDim }, dtype: dtype, device: device).DetachFromDisposeScope();
        valueBuffer = torch.zeros(new[] { batch, numHeads, cap, headDim }, dtype: dtype, device: device).DetachFromDisposeScope();
    }

    /// <summary>Positions allocated per row.</summary>
    public long Capacity => keyBuffer.shape[2];

    /// <inheritdoc/>
    public override double BytesPerToken => 2.0 * NumHeads * HeadDim * ElementBytes(keyBuffer.dtype);

    /// <inheritdoc/>
    public override long AllocatedBytes => 2 * keyBuffer.numel() * ElementBytes(keyBuffer.dtype);

    /// <inheritdoc/>
    protected override (Tensor keys, Tensor values) Store(Tensor keys, Tensor values)
    {
        long n = keys.shape[2];
        long need = stored + n;
        if (need > Capacity)
        {
            if (Options.FixedCapacity)
                throw new InvalidOperationException($"KV cache of layer {LayerIndex} is full ({Capacity} positions; {need} needed)");
            long cap = Capacity;
            while (cap < need) cap *= 2;
            Grow(cap);
        }
        using (torch.no_grad())
        {
            keyBuffer.narrow(2, stored, n).copy_(keys);
            valueBuffer.narrow(2, stored, n).copy_(values);
        }
        stored = need;
        return (keyBuffer.narrow(2, 0, stored), valueBuffer.narrow(2, 0, stored));
    }

    private (Tensor keys, Tensor values, long stored) stepBuffers;

    /// <inheritdoc/>
    protected override void OnBeginStep()
    {
        base.OnBeginStep();
        stepBuffers = (keyBuffer, valueBuffer, stored);
    }

    /// <inheritdoc/>
    protected override void OnCommitStep()
    {
        base.OnCommitStep();
        stepBuffers = default;
    }

    /// <inheritdoc/>
    /// <remarks>Appends write past the stored entries and compaction inside a step writes new buffers, so the buffers
    /// held at the start still hold the start's entries.</remarks>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        base.OnRollbackStep(live);
        if (!ReferenceEquals(keyBuffer, stepBuffers.keys)) keyBuffer.Dispose();
        if (!ReferenceEquals(valueBuffer, stepBuffers.values)) valueBuffer.Dispose();
        (keyBuffer, valueBuffer, stored) = stepBuffers;
        live.Add(keyBuffer);
        live.Add(valueBuffer);
        stepBuffers = default;
    }

    private void Grow(long cap)
    {
        var k = torch.zeros(new[] { Batch, NumHeads, cap, HeadDim }, dtype: keyBuffer.dtype, device: keyBuffer.device);
        var v = torch.zeros(new[] { Batch, NumHeads, cap, HeadDim }, dtype: keyBuffer.dtype, device: keyBuffer.device);
        using (torch.no_grad())
        {
            k.narrow(2, 0, stored).copy_(keyBuffer.narrow(2, 0, stored));
            v.narrow(2, 0, stored).copy_(valueBuffer.narrow(2, 0, stored));
        }
        Retire(keyBuffer);
        Retire(valueBuffer);
        keyBuffer = k.DetachFromDisposeScope();
        valueBuffer = v.DetachFromDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Compact(Tensor keep)
    {
        using var scope = torch.NewDisposeScope();
        long kept = keep.shape[0];
        var k = keyBuffer.narrow(2, 0, stored).index_select(2, keep);
        var v = valueBuffer.narrow(2, 0, stored).index_select(2, keep);
        if (InStep)
        {
            // Out of place: the buffers held when the step began must keep their entries in case it rolls back.
            var newK = torch.empty_like(keyBuffer).DetachFromDisposeScope();
            var newV = torch.empty_like(valueBuffer).DetachFromDisposeScope();
            Retire(keyBuffer);
            Retire(valueBuffer);
            keyBuffer = newK;
            valueBuffer = newV;
        }
        using (torch.no_grad())
        {
            keyBuffer.narrow(2, 0, kept).copy_(k);
            valueBuffer.narrow(2, 0, kept).copy_(v);
        }
        stored = kept;
    }

    private Tensor? devicePos;
    private long devicePosValue = -1;   // what devicePos holds when known (after a completed recorded step)

    /// <inheritdoc/>
    internal override bool RecordsSteps => Options.SlidingWindow is null;

    /// <inheritdoc/>
    internal override void PrepareRecordedStep()
    {
        if (stored + 1 > Capacity)
        {
            if (Options.FixedCapacity)
                throw new InvalidOperationException($"KV cache of layer {LayerIndex} is full ({Capacity} positions)");
            Grow(Math.Max(2 * Capacity, stored + 1));
        }
        PrepareRecordedValidity(Capacity, keyBuffer.device);
        devicePos ??= torch.zeros(1, dtype: ScalarType.Int64, device: keyBuffer.device).DetachFromDisposeScope();
        // a recorded step advances the device position itself: set it only after other steps moved the count
        if (devicePosValue != stored) devicePos.fill_(stored);
        devicePosValue = -1;   // unknown until the step is done
    }

    /// <inheritdoc/>
    internal override IntPtr[] RecordedAddresses() => new[]
    {
        Cuda.TensorPointers.Address(keyBuffer), Cuda.TensorPointers.Address(valueBuffer), ValidityAddress,
        devicePos is null ? IntPtr.Zero : Cuda.TensorPointers.Address(devicePos),
    };

    /// <inheritdoc/>
    /// <remarks>Attends over the whole capacity: the entries past the new one are masked out (their weights are zero),
    /// so the shapes do not change from step to step.</remarks>
    internal override Tensor AttendRecorded(Tensor q, Tensor keys, Tensor values, Tensor? mask, double scale)
    {
        if (devicePos is null) throw new InvalidOperationException("PrepareRecordedStep must run before a recorded step");
        using var scope = torch.NewDisposeScope();
        using (torch.no_grad())
        {
            keyBuffer.index_copy_(2, devicePos, keys);
            valueBuffer.index_copy_(2, devicePos, values);
        }
        var allowed = RecordedAllowed(devicePos, mask, Capacity, keyBuffer.device);
        var o = CachedAttention.Attend(q, keyBuffer, valueBuffer, allowed, scale);
        devicePos.add_(1);
        return o.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    internal override void RecordedStepDone(Tensor? mask)
    {
        stored += 1;
        devicePosValue = stored;
        RecordedValidityDone(mask);
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        stored = 0;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing) return;
        keyBuffer.Dispose();
        valueBuffer.Dispose();
        devicePos?.Dispose();
    }
}
