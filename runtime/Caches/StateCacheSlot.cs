using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Builtins;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// The slot of a <c>.mix</c> mixer that declares decoding state (<see cref="IStatefulMixer"/>): one tensor per declared
/// state, of its declared shape and dtype, zero before the first token. Fixed size (0 bytes per token). Inside a step
/// (<see cref="InferenceCache.BeginStep"/>) an update replaces a tensor and keeps the old one for a rollback, like
/// <see cref="FixedStateSlot"/>.
/// </summary>
public sealed class StateCacheSlot : CacheSlot
{
    private readonly MixStateSpec[] specs;
    private readonly Dictionary<string, Tensor> states = new(StringComparer.Ordinal);
    private Dictionary<string, Tensor>? stepStates;
    // Second buffers of the states that fused steps write (read one, write the other, then swap), and their work
    // buffers: allocated at the first fused step, reused by every later one.
    private readonly Dictionary<string, Tensor> spares = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> workspaces = new(StringComparer.Ordinal);
    // While a decoding step is recorded into a graph (DecodeGraph): the states as the step found them, and the values
    // the step wrote (aliases, so the forward's dispose scope cannot free them before the step's end copies them back).
    private Dictionary<string, Tensor>? captureStates;
    private readonly Dictionary<string, Tensor> pending = new(StringComparer.Ordinal);

    /// <summary>Creates zero states.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="specs">The mixer's states for <paramref name="batch"/> rows (<see cref="IStatefulMixer.States"/>).</param>
    /// <param name="device">Device (CPU when null).</param>
    public StateCacheSlot(int layerIndex, long batch, IEnumerable<MixStateSpec> specs, Device? device = null) : base(layerIndex, batch)
    {
        this.specs = specs.ToArray();
        if (this.specs.Length == 0) throw new ArgumentException("a state slot needs at least one state", nameof(specs));
        foreach (var s in this.specs)
        {
            if (s.Shape.Length == 0 || s.Shape[0] != batch)
                throw new ArgumentException($"state '{s.Name}' of layer {layerIndex} must be [{batch}, ...] (batch first), got [{string.Join(", ", s.Shape)}]", nameof(specs));
            if (!states.TryAdd(s.Name, torch.zeros(s.Shape, dtype: s.DType, device: device).DetachFromDisposeScope()))
                throw new ArgumentException($"state '{s.Name}' is declared twice", nameof(specs));
        }
    }

    /// <summary>The declared states.</summary>
    public IReadOnlyList<MixStateSpec> Specs => specs;

    /// <summary>The current value of state <paramref name="name"/>, owned by the slot (read it, do not keep it across steps).</summary>
    /// <param name="name">The state's .mix name.</param>
    public Tensor Get(string name) => captureStates is not null && pending.TryGetValue(name, out var p) ? p
        : states.TryGetValue(name, out var t) ? t
        : throw new ArgumentException($"layer {LayerIndex} has no state '{name}'; its states are {string.Join(", ", specs.Select(s => s.Name))}", nameof(name));

    /// <summary>Stores a new value of state <paramref name="name"/> (copied, converted to the declared dtype).</summary>
    /// <param name="name">The state's .mix name.</param>
    /// <param name="value">A tensor of the declared shape.</param>
    public void Set(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var old = Get(name);
        if (!value.shape.SequenceEqual(old.shape))
            throw new ArgumentException($"state '{name}' of layer {LayerIndex} is [{string.Join(", ", old.shape)}], got [{string.Join(", ", value.shape)}]", nameof(value));
        using var noGrad = torch.no_grad();
        if (ReferenceEquals(value, old)) return;
        if (captureStates is not null)
        {
            if (pending.Remove(name, out var earlier)) earlier.Dispose();
            pending[name] = value.alias().DetachFromDisposeScope();
            return;
        }
        var next = torch.empty_like(old);
        next.copy_(value);
        // Outside a step nothing can roll back: the old tensor goes at once. The forward may still hold it (it read the
        // state), so it is never overwritten in place.
        Retire(old);
        states[name] = next.DetachFromDisposeScope();
    }

    /// <summary>
    /// The buffer a fused step writes state <paramref name="name"/>'s next value into (same shape and dtype), kept by
    /// the slot; <see cref="Swap"/> then makes it the state. The state itself is never written in place, so a step that
    /// fails or is rolled back leaves it as it was.
    /// </summary>
    /// <param name="name">The state's .mix name.</param>
    internal Tensor Spare(string name)
    {
        if (spares.TryGetValue(name, out var t)) return t;
        var held = Get(name);
        t = torch.empty_like(held).DetachFromDisposeScope();
        spares[name] = t;
        return t;
    }

    /// <summary>Makes the spare buffer of <paramref name="name"/> (written by a fused step) the state; the old state
    /// becomes the spare (inside a step, a rollback swaps them back).</summary>
    /// <param name="name">The state's .mix name.</param>
    internal void Swap(string name)
    {
        var spare = spares[name];
        spares[name] = states[name];
        states[name] = spare;
    }

