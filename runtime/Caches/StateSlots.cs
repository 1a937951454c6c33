using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// A fixed-size per-row state <c>[batch, channels, width]</c> that decoding overwrites: what the convolution and the
/// recurrent slots have in common (no per-token growth, copied in place, zeroed on reset).
/// </summary>
public abstract class FixedStateSlot : CacheSlot
{
    /// <summary>Creates a zero state.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="channels">Channels.</param>
    /// <param name="width">Last axis of the state.</param>
    /// <param name="dtype">Element type.</param>
    /// <param name="device">Device (CPU when null).</param>
    protected FixedStateSlot(int layerIndex, long batch, long channels, long width, ScalarType dtype, Device? device)
        : base(layerIndex, batch)
    {
        Channels = channels;
        Width = width;
        State = torch.zeros(new[] { batch, channels, width }, dtype: dtype, device: device).DetachFromDisposeScope();
    }

    /// <summary>Channels.</summary>
    public long Channels { get; }

    /// <summary>Size of the state's last axis.</summary>
    protected long Width { get; }

    /// <summary>The state <c>[batch, channels, width]</c>, owned by the slot. Outside a step updates copy into it;
    /// inside a step (<see cref="InferenceCache.BeginStep"/>) an update replaces it (the old one is kept for a rollback),
    /// so read it after the step rather than holding on to it.</summary>
    public Tensor State { get; private set; }

    /// <inheritdoc/>
    public override double BytesPerToken => 0;

    /// <inheritdoc/>
    public override long FixedBytesPerRow => Channels * Width * ElementBytes(State.dtype);

    /// <inheritdoc/>
    public override long AllocatedBytes => State.numel() * ElementBytes(State.dtype);

    /// <summary>Stores a new state (copied, converted to the slot's dtype).</summary>
    /// <param name="state"><c>[batch, channels, width]</c>.</param>
    public void Set(Tensor state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!state.shape.SequenceEqual(State.shape))
            throw new ArgumentException($"the state of layer {LayerIndex} is [{string.Join(", ", State.shape)}], got [{string.Join(", ", state.shape)}]", nameof(state));
        using var noGrad = torch.no_grad();
        if (!InStep)
        {
            State.copy_(state);
            return;
        }
        var next = torch.empty_like(State);
        next.copy_(state);
        Retire(State);
        State = next.DetachFromDisposeScope();
    }

    private Tensor? stepState;

    /// <inheritdoc/>
    protected override void OnBeginStep() => stepState = State;

    /// <inheritdoc/>
    protected override void OnCommitStep() => stepState = null;

    /// <inheritdoc/>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        if (stepState is null) return;
        if (!ReferenceEquals(State, stepState)) State.Dispose();
        State = stepState;
        live.Add(State);
        stepState = null;
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        State.zero_();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) State.Dispose();
    }
}

/// <summary>
/// Causal depthwise conv1d state: the last <see cref="Kernel"/> pre-convolution inputs per channel,
/// <c>[batch, channels, kernel]</c> (HF <c>conv_states</c> layout, oldest first, zeros before the first token).
/// </summary>
public sealed class ConvStateSlot : FixedStateSlot
{
    /// <summary>Creates a zero state.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="channels">Convolution channels.</param>
    /// <param name="kernel">Convolution kernel size.</param>
    /// <param name="dtype">Element type.</param>
    /// <param name="device">Device (CPU when null).</param>
    public ConvStateSlot(int layerIndex, long batch, long channels, long kernel, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch, channels, kernel, dtype, device)
    {
    }

    /// <summary>Convolution kernel size.</summary>
    public long Kernel => Width;
}

/// <summary>
/// Recurrent (S6 selective-scan) state <c>[batch, channels, stateSize]</c>, kept in float32 (or float64) whatever the
/// model dtype, as the scan computes it.
/// </summary>
public sealed class RecurrentStateSlot : FixedStateSlot
{
    /// <summary>Creates a zero state.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="channels">Channels (<c>d_inner</c>).</param>
    /// <param name="stateSize">SSM state size <c>n</c>.</param>
    /// <param name="dtype">Element type (float32 by default).</param>
    /// <param name="device">Device (CPU when null).</param>
    public RecurrentStateSlot(int layerIndex, long batch, long channels, long stateSize, ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch, channels, stateSize, dtype, device)
    {
    }

    /// <summary>SSM state size.</summary>
    public long StateSize => Width;
}

/// <summary>The slot of one Mamba layer: its <see cref="ConvStateSlot"/> and its <see cref="RecurrentStateSlot"/>.</summary>
public sealed class MambaCacheSlot : CacheSlot
{
    /// <summary>Creates zero states for a Mamba mixer.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="intermediateSize">Mixer <c>d_inner</c>.</param>
    /// <param name="convKernel">Conv kernel.</param>
    /// <param name="stateSize">SSM state size.</param>
    /// <param name="dtype">Dtype of the conv state (the model dtype); the SSM state is float32.</param>
    /// <param name="device">Device.</param>
    public MambaCacheSlot(int layerIndex, long batch, long intermediateSize, long convKernel, long stateSize,
        ScalarType dtype = ScalarType.Float32, Device? device = null) : base(layerIndex, batch)
    {
        Conv = new ConvStateSlot(layerIndex, batch, intermediateSize, convKernel, dtype, device);
        Ssm = new RecurrentStateSlot(layerIndex, batch, intermediateSize, stateSize,
            dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32, device);
    }

    /// <summary>The causal conv1d state.</summary>
    public ConvStateSlot Conv { get; }

    /// <summary>The selective-scan state.</summary>
    public RecurrentStateSlot Ssm { get; }

    /// <inheritdoc/>
    public override double BytesPerToken => 0;

    /// <inheritdoc/>
    public override long FixedBytesPerRow => Conv.FixedBytesPerRow + Ssm.FixedBytesPerRow;

    /// <inheritdoc/>
    public override long AllocatedBytes => Conv.AllocatedBytes + Ssm.AllocatedBytes;

    /// <inheritdoc/>
    protected override void OnBeginStep()
    {
        Conv.BeginStep();
        Ssm.BeginStep();
    }

    /// <inheritdoc/>
    protected override void OnCommitStep()
    {
        Conv.CommitStep();
        Ssm.CommitStep();
    }

    /// <inheritdoc/>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        Conv.RollbackStep();
        Ssm.RollbackStep();
    }

    /// <summary>Records processed positions on this slot and both inner slots.</summary>
    /// <param name="mask">Optional mask.</param>
    /// <param name="n">Positions.</param>
    internal void AdvanceAll(Tensor? mask, long n)
    {
        Conv.Advance(mask, n);
        Ssm.Advance(mask, n);
        Advance(mask, n);
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        Conv.Reset();
        Ssm.Reset();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        Conv.Dispose();
        Ssm.Dispose();
    }
}
