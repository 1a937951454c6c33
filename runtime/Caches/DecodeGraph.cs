using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>What a cache's decoding graph is doing (<see cref="CausalModel.DecodeGraphReport"/>).</summary>
/// <param name="Ready">A step is recorded and replays.</param>
/// <param name="Nodes">Graph nodes of the recorded step (0 before it is recorded).</param>
/// <param name="Segments">Recorded segments: one, plus one after each layer left out of the graph (a quantized or
/// windowed KV cache, the built-in Mamba).</param>
/// <param name="Replays">Steps served by replays.</param>
/// <param name="Failure">Why this cache decodes eagerly (null while it does not).</param>
/// <param name="Recordings">Recordings made: one, plus one each time a recorded KV cache outgrew its buffers.</param>
public sealed record DecodeGraphReport(bool Ready, int Nodes, int Segments, long Replays, string? Failure, int Recordings);

/// <summary>
/// One recorded one-token decoding step of a <see cref="CausalModel"/> for one cache (and one mask mode): the step's
/// thousands of small kernels replayed with one launch. The first eligible step runs eagerly on the graph's stream (the
/// warm-up), the second is recorded and replayed, every later one copies its ids (and mask) into the recorded inputs,
/// replays and copies the logits out. The recorded step reads and writes state buffers the graph owns: before a
/// replay, a state an eager step replaced (a prefill) is copied into them. Layers whose cache grows every step
/// (attention) are left out of the graph: the recording stops before each, runs it eagerly and goes on
/// (<see cref="Defer"/>), so a replay is a few graph launches with those layers between them.
/// </summary>
internal sealed class DecodeGraph : IDisposable
{
    private IStepRecorder graph;
    private readonly InferenceCache cache;
    // the addresses the recorded KV slots' tensors had at the recording (a replay needs them unchanged)
    private IntPtr[] recordedAddresses = Array.Empty<IntPtr>();
    private readonly Tensor ids;
    private readonly Tensor? mask;
    private readonly (StateCacheSlot slot, string name, Tensor buffer)[] states;
    private Tensor? logits;
    private int eagerSteps;
    // The model's parameters and buffers as recorded: a replay reads them by address, so they are kept alive even if
    // the model replaces them (module.to, a checkpoint assigned rather than copied): stale then, never freed memory.
    private Tensor[] weights = Array.Empty<Tensor>();

    private DecodeGraph(InferenceCache cache, IStepRecorder graph, Tensor ids, Tensor? mask, (StateCacheSlot, string, Tensor)[] states)
    {
        this.cache = cache;
        this.graph = graph;
        this.ids = ids;
        this.mask = mask;
        this.states = states;
    }

    public string? Failure { get; private set; }
    public long Replays { get; private set; }
    public bool Ready => graph.IsReady && Failure is null;
    /// <summary>Recordings made (more than one when a KV slot's buffers grew past what an earlier one read).</summary>
    public int Recordings { get; private set; }
    public int Nodes => graph.Nodes;
    public int Segments => graph.Segments;

    /// <summary>A graph for <paramref name="cache"/>'s one-token steps, or null with the reason.</summary>
    public static DecodeGraph? TryCreate(InferenceCache cache, Tensor inputIds, Tensor? attentionMask, out string? error)
    {
        var device = cache.Device ?? torch.CPU;
        var g = StepRecorders.TryCreate(device, out error);
        if (g is null) return null;
        var owned = new List<(StateCacheSlot, string, Tensor)>();
        foreach (var slot in cache.Slots.OfType<StateCacheSlot>())
            foreach (var spec in slot.Specs)
                owned.Add((slot, spec.Name, torch.empty_like(slot.Get(spec.Name)).DetachFromDisposeScope()));
        var staticIds = torch.empty(inputIds.shape, dtype: inputIds.dtype, device: device).DetachFromDisposeScope();
        var staticMask = attentionMask is null ? null
            : torch.empty(attentionMask.shape, dtype: attentionMask.dtype, device: device).DetachFromDisposeScope();
        return new DecodeGraph(cache, g, staticIds, staticMask, owned.ToArray());
    }

    /// <summary>
    /// While a step is being recorded: leaves <paramref name="compute"/> out of the graph (a layer whose cache grows
    /// every step: attention's KV slot, the built-in Mamba's slot) and returns a buffer of its result's shape, which every
    /// replay fills by running <paramref name="compute"/> eagerly on the recorded <paramref name="inputs"/> between the
    /// segment before and the one after (<see cref="CapturedGraph.Gap"/>). Only while recording
    /// (<see cref="CapturedGraph.IsRecording"/>: callers test it first, so an eager step builds none of this).
    /// </summary>
    /// <param name="inputs">What the computation reads that the recorded step wrote (kept alive by the gap).</param>
    /// <param name="compute">The layer's eager work on those inputs.</param>
    /// <param name="shape">Its result's shape.</param>
    /// <param name="dtype">Its result's dtype.</param>
    public static Tensor Defer(Tensor[] inputs, Func<Tensor[], Tensor> compute, long[] shape, ScalarType dtype)
    {
        if (!CapturedGraph.IsRecording) throw new InvalidOperationException("DecodeGraph.Defer outside a recording");
        var held = inputs.Select(t => t.alias().DetachFromDisposeScope()).ToArray();
        var result = torch.empty(shape, dtype: dtype, device: inputs[0].device).DetachFromDisposeScope();
        CapturedGraph.Gap(() =>
        {
            using var scope = torch.NewDisposeScope();
            var r = compute(held);
            if (!r.shape.SequenceEqual(result.shape) || r.dtype != result.dtype)
                throw new InvalidOperationException(
                    $"a layer left out of the decoding graph returned [{string.Join(", ", r.shape)}] {r.dtype}, the graph expected [{string.Join(", ", result.shape)}] {result.dtype}");
            result.copy_(r);
        });
        // the caller's scope may free what it gets: the gap keeps writing `result`
        return result.alias();
    }

