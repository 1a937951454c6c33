using System;
using System.Linq;
using Mix.Runtime;
using Mix.Runtime.Caches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

// Test models (whole models live in the zoo, models/): the reference transformer and hybrid LMs of the cache,
// generation and quantization tests, written against the runtime's cache API directly.
namespace Mix.Runtime.Tests;

/// <summary>
/// Pre-norm transformer block: <c>x + attn(norm(x))</c>, then <c>x + down(gelu(up(norm(x))))</c>
/// (keys <c>attn_norm.weight</c>, <c>attn.*</c>, <c>mlp_norm.weight</c>, <c>up_proj.weight</c>, <c>down_proj.weight</c>).
/// </summary>
public sealed class TransformerBlock : nn.Module<Tensor, Tensor>
{
    private readonly RMSNorm attn_norm;
    private readonly CausalSelfAttention attn;
    private readonly RMSNorm mlp_norm;
    private readonly nn.Module<Tensor, Tensor> up_proj;
    private readonly nn.Module<Tensor, Tensor> down_proj;

    /// <summary>Creates the block.</summary>
    /// <param name="dim">Model width.</param>
    /// <param name="numHeads">Heads.</param>
    /// <param name="mlpHidden">MLP hidden width.</param>
    /// <param name="ropeTheta">RoPE base (≤ 0: none).</param>
    public TransformerBlock(long dim, long numHeads, long mlpHidden, double ropeTheta = 10000.0) : base(nameof(TransformerBlock))
    {
        attn_norm = new RMSNorm((int)dim, 1e-5);
        attn = new CausalSelfAttention(dim, numHeads, ropeTheta);
        mlp_norm = new RMSNorm((int)dim, 1e-5);
        up_proj = nn.Linear(dim, mlpHidden, hasBias: false);
        down_proj = nn.Linear(mlpHidden, dim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The attention mixer.</summary>
    public CausalSelfAttention Attn => attn;

    /// <summary>The pre-attention norm.</summary>
    public RMSNorm AttnNorm => attn_norm;

    /// <summary>The pre-MLP norm.</summary>
    public RMSNorm MlpNorm => mlp_norm;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return Mlp(x + attn.forward(attn_norm.forward(x))).MoveToOuterDisposeScope();
    }

    /// <summary>Block with explicit positions and mask (reference path).</summary>
    /// <param name="x"><c>[batch, L, dim]</c>.</param>
    /// <param name="positions">Row positions <c>[batch, L]</c>.</param>
    /// <param name="allowed">Boolean mask <c>[batch or 1, 1, L, L]</c>.</param>
    public Tensor ForwardMasked(Tensor x, Tensor positions, Tensor allowed)
    {
        using var scope = torch.NewDisposeScope();
        return Mlp(x + attn.ForwardMasked(attn_norm.forward(x), positions, allowed)).MoveToOuterDisposeScope();
    }

    /// <summary>Cache-aware forward of <c>n</c> new tokens.</summary>
    /// <param name="x"><c>[batch, n, dim]</c>.</param>
    /// <param name="slot">KV slot of this layer.</param>
    /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask.</param>
    public Tensor Forward(Tensor x, AttentionCacheSlot slot, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        return Mlp(x + attn.Forward(attn_norm.forward(x), slot, attentionMask)).MoveToOuterDisposeScope();
    }

    private Tensor Mlp(Tensor x) => x + down_proj.forward(nn.functional.gelu(up_proj.forward(mlp_norm.forward(x))));
}

/// <summary>
/// A small decoder-only transformer LM (embedding, <see cref="TransformerBlock"/>s with RoPE attention, RMSNorm, untied
/// <c>lm_head</c>): the reference attention model for caches, generation and quantization.
/// Shape contract: ids <c>[batch, L]</c> → logits <c>[batch, L, vocab]</c> (float32).
/// </summary>
public sealed class CausalAttentionLM : nn.Module<Tensor, Tensor>, ICausalLM
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<TransformerBlock> layers;
    private readonly RMSNorm norm;
    private readonly nn.Module<Tensor, Tensor> lm_head;

