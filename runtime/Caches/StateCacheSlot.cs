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
    public Tensor Get(string name) => states.TryGetValue(name, out var t) ? t
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
        var next = torch.empty_like(old);
        next.copy_(value);
        // Outside a step nothing can roll back: the old tensor goes at once. The forward may still hold it (it read the
        // state), so it is never overwritten in place.
        Retire(old);
        states[name] = next.DetachFromDisposeScope();
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
    public override long AllocatedBytes => states.Values.Sum(t => t.numel() * ElementBytes(t.dtype));

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
            if (!ReferenceEquals(states[name], before)) states[name].Dispose();
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
        states.Clear();
    }
}