    /// <summary>Whether a step with these inputs can use this graph (same shapes and dtypes, same mask mode).</summary>
    public bool Serves(Tensor inputIds, Tensor? attentionMask) =>
        inputIds.dtype == ids.dtype && inputIds.shape.SequenceEqual(ids.shape)
        && (attentionMask is null) == (mask is null)
        && (attentionMask is null || attentionMask.shape.SequenceEqual(mask!.shape));

    /// <summary>
    /// Runs one step through the graph: the warm-up, the recording or a replay. Returns the logits, or null when the
    /// recording failed just now (<see cref="Failure"/> says why; nothing ran, the slots are as they were, and the
    /// caller runs the step eagerly).
    /// </summary>
    /// <param name="run">The model's forward of the given ids (inside the scope <paramref name="scope"/> opens).</param>
    /// <param name="scope">Opens the cache's scope with the given mask (the graph's mask buffer, or null).</param>
    /// <param name="inputIds">Token ids <c>[batch, 1]</c> (any device: copied into the recorded ids).</param>
    /// <param name="attentionMask">Optional mask (any device: copied into the recorded mask).</param>
    /// <param name="model">The model (its parameters and buffers are kept alive while the graph exists).</param>
    public Tensor? Step(Func<Tensor, Tensor> run, Func<Tensor?, IDisposable> scope, Tensor inputIds, Tensor? attentionMask, nn.Module model)
    {
        using var noGrad = torch.no_grad();
        ids.copy_(inputIds);
        if (mask is not null) mask.copy_(attentionMask!);
        foreach (var (slot, name, buffer) in states) slot.Adopt(name, buffer);
        using var inScope = scope(mask);
        // KV slots recorded into the graph: room for this token and its position on the device; a grown buffer means
        // a new recording (warm-up first, as for the first one)
        var kvSlots = cache.Slots.Where(s => s.RecordsSteps).ToArray();
        foreach (var s in kvSlots) s.PrepareRecordedStep();
        if (graph.IsReady && !kvSlots.SelectMany(s => s.RecordedAddresses()).SequenceEqual(recordedAddresses))
        {
            var device = cache.Device ?? torch.CPU;
            graph.Dispose();
            graph = StepRecorders.TryCreate(device, out var error) ?? throw new InvalidOperationException($"a decoding graph could not be made again: {error}");
            eagerSteps = 0;
        }
        if (eagerSteps == 0)
        {
            // The warm-up: the real step, run on the graph's stream so that it meets whatever is lazily made there.
            Tensor? warm = null;
            graph.RunEager(() => warm = run(ids));
            eagerSteps++;
            // an eager step may replace states (Set): back into the owned buffers now, so the recording reads them
            foreach (var (slot, name, buffer) in states) slot.Adopt(name, buffer);
            return warm;
        }
        if (!graph.IsReady)
        {
            var slots = states.Select(s => s.slot).Distinct().ToArray();
            bool ok = false;
            try
            {
                // everything the step does on the host while recorded happens inside the body: a recording runs it
                // once, an emulated one at every replay
                ok = graph.TryCapture(() =>
                {
                    foreach (var s in slots) s.BeginCapture();
                    var recorded = run(ids);
                    foreach (var s in slots) s.EndCapture(commit: true);
                    logits?.Dispose();
                    logits = recorded.DetachFromDisposeScope();
                }, out var error);
                if (!ok) Failure = error;
            }
            finally
            {
                foreach (var s in slots) s.EndCapture(commit: false);
            }
            if (!ok)
            {
                logits?.Dispose();
                logits = null;
                return null;
            }
            weights = model.parameters().Cast<Tensor>().Concat(model.buffers()).ToArray();
            recordedAddresses = kvSlots.SelectMany(s => s.RecordedAddresses()).ToArray();
            Recordings++;
        }
        // the layers left out of the recording run inside the scope, on the step's mask
        try
        {
            graph.Replay();
        }
        catch (Exception e)
        {
            // a layer left out of the graph threw between two segments: the recorded layers before it have written
            // their states in place (no rollback for them); this cache decodes eagerly from now on
            Failure = $"a replay failed: {e.Message}";
            throw;
        }
        Replays++;
        foreach (var s in kvSlots) s.RecordedStepDone(attentionMask);
        return logits!.clone();
    }

    public void Dispose()
    {
        graph.Dispose();
        ids.Dispose();
        mask?.Dispose();
        logits?.Dispose();
        foreach (var (_, _, buffer) in states) buffer.Dispose();
    }
}
