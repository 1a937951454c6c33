using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using Mix.Runtime.Builtins;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// Prefill + decode for any module built from .mix (or by hand) whose causal mixers are <see cref="MambaMixer"/>s,
/// causal <see cref="Attention"/>s and generated mixers that declare decoding state (<see cref="IStatefulMixer"/>, any mix
/// of them): the cache gets one slot per such mixer, in the order the model registers
/// them, and while a <see cref="Forward"/> runs, the mixer call sites of generated code
/// (<see cref="Builtins.MixDispatch.TokenMixer"/>) feed each mixer its slot. Nothing is threaded through the
/// blocks, so every generated causal model decodes, chunk by chunk or token by token, with no generated code of its own.
/// </summary>
public sealed class CausalModel : ICausalLM
{
    private static readonly ConditionalWeakTable<InferenceCache, Dictionary<nn.Module, int>> s_layouts = new();
    private readonly nn.Module<Tensor, Tensor> model;
    private readonly nn.Module[] mixers;

    /// <summary>Wraps <paramref name="model"/>, whose output is logits <c>[batch, n, vocabSize]</c>.</summary>
    /// <param name="model">The model (input: token ids <c>[batch, n]</c>).</param>
    /// <param name="vocabSize">Size of the last axis of the logits.</param>
    public CausalModel(nn.Module<Tensor, Tensor> model, long vocabSize)
    {
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        VocabSize = vocabSize;
        mixers = model.modules().Where(IsCausalMixer).ToArray();
        if (mixers.Length == 0)
            throw new ArgumentException("the model has no causal mixer (mamba, attention with causal = true, or a .mix mixer that declares state) to cache", nameof(model));
        // Ids index the first embedding table the model registers (the token embedding of every generated LM).
        var embedding = model.named_modules().FirstOrDefault(m => m.module is TorchSharp.Modules.Embedding);
        embeddingName = embedding.module is null ? "the model" : embedding.name;
        embeddingRows = embedding.module is TorchSharp.Modules.Embedding e ? e.weight!.shape[0] : vocabSize;
    }

    private readonly string embeddingName;
    private readonly long embeddingRows;

    /// <summary>The wrapped model.</summary>
    public nn.Module<Tensor, Tensor> Model => model;

    /// <inheritdoc />
    public long VocabSize { get; }

    /// <summary>Number of cached layers (causal mixers).</summary>
    public int CachedLayers => mixers.Length;

    /// <summary>
    /// Whether one-token steps on CUDA (without gradients) run as a recorded graph: the whole step, every layer's
    /// kernels, replayed with one launch, as PyTorch's CUDA graphs (<c>torch.compile(mode="reduce-overhead")</c>) do.
    /// Off by default. Declared states and full-precision KV caches without a sliding window are recorded (the KV step
    /// attends over the buffer's whole capacity, masked past the stored entries, and writes at a position the host sets
    /// before each replay; a buffer that grows makes a new recording); quantized or windowed KV caches and the built-in
    /// <see cref="MambaMixer"/> are left out: the step is recorded in segments with those layers run eagerly between them
    /// (piecewise, as vLLM's CUDA graphs). Per cache and mask mode,
    /// the first such step runs eagerly on the graph's stream, the second is recorded, later ones replay. A step that
    /// cannot be recorded (it reads a value on the host, copies from host memory, ...) makes that cache decode eagerly,
    /// with one warning. Replaced parameters (a checkpoint loaded by assigning new tensors rather than copying) need
    /// <see cref="ReleaseDecodeGraphs"/>; states replaced by an eager step (a prefill) are copied back in automatically.
    /// </summary>
    public bool CudaGraphs { get; set; }

    /// <summary>The decoding graphs of <paramref name="cache"/> (one per mask mode), or empty when none was made.</summary>
    /// <param name="cache">A cache of this model.</param>
    public IReadOnlyList<DecodeGraphReport> DecodeGraphReport(InferenceCache cache) =>
        cache?.DecodeGraphs is { } graphs
            ? graphs.Select(g => new DecodeGraphReport(g.Ready, g.Nodes, g.Segments, g.Replays, g.Failure, g.Recordings)).ToList()
            : Array.Empty<DecodeGraphReport>();

