using System;
using Mix.Runtime.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>Attention over a cache and rotary position embeddings (CPU reference math, any device).</summary>
public static class CachedAttention
{
    /// <summary>Creates the KV slot for <paramref name="options"/>: full precision, or quantized when
    /// <see cref="KvCacheOptions.Quantization"/> is set.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="numHeads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="options">Options.</param>
    /// <param name="dtype">Model dtype.</param>
    /// <param name="device">Device.</param>
    public static AttentionCacheSlot CreateSlot(int layerIndex, long batch, long numHeads, long headDim, KvCacheOptions? options,
        ScalarType dtype = ScalarType.Float32, Device? device = null) =>
        options?.Quantization is null
            ? new KvCacheSlot(layerIndex, batch, numHeads, headDim, options, dtype, device)
            : new QuantizedKvCacheSlot(layerIndex, batch, numHeads, headDim, options, dtype, device);

    /// <summary>softmax(q kᵀ · scale, masked by <paramref name="allowed"/>) v.</summary>
    /// <param name="q">Queries <c>[batch, heads, n, d]</c>.</param>
    /// <param name="k">Keys <c>[batch, heads, T, d]</c>.</param>
    /// <param name="v">Values <c>[batch, heads, T, d]</c>.</param>
    /// <param name="allowed">Boolean <c>[batch or 1, 1 or heads, n, T]</c>.</param>
    /// <param name="scale">Score scale (usually d^-0.5).</param>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor allowed, double scale)
    {
        using var scope = torch.NewDisposeScope();
        var scores = torch.matmul(q, k.transpose(-2, -1)) * scale;
        scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
        var p = torch.nn.functional.softmax(scores, -1);
        return torch.matmul(p, v).MoveToOuterDisposeScope();
    }

    /// <summary>The causal mask <c>[1, 1, n, n]</c>.</summary>
    /// <param name="n">Sequence length.</param>
    /// <param name="device">Device.</param>
    public static Tensor CausalMask(long n, Device device) =>
        torch.ones(new[] { n, n }, ScalarType.Bool, device).tril().view(1, 1, n, n);