    /// <summary>A work buffer of a fused step, allocated once per slot and reused (its contents do not persist).</summary>
    /// <param name="name">The buffer's name.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="dtype">Its dtype.</param>
    /// <param name="device">Its device.</param>
    internal Tensor Workspace(string name, long[] shape, ScalarType dtype, Device device)
    {
        if (workspaces.TryGetValue(name, out var t) && t.dtype == dtype && t.device_type == device.type && t.device_index == device.index && t.shape.SequenceEqual(shape)) return t;
        t?.Dispose();
        t = torch.empty(shape, dtype: dtype, device: device).DetachFromDisposeScope();
        workspaces[name] = t;
        return t;
    }

    /// <summary>
    /// Starts recording a step into a graph: until <see cref="EndCapture"/>, <see cref="Set"/> keeps the written value
    /// instead of replacing the state, so that the recorded step reads and writes the same buffers on every replay.
    /// </summary>
    internal void BeginCapture()
    {
        if (captureStates is not null) throw new InvalidOperationException($"layer {LayerIndex} is already being recorded");
        captureStates = new Dictionary<string, Tensor>(states, StringComparer.Ordinal);
    }

    /// <summary>
    /// Ends a recording. When <paramref name="commit"/>, queues (on the recording stream) the copy of every state the
    /// step changed back into the buffer it read, so the recorded step ends with the states where it found them; either
    /// way the slot holds the same tensors as before <see cref="BeginCapture"/> (a fused step's swap is undone, a spare
    /// it created is kept).
    /// </summary>
    /// <param name="commit">Whether the recording succeeded (false: only restore).</param>
    internal void EndCapture(bool commit)
    {
        if (captureStates is null) return;
        using var noGrad = torch.no_grad();
        try
        {
            foreach (var (name, before) in captureStates)
            {
                var now = pending.TryGetValue(name, out var p) ? p : states[name];
                if (commit && !ReferenceEquals(now, before)) before.copy_(now);
                if (!ReferenceEquals(states[name], before))
                {
                    if (spares.TryGetValue(name, out var spare) && ReferenceEquals(spare, before)) spares[name] = states[name];
                    states[name] = before;
                }
            }
        }
        finally
        {
            foreach (var p in pending.Values) p.Dispose();
            pending.Clear();
            captureStates = null;
        }
    }

    /// <summary>
    /// Makes <paramref name="buffer"/> (same shape and dtype) hold state <paramref name="name"/>: the current value is
    /// copied into it unless it already is the state's storage, and the slot keeps an alias of it from now on (what a
    /// recorded step needs after an eager step replaced the state tensor).
    /// </summary>
    /// <param name="name">The state's .mix name.</param>
    /// <param name="buffer">A buffer owned by the caller.</param>
    internal void Adopt(string name, Tensor buffer)
    {
        var held = Get(name);
        if (Cuda.TensorPointers.Address(held) == Cuda.TensorPointers.Address(buffer)) return;
        using var noGrad = torch.no_grad();
        buffer.copy_(held);
        Retire(held);
        states[name] = buffer.alias().DetachFromDisposeScope();
    }

    /// <summary>Records that the mixer processed <paramref name="n"/> positions (called once per cached forward).</summary>
    /// <param name="mask">Optional <c>[batch, n]</c> mask.</param>
    /// <param name="n">Positions.</param>
    internal void Processed(Tensor? mask, long n) => Advance(mask, n);

    /// <inheritdoc/>
    public override double BytesPerToken => 0;

    /// <inheritdoc/>
    public override long FixedBytesPerRow => specs.Sum(s => s.Shape.Skip(1).Aggregate(1L, (a, b) => a * b) * ElementBytes(s.DType));

    /// <inheritdoc/>
    /// <remarks>Includes the second buffers and work buffers of fused steps once they exist.</remarks>
    public override long AllocatedBytes =>
        states.Values.Concat(spares.Values).Concat(workspaces.Values).Sum(t => t.numel() * ElementBytes(t.dtype));

    /// <inheritdoc/>
    protected override void OnBeginStep() => stepStates = new Dictionary<string, Tensor>(states, StringComparer.Ordinal);

    /// <inheritdoc/>
    protected override void OnCommitStep() => stepStates = null;

    /// <inheritdoc/>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        if (stepStates is null) return;
        foreach (var (name, before) in stepStates)
        {
            var now = states[name];
            if (!ReferenceEquals(now, before))
            {
                // a fused step swapped its buffers: swap back (the spare keeps its buffer); a replaced one goes
                if (spares.TryGetValue(name, out var spare) && ReferenceEquals(spare, before)) spares[name] = now;
                else now.Dispose();
            }
            states[name] = before;
            live.Add(before);
        }
        stepStates = null;
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        foreach (var t in states.Values) t.zero_();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        foreach (var t in states.Values) t.Dispose();
        foreach (var t in spares.Values) t.Dispose();
        foreach (var t in workspaces.Values) t.Dispose();
        states.Clear();
        spares.Clear();
        workspaces.Clear();
    }
}