    /// <summary>Frees <paramref name="cache"/>'s decoding graphs; the next steps record new ones.</summary>
    /// <param name="cache">A cache of this model.</param>
    public void ReleaseDecodeGraphs(InferenceCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        cache.ReleaseDecodeGraphs();
    }

    private Tensor? GraphStep(InferenceCache cache, Dictionary<nn.Module, int> layout, Tensor ids, Tensor? attentionMask)
    {
        var graphs = cache.DecodeGraphs ??= new List<DecodeGraph>();
        var graph = graphs.FirstOrDefault(g => g.Serves(ids, attentionMask));
        if (graph is null)
        {
            if (cache.DecodeGraphRefused is not null) return null;
            graph = DecodeGraph.TryCreate(cache, ids, attentionMask, out var error);
            if (graph is null)
            {
                cache.DecodeGraphRefused = error;
                Cuda.KernelLog.WarnOnce("decode_graph:" + error, $"Mix.Runtime: decoding without a CUDA graph: {error}.");
                return null;
            }
            graphs.Add(graph);
        }
        if (graph.Failure is not null) return null;
        // The recorded step reads the graph's own mask buffer; its row counts are the step's mask's (on the host when
        // the caller's mask is: no device read per layer).
        var logits = graph.Step(i => model.call(i), m => CacheScope.Enter(cache, layout, m, countsFrom: attentionMask),
            ids, attentionMask, model);
        if (logits is null)
            Cuda.KernelLog.WarnOnce("decode_graph_capture:" + model.GetType().FullName,
                $"Mix.Runtime: the decoding step of {model.GetType().Name} could not be recorded as a CUDA graph ({graph.Failure}); this cache decodes eagerly.");
        return logits;
    }

    private static bool IsCausalMixer(nn.Module m) =>
        m is MambaMixer || m is Attention { Causal: true } || m is IStatefulMixer s && (s.HasKeyValues || s.States(1).Count > 0);

    /// <inheritdoc />
    public InferenceCache CreateCache(long batch, KvCacheOptions? kvOptions = null)
    {
        var first = model.parameters().FirstOrDefault();
        var dtype = first?.dtype ?? ScalarType.Float32;
        var device = first?.device ?? torch.CPU;
        var slots = new List<CacheSlot>();
        var layout = new Dictionary<nn.Module, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < mixers.Length; i++)
        {
            layout[mixers[i]] = i;
            slots.Add(mixers[i] switch
            {
                MambaMixer m => new MambaCacheSlot(i, batch, m.IntermediateSize, m.ConvKernel, m.StateSize, dtype, device),
                Attention a => CachedAttention.CreateSlot(i, batch, a.NumHeads, a.HeadDim, kvOptions, dtype, device),
                IStatefulMixer { HasKeyValues: true } kv when kv.States(batch).Count == 0 => new MixKvCacheSlot(i, batch, kvOptions, dtype, device),
                IStatefulMixer { HasKeyValues: true } => throw new NotSupportedException(
                    $"{mixers[i].GetType().Name} declares state(...) and calls causal_attention; a .mix mixer may do one or the other for now"),
                IStatefulMixer st => new StateCacheSlot(i, batch, st.States(batch), device),
                _ => throw new InvalidOperationException("unreachable"),
            });
        }
        var cache = new InferenceCache(slots) { Device = device };
        s_layouts.Add(cache, layout);
        return cache;
    }

    /// <inheritdoc />
    /// <remarks>The step is checked first (ids within the model's first embedding table, batch, mask shape, room in
    /// fixed-capacity KV slots: see <see cref="InferenceCache.CheckStep(Tensor, Tensor?, long, string)"/>) and runs as
    /// one <see cref="InferenceCache.BeginStep"/>: a refused or failed step (the model's own code throwing after some
    /// mixers ran included) leaves every slot as it was.</remarks>
    public Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (!s_layouts.TryGetValue(cache, out var layout))
            throw new ArgumentException("this cache was not created by this model's CreateCache", nameof(cache));
        var ids = cache.CheckStepIds(inputIds, attentionMask, embeddingRows, embeddingName);
        using var clamped = ReferenceEquals(ids, inputIds) ? null : ids;
        using var step = cache.BeginStep();
        Tensor? logits = null;
        using (CacheScope.Enter(cache, layout, attentionMask))
        {
            if (CudaGraphs && ids.shape[1] == 1 && cache.Device is { } device && Cuda.StepRecorders.Applies(device))
            {
                if (!torch.is_grad_enabled()) logits = GraphStep(cache, layout, ids, attentionMask);
                else Cuda.KernelLog.WarnOnce("decode_graph_grad", "Mix.Runtime: CudaGraphs decodes eagerly while gradients are on: decode inside torch.no_grad() (TextGenerator does).");
            }
            logits ??= model.call(ids);
            // A .mix mixer's slot only holds tensors; its token counts advance here, once per step (the mask's row
            // counts read once for every slot: CacheScope.RowCounts).
            foreach (var slot in cache.Slots.OfType<StateCacheSlot>()) slot.Processed(attentionMask, inputIds.shape[1]);
        }
        step.Commit();
        return logits;
    }
}