    /// <summary>Rotary embedding (rotate-half convention): <c>x [batch, heads, n, d]</c> at row positions
    /// <c>[batch, n]</c>.</summary>
    /// <param name="x">Queries or keys.</param>
    /// <param name="positions">Positions <c>[batch, n]</c> (int64).</param>
    /// <param name="theta">Base (e.g. 10000).</param>
    public static Tensor Rotary(Tensor x, Tensor positions, double theta)
    {
        using var scope = torch.NewDisposeScope();
        long d = x.shape[3];
        if (d % 2 != 0) throw new ArgumentException("rotary embeddings need an even head dimension", nameof(x));
        var invFreq = torch.pow(theta, -torch.arange(0, d, 2, dtype: ScalarType.Float64, device: x.device) / d);
        var ang = positions.to_type(ScalarType.Float64).unsqueeze(-1) * invFreq;   // [b, n, d/2]
        ang = torch.cat(new[] { ang, ang }, -1).unsqueeze(1);                        // [b, 1, n, d]
        var cos = ang.cos().to_type(x.dtype);
        var sin = ang.sin().to_type(x.dtype);
        var halves = x.chunk(2, -1);
        var rotated = torch.cat(new[] { -halves[1], halves[0] }, -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Causal multi-head self-attention with rotary position embeddings (Llama style, bias-free <c>q_proj</c>,
/// <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>) written against the cache API (<see cref="AttentionCacheSlot"/>); models
/// written in <c>.mix</c> use the <c>causal_attention</c> primitive instead.
/// Shape contract: <c>[batch, L, dim]</c> → <c>[batch, L, dim]</c>.
/// </summary>
public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> q_proj;
    private readonly nn.Module<Tensor, Tensor> k_proj;
    private readonly nn.Module<Tensor, Tensor> v_proj;
    private readonly nn.Module<Tensor, Tensor> o_proj;

    /// <summary>Creates the mixer.</summary>
    /// <param name="dim">Model width.</param>
    /// <param name="numHeads">Heads (dim must be divisible).</param>
    /// <param name="ropeTheta">RoPE base; ≤ 0 disables position embeddings.</param>
    public CausalSelfAttention(long dim, long numHeads, double ropeTheta = 10000.0) : base(nameof(CausalSelfAttention))
    {
        if (dim % numHeads != 0) throw new ArgumentException("dim must be divisible by numHeads", nameof(numHeads));
        Dim = dim;
        NumHeads = numHeads;
        HeadDim = dim / numHeads;
        RopeTheta = ropeTheta;
        q_proj = nn.Linear(dim, dim, hasBias: false);
        k_proj = nn.Linear(dim, dim, hasBias: false);
        v_proj = nn.Linear(dim, dim, hasBias: false);
        o_proj = nn.Linear(dim, dim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Model width.</summary>
    public long Dim { get; }

    /// <summary>Heads.</summary>
    public long NumHeads { get; }

    /// <summary>Features per head.</summary>
    public long HeadDim { get; }

    /// <summary>RoPE base (≤ 0: none).</summary>
    public double RopeTheta { get; }

    /// <summary>Full causal self-attention without a cache (positions 0..L−1).</summary>
    /// <param name="x"><c>[batch, L, dim]</c>.</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        var pos = torch.arange(n, dtype: ScalarType.Int64, device: x.device).unsqueeze(0).expand(b, n);
        return ForwardMasked(x, pos, CachedAttention.CausalMask(n, x.device)).MoveToOuterDisposeScope();
    }

    /// <summary>Self-attention with explicit row positions <c>[batch, L]</c> and mask <c>[batch or 1, 1, L, L]</c>
    /// (the reference for sliding windows and padding).</summary>
    /// <param name="x"><c>[batch, L, dim]</c>.</param>
    /// <param name="positions">Row positions for RoPE.</param>
    /// <param name="allowed">Boolean mask.</param>
    public Tensor ForwardMasked(Tensor x, Tensor positions, Tensor allowed)
    {
        using var scope = torch.NewDisposeScope();
        var (q, k, v) = Project(x, positions);
        return Finish(CachedAttention.Attend(q, k, v, allowed, 1.0 / Math.Sqrt(HeadDim)), x).MoveToOuterDisposeScope();
    }

    /// <summary>Cache-aware forward of <c>n</c> new tokens: keys are rotated at their row positions and appended
    /// to the slot; queries attend to everything the slot allows (causal, offset by the tokens already cached).</summary>
    /// <param name="x">New tokens <c>[batch, n, dim]</c>.</param>
    /// <param name="slot">The layer's KV slot.</param>
    /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask.</param>
    public Tensor Forward(Tensor x, AttentionCacheSlot slot, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(slot);
        // Before anything derived from the slot meets the input: row positions of another batch would broadcast.
        if (x.dim() != 3 || x.shape[2] != Dim)
            throw new ArgumentException($"expected [batch, n, {Dim}], got [{string.Join(", ", x.shape)}]", nameof(x));
        slot.CheckInput(x.shape[0], x.shape[1], attentionMask);
        using var scope = torch.NewDisposeScope();
        var pos = slot.NewRowPositions(attentionMask, x.shape[1], x.device);
        var (q, k, v) = Project(x, pos);
        return Finish(slot.Attend(q, k, v, attentionMask, 1.0 / Math.Sqrt(HeadDim)), x).MoveToOuterDisposeScope();
    }

    private (Tensor q, Tensor k, Tensor v) Project(Tensor x, Tensor positions)
    {
        long b = x.shape[0], n = x.shape[1];
        Tensor Heads(nn.Module<Tensor, Tensor> p) => p.forward(x).view(b, n, NumHeads, HeadDim).transpose(1, 2);
        var q = Heads(q_proj);
        var k = Heads(k_proj);
        var v = Heads(v_proj);
        if (RopeTheta > 0)
        {
            q = CachedAttention.Rotary(q, positions, RopeTheta);
            k = CachedAttention.Rotary(k, positions, RopeTheta);
        }
        return (q, k, v);
    }

    private Tensor Finish(Tensor o, Tensor x) => o_proj.forward(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], Dim));
}