    /// <summary>Creates the model (weights ~ N(0, 0.02), embeddings N(0, 1)).</summary>
    /// <param name="vocabSize">Vocabulary.</param>
    /// <param name="dim">Width.</param>
    /// <param name="numLayers">Blocks.</param>
    /// <param name="numHeads">Heads.</param>
    /// <param name="mlpHidden">MLP width (4·dim when ≤ 0).</param>
    /// <param name="ropeTheta">RoPE base.</param>
    public CausalAttentionLM(long vocabSize, long dim, int numLayers, long numHeads, long mlpHidden = 0, double ropeTheta = 10000.0)
        : base(nameof(CausalAttentionLM))
    {
        VocabSize = vocabSize;
        Dim = dim;
        NumHeads = numHeads;
        embed_tokens = nn.Embedding(vocabSize, dim);
        layers = new ModuleList<TransformerBlock>(Enumerable.Range(0, numLayers)
            .Select(_ => new TransformerBlock(dim, numHeads, mlpHidden > 0 ? mlpHidden : 4 * dim, ropeTheta)).ToArray());
        norm = new RMSNorm((int)dim, 1e-5);
        lm_head = nn.Linear(dim, vocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public long VocabSize { get; }

    /// <summary>Width.</summary>
    public long Dim { get; }

    /// <summary>Heads.</summary>
    public long NumHeads { get; }

    /// <summary>The blocks.</summary>
    public ModuleList<TransformerBlock> Layers => layers;

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputIds)
    {
        TokenIds.CheckBatch(inputIds, VocabSize, "embed_tokens");
        using var scope = torch.NewDisposeScope();
        var h = embed_tokens.forward(inputIds);
        foreach (var layer in layers) h = layer.call(h); // call: hooks (AWQ block capture) see every block
        return lm_head.forward(norm.forward(h)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Logits with explicit positions and mask for every block (reference for windows and padding).</summary>
    /// <param name="inputIds">Ids <c>[batch, L]</c>.</param>
    /// <param name="positions">Row positions <c>[batch, L]</c>.</param>
    /// <param name="allowed">Boolean mask <c>[batch or 1, 1, L, L]</c>.</param>
    public Tensor ForwardMasked(Tensor inputIds, Tensor positions, Tensor allowed)
    {
        TokenIds.CheckBatch(inputIds, VocabSize, "embed_tokens");
        using var scope = torch.NewDisposeScope();
        var h = embed_tokens.forward(inputIds);
        foreach (var layer in layers) h = layer.ForwardMasked(h, positions, allowed);
        return lm_head.forward(norm.forward(h)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public InferenceCache CreateCache(long batch, KvCacheOptions? kvOptions = null)
    {
        var w = embed_tokens.weight!;
        return new InferenceCache(Enumerable.Range(0, layers.Count).Select(i =>
            (CacheSlot)CachedAttention.CreateSlot(i, batch, NumHeads, Dim / NumHeads, kvOptions, w.dtype, w.device)));
    }

    /// <inheritdoc/>
    /// <remarks>The step is checked first (token ids, batch, mask shape, each slot's kind and room: see
    /// <see cref="InferenceCache.CheckStep(Tensor, Tensor?, long, string)"/>) and runs as one
    /// <see cref="InferenceCache.BeginStep"/>: a refused or failed step leaves every slot as it was.</remarks>
    public Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        CacheLayout.Check(cache, layers.Count, _ => typeof(AttentionCacheSlot));
        cache.CheckStep(inputIds, attentionMask, VocabSize, "embed_tokens");
        using var step = cache.BeginStep();
        using var scope = torch.NewDisposeScope();
        var h = embed_tokens.forward(inputIds);
        for (int i = 0; i < layers.Count; i++) h = layers[i].Forward(h, cache.Slot<AttentionCacheSlot>(i), attentionMask);
        var logits = lm_head.forward(norm.forward(h)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
        step.Commit();
        return logits;
    }
}

/// <summary>
/// A hybrid LM mixing <see cref="MambaBlock"/>s and <see cref="TransformerBlock"/>s (Jamba/Zamba style) by a pattern
/// string: <c>'M'</c> = Mamba block, <c>'A'</c> = attention block (e.g. <c>"MMAM"</c>). The cache holds a
/// <see cref="MambaCacheSlot"/> or a KV slot per layer accordingly.
/// </summary>
public sealed class HybridLM : nn.Module<Tensor, Tensor>, ICausalLM
{
    private readonly Embedding embeddings;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers;
    private readonly RMSNorm norm_f;
    private readonly nn.Module<Tensor, Tensor> lm_head;

    /// <summary>Creates the model.</summary>
    /// <param name="vocabSize">Vocabulary.</param>
    /// <param name="dim">Width.</param>
    /// <param name="pattern">Layer kinds, 'M' or 'A' per layer.</param>
    /// <param name="numHeads">Attention heads.</param>
    /// <param name="stateSize">Mamba state size.</param>
    /// <param name="convKernel">Mamba conv kernel.</param>
    public HybridLM(long vocabSize, long dim, string pattern, long numHeads = 4, long stateSize = 8, long convKernel = 4)
        : base(nameof(HybridLM))
    {
        if (string.IsNullOrEmpty(pattern) || pattern.Any(c => c != 'M' && c != 'A'))
            throw new ArgumentException("pattern must be a non-empty string of 'M' and 'A'", nameof(pattern));
        VocabSize = vocabSize;
        Dim = dim;
        NumHeads = numHeads;
        Pattern = pattern;
        embeddings = nn.Embedding(vocabSize, dim);
        layers = new ModuleList<nn.Module<Tensor, Tensor>>(pattern.Select((c, i) => c == 'M'
            ? (nn.Module<Tensor, Tensor>)new MambaBlock(dim, stateSize, convKernel, layerIdx: i)
            : new TransformerBlock(dim, numHeads, 4 * dim)).ToArray());
        norm_f = new RMSNorm((int)dim, 1e-5);
        lm_head = nn.Linear(dim, vocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public long VocabSize { get; }

    /// <summary>Width.</summary>
    public long Dim { get; }

    /// <summary>Attention heads.</summary>
    public long NumHeads { get; }

    /// <summary>Layer kinds.</summary>
    public string Pattern { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor inputIds)
    {
        TokenIds.CheckBatch(inputIds, VocabSize, "embeddings");
        using var scope = torch.NewDisposeScope();
        var h = embeddings.forward(inputIds);
        foreach (var layer in layers) h = layer.call(h); // call: hooks (AWQ block capture) see every block
        return lm_head.forward(norm_f.forward(h)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public InferenceCache CreateCache(long batch, KvCacheOptions? kvOptions = null)
    {
        var w = embeddings.weight!;
        return new InferenceCache(layers.Select((layer, i) => layer switch
        {
            MambaBlock mb => (CacheSlot)new MambaCacheSlot(i, batch, mb.Mixer.IntermediateSize, mb.Mixer.ConvKernel,
                mb.Mixer.StateSize, w.dtype, w.device),
            TransformerBlock => CachedAttention.CreateSlot(i, batch, NumHeads, Dim / NumHeads, kvOptions, w.dtype, w.device),
            _ => throw new InvalidOperationException("unknown layer"),
        }));
    }

    /// <inheritdoc/>
    /// <remarks>The step is checked first (token ids, batch, mask shape, each slot's kind and room: see
    /// <see cref="InferenceCache.CheckStep(Tensor, Tensor?, long, string)"/>) and runs as one
    /// <see cref="InferenceCache.BeginStep"/>: a refused or failed step leaves every slot as it was.</remarks>
    public Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        CacheLayout.Check(cache, layers.Count, i => Pattern[i] == 'M' ? typeof(MambaCacheSlot) : typeof(AttentionCacheSlot));
        cache.CheckStep(inputIds, attentionMask, VocabSize, "embeddings");
        using var step = cache.BeginStep();
        using var scope = torch.NewDisposeScope();
        var h = embeddings.forward(inputIds);
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i] switch
            {
                MambaBlock mb => mb.Forward(h, cache.Slot<MambaCacheSlot>(i), attentionMask),
                TransformerBlock tb => tb.Forward(h, cache.Slot<AttentionCacheSlot>(i), attentionMask),
                _ => throw new InvalidOperationException("unknown layer"),
            };
        }
        var logits = lm_head.forward(norm_f.forward(h)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
        step.Commit();
        return logits;
    }
}

/// <summary>Checks that a cache has the slots a model expects, before a step touches any of them.</summary>
internal static class CacheLayout
{
    /// <summary>Throws unless <paramref name="cache"/> has <paramref name="layers"/> slots, slot i of type
    /// <paramref name="expected"/>(i) or derived.</summary>
    public static void Check(InferenceCache cache, int layers, Func<int, Type> expected)
    {
        if (cache.Slots.Count != layers)
            throw new ArgumentException($"the cache has {cache.Slots.Count} slots, the model {layers} layers", nameof(cache));
        for (int i = 0; i < layers; i++)
        {
            var type = expected(i);
            if (!type.IsInstanceOfType(cache.Slots[i]))
                throw new ArgumentException($"layer {i} needs a {type.Name}, the cache has a {cache.Slots[i].GetType().Name}", nameof(cache));
        }
    }
}
