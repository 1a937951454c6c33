using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// The KV slot of a <c>.mix</c> mixer that calls <c>causal_attention</c> (<see cref="Builtins.IStatefulMixer.HasKeyValues"/>):
/// the slot <see cref="KvCacheOptions"/> choose (<see cref="KvCacheSlot"/>, or <see cref="QuantizedKvCacheSlot"/> with
/// KV quantization; sliding windows and sinks as for the built-in attention), created when the first keys arrive,
/// since a .mix mixer's heads and head size are known from its keys <c>[batch, heads, n, head_dim]</c>. Before that it
/// holds nothing and costs nothing.
/// </summary>
public sealed class MixKvCacheSlot : CacheSlot
{
    private readonly KvCacheOptions? options;
    private readonly ScalarType dtype;
    private readonly Device? device;
    private bool createdInStep;

    /// <summary>Creates an empty slot.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="options">KV options (quantization, window, capacity).</param>
    /// <param name="dtype">Model dtype.</param>
    /// <param name="device">Device.</param>
    public MixKvCacheSlot(int layerIndex, long batch, KvCacheOptions? options, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch)
    {
        this.options = options;
        this.dtype = dtype;
        this.device = device;
        if (options is { SlidingWindow: <= 0 }) throw new ArgumentOutOfRangeException(nameof(options), "sliding window must be positive");
    }

    /// <summary>The KV slot, once the first keys have arrived (null before).</summary>
    public AttentionCacheSlot? Inner { get; private set; }

    /// <summary>Appends the new keys and values and attends (see <see cref="AttentionCacheSlot.Attend"/>).</summary>
    /// <param name="q">Queries <c>[batch, heads, n, head_dim]</c>.</param>
    /// <param name="keys">New keys, the same shape.</param>
    /// <param name="values">New values, the same shape.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask of the new tokens.</param>
    /// <param name="scale">Score scale.</param>
    public Tensor Attend(Tensor q, Tensor keys, Tensor values, Tensor? mask, double scale)
    {
        if (keys.dim() != 4)
            throw new ArgumentException($"keys of layer {LayerIndex} must be [batch, heads, n, head_dim], got [{string.Join(", ", keys.shape)}]", nameof(keys));
        if (Inner is null)
        {
            Inner = CachedAttention.CreateSlot(LayerIndex, Batch, keys.shape[1], keys.shape[3], options, dtype, device ?? keys.device);
            if (InStep)
            {
                Inner.BeginStep();
                createdInStep = true;
            }
        }
        // while a step is recorded, the host's bookkeeping waits for the replay (RecordedStepDone)
        if (Inner.RecordsSteps && Cuda.CapturedGraph.IsRecording) return Inner.AttendRecorded(q, keys, values, mask, scale);
        var o = Inner.Attend(q, keys, values, mask, scale);
        Advance(mask, keys.shape[2]);
        return o;
    }

    /// <inheritdoc/>
    internal override bool RecordsSteps => Inner?.RecordsSteps ?? false;

    /// <inheritdoc/>
    internal override void PrepareRecordedStep() => Inner?.PrepareRecordedStep();

    /// <inheritdoc/>
    internal override IntPtr[] RecordedAddresses() => Inner?.RecordedAddresses() ?? Array.Empty<IntPtr>();

    /// <inheritdoc/>
    internal override void RecordedStepDone(Tensor? mask)
    {
        Inner!.RecordedStepDone(mask);
        Advance(mask, 1);
    }

    /// <inheritdoc/>
    public override void CheckStep(long batch, long n, Tensor? mask)
    {
        CheckInput(batch, n, mask);
        if (Inner is not null) Inner.CheckStep(batch, n, mask);
        else if (options is { FixedCapacity: true } o && n > o.InitialCapacity)
            throw new InvalidOperationException($"the KV cache of layer {LayerIndex} has room for {o.InitialCapacity} tokens, the step has {n}");
    }

    /// <inheritdoc/>
    public override double BytesPerToken => Inner?.BytesPerToken ?? 0;

    /// <inheritdoc/>
    public override long FixedBytesPerRow => Inner?.FixedBytesPerRow ?? 0;

    /// <inheritdoc/>
    public override long AllocatedBytes => Inner?.AllocatedBytes ?? 0;

    /// <inheritdoc/>
    protected override void OnBeginStep()
    {
        createdInStep = false;
        Inner?.BeginStep();
    }

    /// <inheritdoc/>
    protected override void OnCommitStep()
    {
        Inner?.CommitStep();
        createdInStep = false;
    }

    /// <inheritdoc/>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        if (createdInStep)
        {
            Inner?.Dispose();
            Inner = null;
            createdInStep = false;
            return;
        }
        Inner?.RollbackStep();
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        Inner?.Reset();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) Inner?.Dispose();
    }
}