/// <summary>The cache in effect while a <see cref="CausalModel"/> runs (per thread).</summary>
internal sealed class CacheScope : IDisposable
{
    [ThreadStatic] private static CacheScope? s_current;
    private readonly CacheScope? previous;

    private readonly Tensor? countsFrom;
    private long[]? rowCounts;

    private CacheScope(InferenceCache cache, Dictionary<nn.Module, int> layout, Tensor? mask, Tensor? countsFrom)
    {
        Cache = cache;
        Layout = layout;
        Mask = mask;
        this.countsFrom = countsFrom ?? mask;
        previous = s_current;
        s_current = this;
    }

    public static CacheScope? Current => s_current;
    public InferenceCache Cache { get; }
    public Dictionary<nn.Module, int> Layout { get; }
    public Tensor? Mask { get; }

    public static CacheScope Enter(InferenceCache cache, Dictionary<nn.Module, int> layout, Tensor? mask, Tensor? countsFrom = null) =>
        new(cache, layout, mask, countsFrom);

    /// <summary>Valid tokens per row of <paramref name="mask"/> when it is this step's mask (read once a step, from
    /// <c>countsFrom</c> when given: the same values, possibly on the host); null for another mask.</summary>
    public long[]? RowCounts(Tensor mask)
    {
        if (!ReferenceEquals(mask, Mask) && !ReferenceEquals(mask, countsFrom)) return null;
        return rowCounts ??= CacheSlot.CountRows(countsFrom!);
    }

    /// <summary>The cached forward of <paramref name="mixer"/>, or null when it has no slot here.</summary>
    public Tensor? TryForward(nn.Module<Tensor, Tensor> mixer, Tensor x)
    {
        if (!Layout.TryGetValue(mixer, out var layer)) return null;
        // While a decoding step is recorded into a CUDA graph, a slot whose step cannot be recorded (the built-in
        // Mamba's, a quantized or windowed KV cache) is left out of it: the layer runs between recorded segments.
        bool leftOut = Cuda.CapturedGraph.IsRecording;
        var mask = Mask;
        return mixer switch
        {
            MambaMixer m when leftOut => DecodeGraph.Defer(new[] { x }, i => m.Forward(i[0], Cache.Slot<MambaCacheSlot>(layer), mask), x.shape, x.dtype),
            MambaMixer m => m.Forward(x, Cache.Slot<MambaCacheSlot>(layer), mask),
            Attention a when leftOut && !Cache.Slot<AttentionCacheSlot>(layer).RecordsSteps =>
                DecodeGraph.Defer(new[] { x }, i => a.Forward(i[0], Cache.Slot<AttentionCacheSlot>(layer), mask), x.shape, x.dtype),
            Attention a => a.Forward(x, Cache.Slot<AttentionCacheSlot>(layer), mask),
            // Its forward is its step: it reads and writes its slot through MixState (never the fused whole-mixer path).
            IStatefulMixer => mixer.call(x),
            _ => null,
        };
    }

    /// <summary>The state slot of <paramref name="mixer"/> in this cache, or null when it has none.</summary>
    public StateCacheSlot? StateSlot(nn.Module mixer) =>
        Layout.TryGetValue(mixer, out var layer) ? Cache.Slot<StateCacheSlot>(layer) : null;

    /// <summary>The KV slot of a .mix <paramref name="mixer"/> calling causal_attention, or null when it has none.</summary>
    public MixKvCacheSlot? KvSlot(nn.Module mixer) =>
        Layout.TryGetValue(mixer, out var layer) ? Cache.Slot<MixKvCacheSlot>(layer) : null;

    public void Dispose() => s_current = previous;
}
