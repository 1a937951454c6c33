using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// The decoding state of one layer. Every slot counts the tokens its layer has seen (no global counter):
/// <see cref="TokensSeen"/> counts positions including padding (the same for every row of the batch) and
/// <see cref="RowTokens"/> counts the valid (unmasked) tokens of each row.
/// </summary>
public abstract class CacheSlot : IDisposable
{
    private long[] rowTokens;
    private (long seen, long[] rows)? stepStart;
    private readonly List<IDisposable> retired = new();

    /// <summary>Creates a slot.</summary>
    /// <param name="layerIndex">The layer the slot belongs to.</param>
    /// <param name="batch">Rows of the batch.</param>
    protected CacheSlot(int layerIndex, long batch)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch));
        LayerIndex = layerIndex;
        Batch = batch;
        rowTokens = new long[batch];
    }

    /// <summary>The layer the slot belongs to.</summary>
    public int LayerIndex { get; }

    /// <summary>Rows of the batch.</summary>
    public long Batch { get; }

    /// <summary>Positions this layer has processed since the last reset, padding included.</summary>
    public long TokensSeen { get; private set; }

    /// <summary>Valid (unmasked) tokens processed per row since the last reset.</summary>
    public long[] RowTokens => (long[])rowTokens.Clone();

    /// <summary>Bytes of cache memory one more token costs one row of this layer (0 for fixed-size states).</summary>
    public abstract double BytesPerToken { get; }

    /// <summary>Bytes this layer's state takes per row independently of the length (recurrent and conv states).</summary>
    public abstract long FixedBytesPerRow { get; }

    /// <summary>Bytes currently allocated by the slot (all rows).</summary>
    public abstract long AllocatedBytes { get; }

    /// <summary>Forgets everything seen (allocations are kept for reuse).</summary>
    public virtual void Reset()
    {
        TokensSeen = 0;
        Array.Clear(rowTokens);
    }

    /// <summary>Row positions (valid-token index within the row) of <paramref name="n"/> new tokens, <c>[batch, n]</c>
    /// int64; padding gets the position of the next valid token (clamped at 0 before the first).</summary>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens (nonzero = valid).</param>
    /// <param name="n">Number of new tokens.</param>
    /// <param name="device">Device of the result.</param>
    public Tensor NewRowPositions(Tensor? mask, long n, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var start = torch.tensor(rowTokens, device: device).unsqueeze(1);
        Tensor pos;
        if (mask is null) pos = start + torch.arange(n, dtype: ScalarType.Int64, device: device).unsqueeze(0);
        else pos = start + mask.to(device).ne(0).to_type(ScalarType.Int64).cumsum(1) - 1;
        return pos.clamp_min(0).MoveToOuterDisposeScope();
    }

    [ThreadStatic] private static long t_maskReads;

    /// <summary>Masks read back to the host for row counts so far on this thread (one per masked step of a
    /// <see cref="CausalModel"/>, whatever its number of layers).</summary>
    internal static long MaskReads => t_maskReads;

    // ---- recorded one-token steps (CausalModel.CudaGraphs) -------------------------------------------------------
    // A slot that can take part in a recorded step does its per-step tensor work at fixed shapes, reading where to
    // write from a device scalar that the host sets before every replay, and leaves its host bookkeeping to
    // RecordedStepDone after the replay. Slots that cannot are left out of the recording (DecodeGraph.Defer).

    /// <summary>Whether this slot's one-token step can be recorded into a graph (now: a full-precision KV slot without a
    /// sliding window).</summary>
    internal virtual bool RecordsSteps => false;

    /// <summary>Before a step is recorded and before each replay: room for one more token, the device-side position
    /// set to the host's count. May replace buffers (then <see cref="RecordedAddresses"/> changes and the graph must
    /// be recorded again).</summary>
    internal virtual void PrepareRecordedStep() { }

    /// <summary>The data addresses a recorded step reads and writes (a replay is valid while they are unchanged).</summary>
    internal virtual IntPtr[] RecordedAddresses() => Array.Empty<IntPtr>();

    /// <summary>After a replay: the host bookkeeping of the one token the replay appended.</summary>
    /// <param name="mask">The step's <c>[batch, 1]</c> mask, or null.</param>
    internal virtual void RecordedStepDone(Tensor? mask) { }

    /// <summary>Nonzero entries per row of a <c>[batch, n]</c> mask, on the host.</summary>
    /// <param name="mask">The mask.</param>
    internal static long[] CountRows(Tensor mask)
    {
        t_maskReads++;
        using var counts = mask.ne(0).sum(1).cpu().to_type(ScalarType.Int64);
        return counts.data<long>().ToArray();
    }

    /// <summary>Records that <paramref name="n"/> positions were processed (called by the layer after its update).</summary>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    /// <param name="n">Number of new positions.</param>
    protected internal void Advance(Tensor? mask, long n)
    {
        if (mask is not null)
        {
            if (mask.dim() != 2 || mask.shape[0] != Batch || mask.shape[1] != n)
                throw new ArgumentException($"mask must be [{Batch}, {n}], got [{string.Join(", ", mask.shape)}]", nameof(mask));
            // one read of the mask per step for all slots while a CausalModel runs (a device mask: one synchronisation)
            var c = CacheScope.Current?.RowCounts(mask) ?? CountRows(mask);
            for (int r = 0; r < rowTokens.Length; r++) rowTokens[r] += c[r];
        }
        else
        {
            for (int r = 0; r < rowTokens.Length; r++) rowTokens[r] += n;
        }
        TokensSeen += n;
    }

    /// <summary>
    /// Throws, naming the layer, the value and the bound, when a step of <paramref name="n"/> new tokens for
    /// <paramref name="batch"/> rows with <paramref name="mask"/> cannot be applied to this slot; changes nothing. A step
    /// that passes this check for every slot (see <see cref="InferenceCache.CheckStep(long, long, Tensor)"/>) does not fail on its input.
    /// Metadata only (no device synchronisation) except for a fixed-capacity sliding-window slot, which counts the
    /// entries the window will keep.
    /// </summary>
    /// <param name="batch">Rows of the new tokens.</param>
    /// <param name="n">New tokens per row.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    public virtual void CheckStep(long batch, long n, Tensor? mask) => CheckInput(batch, n, mask);

    /// <summary>The part of <see cref="CheckStep"/> that looks at the input alone (batch, token count, mask shape):
    /// metadata only, never a device synchronisation.</summary>
    /// <param name="batch">Rows of the new tokens.</param>
    /// <param name="n">New tokens per row.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    public void CheckInput(long batch, long n, Tensor? mask)
    {
        if (batch != Batch)
            throw new ArgumentException($"the cache slot of layer {LayerIndex} holds {Batch} rows, the input has {batch}");
        if (n < 1) throw new ArgumentException($"a step of layer {LayerIndex} needs at least one new token, got {n}");
        if (mask is not null && (mask.dim() != 2 || mask.shape[0] != Batch || mask.shape[1] != n))
            throw new ArgumentException(
                $"the attention mask must be [{Batch}, {n}] (batch, new tokens) at layer {LayerIndex}, got [{string.Join(", ", mask.shape)}]", nameof(mask));
    }

    /// <summary>Checks a layer input against the slot's batch.</summary>
    /// <param name="x">Input whose first axis is the batch.</param>
    protected void CheckBatch(Tensor x)
    {
        long b = x.size(0);
        if (b != Batch)
            throw new ArgumentException($"the cache slot of layer {LayerIndex} holds {Batch} rows, the input has {b}");
    }

    /// <summary>Whether a transactional step (<see cref="InferenceCache.BeginStep"/>) is open on this slot.</summary>
    protected bool InStep => stepStart is not null;

    /// <summary>Opens a step: from now until <see cref="CommitStep"/> or <see cref="RollbackStep"/> the slot keeps what
    /// it needs to return to its present state (tensors it replaces are retired, not disposed).</summary>
    internal void BeginStep()
    {
        if (InStep) throw new InvalidOperationException($"a step is already open on the cache slot of layer {LayerIndex}");
        stepStart = (TokensSeen, (long[])rowTokens.Clone());
        OnBeginStep();
    }

    /// <summary>Closes the step, keeping its changes (retired tensors are disposed).</summary>
    internal void CommitStep()
    {
        if (!InStep) return;
        OnCommitStep();
        stepStart = null;
        foreach (var r in retired) r.Dispose();
        retired.Clear();
    }

    /// <summary>Closes the step, returning the slot to its state at <see cref="BeginStep"/>.</summary>
    internal void RollbackStep()
    {
        if (stepStart is not (long seen, long[] rows)) return;
        TokensSeen = seen;
        rowTokens = rows;
        var live = new HashSet<object>(ReferenceEqualityComparer.Instance);
        OnRollbackStep(live);
        foreach (var r in retired) if (!live.Contains(r)) r.Dispose();
        retired.Clear();
        stepStart = null;
    }

    /// <summary>Records what <see cref="OnRollbackStep"/> restores (default: nothing beyond the token counts).</summary>
    protected virtual void OnBeginStep() { }

    /// <summary>Forgets what <see cref="OnBeginStep"/> recorded.</summary>
    protected virtual void OnCommitStep() { }

    /// <summary>Restores what <see cref="OnBeginStep"/> recorded, disposes what the step created, and adds every restored
    /// object to <paramref name="live"/> (retired objects not in it are disposed afterwards).</summary>
    /// <param name="live">Objects in use again after the rollback.</param>
    protected virtual void OnRollbackStep(HashSet<object> live) { }

    /// <summary>Disposes <paramref name="old"/> now, or, inside a step, when the step commits (a rollback may need it).</summary>
    /// <param name="old">A tensor or block the slot no longer holds.</param>
    protected void Retire(IDisposable? old)
    {
        if (old is null) return;
        if (InStep) retired.Add(old);
        else old.Dispose();
    }

    /// <summary>Releases the slot's tensors.</summary>
    public void Dispose()
    {
        // Disposed inside a step: what the step retired is no longer referenced by the slot's fields.
        foreach (var r in retired) r.Dispose();
        retired.Clear();
        stepStart = null;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the slot's tensors.</summary>
    /// <param name="disposing">Called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing) { }

    internal static long ElementBytes(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}
