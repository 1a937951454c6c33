using System;
using Mix.Runtime.Caches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Vanilla multi-head self-attention as used by CAFormer (timm metaformer <c>Attention</c>): a bias-free
/// <c>qkv</c> projection, <c>num_heads = dim / head_dim</c> heads (at least 1) of <c>head_dim</c> (32) each,
/// scaled dot-product attention (scale head_dim^-0.5, dropout <c>attnDrop</c> in training; non-causal unless
/// <c>causal</c>, then token i attends to tokens ≤ i), then a bias-free <c>proj</c> and <c>proj_drop</c>.
/// </summary>
/// <remarks>
/// Shape contract: [B, N, dim] in, [B, N, dim] out. Keys: <c>qkv.weight</c> [3·A, dim], <c>proj.weight</c>
/// [dim, A] with A = num_heads·head_dim (plus <c>qkv.bias</c> / <c>proj.bias</c> when enabled). <c>qkv</c> and
/// <c>proj</c> are typed as modules (built as <see cref="Linear"/>s) so that weight quantization can swap them.
/// </remarks>
public sealed class Attention : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Size of each head.</summary>
    public int HeadDim { get; }

    /// <summary>Number of heads.</summary>
    public int NumHeads { get; }

    /// <summary>Whether token i attends only to tokens 0..i (decoder-style, SDPA's causal flag).</summary>
    public bool Causal { get; }

    /// <summary>num_heads · head_dim.</summary>
    public int AttentionDim { get; }

    /// <summary>Joint q, k, v projection dim → 3·AttentionDim.</summary>
    public readonly nn.Module<Tensor, Tensor> qkv;

    /// <summary>Dropout on the attention probabilities (its p is passed to SDPA in training mode).</summary>
    public readonly Dropout attn_drop;

    /// <summary>Output projection AttentionDim → dim.</summary>
    public readonly nn.Module<Tensor, Tensor> proj;

    /// <summary>Dropout after the output projection.</summary>
    public readonly Dropout proj_drop;

    /// <summary>Creates an Attention mixer.</summary>
    /// <param name="dim">Token features.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="numHeads">Number of heads (default: dim / headDim, at least 1).</param>
    /// <param name="qkvBias">Whether qkv has a bias.</param>
    /// <param name="attnDrop">Attention-probability dropout.</param>
    /// <param name="projDrop">Output dropout.</param>
    /// <param name="projBias">Whether proj has a bias.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <param name="causal">Causal mask (token i sees tokens 0..i).</param>
    public Attention(
        int dim,
        int headDim = 32,
        int? numHeads = null,
        bool qkvBias = false,
        double attnDrop = 0.0,
        double projDrop = 0.0,
        bool projBias = false,
        Device? device = null,
        ScalarType? dtype = null,
        bool causal = false)
        : base(nameof(Attention))
    {
        HeadDim = headDim;
        Causal = causal;
        int heads = numHeads is > 0 ? numHeads.Value : dim / headDim;
        NumHeads = heads == 0 ? 1 : heads;
        AttentionDim = NumHeads * HeadDim;
        qkv = nn.Linear(dim, AttentionDim * 3, hasBias: qkvBias, device: device, dtype: dtype);
        attn_drop = nn.Dropout(attnDrop);
        proj = nn.Linear(AttentionDim, dim, hasBias: projBias, device: device, dtype: dtype);
        proj_drop = nn.Dropout(projDrop);
        RegisterComponents();
    }

    /// <summary>Self-attention over the N tokens.</summary>
    /// <param name="x">[B, N, dim].</param>
    /// <returns>[B, N, dim].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        var qkvHeads = qkv.forward(x).reshape(b, n, 3, NumHeads, HeadDim).permute(2, 0, 3, 1, 4);
        var q = qkvHeads[0];
        var k = qkvHeads[1];
        var v = qkvHeads[2];
        double p = training ? attn_drop.p : 0.0;
        var o = nn.functional.scaled_dot_product_attention(q, k, v, p: p, is_casual: Causal);
        o = o.transpose(1, 2).reshape(b, n, AttentionDim);
        var y = proj_drop.forward(proj.forward(o));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cache-aware causal self-attention for decoding: the <c>n</c> new tokens' keys and values are appended to
    /// <paramref name="slot"/> and each new query attends causally to every cached token before it (the causal mask is
    /// offset by the tokens already cached; windows, sinks and padding as the slot defines). Inference only (no dropout).
    /// </summary>
    /// <param name="x">New tokens <c>[B, n, dim]</c>.</param>
    /// <param name="slot">The layer's KV slot (heads = <see cref="NumHeads"/>, head dim = <see cref="HeadDim"/>).</param>
    /// <param name="attentionMask">Optional <c>[B, n]</c> padding mask (nonzero = token).</param>
    /// <returns>[B, n, dim].</returns>
    public Tensor Forward(Tensor x, AttentionCacheSlot slot, Tensor? attentionMask = null)
    {
        ArgumentNullException.ThrowIfNull(slot);
        if (x.dim() != 3) throw new ArgumentException($"expected [batch, n, features], got [{string.Join(", ", x.shape)}]", nameof(x));
        slot.CheckInput(x.shape[0], x.shape[1], attentionMask);
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        var qkvHeads = qkv.forward(x).reshape(b, n, 3, NumHeads, HeadDim).permute(2, 0, 3, 1, 4);
        var o = slot.Attend(qkvHeads[0], qkvHeads[1], qkvHeads[2], attentionMask, 1.0 / System.Math.Sqrt(HeadDim));
        o = o.transpose(1, 2).reshape(b, n, AttentionDim);
        return proj.forward(o).MoveToOuterDisposeScope();
    }
}
