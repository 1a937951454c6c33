using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>
/// One multi-head attention block's projections in a common layout: <see cref="Q"/>, <see cref="K"/>, <see cref="V"/>
/// are <c>[heads · head_dim, hidden]</c> with head <c>h</c> in rows <c>h · head_dim …</c> (keys and values repeated
/// for grouped-query attention), <see cref="O"/> is <c>[hidden, heads · head_dim]</c>; biases are null when the source
/// has none. <see cref="Sources"/> says which source tensor each part came from and how, for the surgery report.
/// Read one with <see cref="FromMix"/> (the standard library's <c>attention</c>: <c>qkv</c>, <c>proj</c>),
/// <see cref="FromGptNeoX"/> (fused, head-interleaved <c>query_key_value</c>, <c>dense</c>) or
/// <see cref="FromLlama"/> (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>).
/// </summary>
public sealed record AttentionWeights(int Heads, int HeadDim, Tensor Q, Tensor K, Tensor V, Tensor O,
    Tensor? QBias, Tensor? KBias, Tensor? VBias, Tensor? OBias, IReadOnlyDictionary<string, string> Sources)
{
    /// <summary>Query/key/value width, <c>heads · head_dim</c>.</summary>
    public long Inner => (long)Heads * HeadDim;

    /// <summary>The standard library's <c>attention</c> (and <c>hedgehog_attention</c>) at <paramref name="prefix"/>
    /// (<c>backbone.layers.0.mixer.</c>): <c>qkv.weight</c> rows are <c>[q | k | v]</c>, each head-major.</summary>
    public static AttentionWeights FromMix(IReadOnlyDictionary<string, Tensor> tensors, string prefix, int heads)
    {
        var qkv = Required(tensors, prefix + "qkv.weight");
        var proj = Required(tensors, prefix + "proj.weight");
        long inner = qkv.shape[0] / 3;
        int headDim = SplitHeads(inner, heads, prefix + "qkv.weight");
        var parts = qkv.chunk(3, 0);
        var bias = tensors.TryGetValue(prefix + "qkv.bias", out var b) ? b.chunk(3, 0) : null;
        var sources = new Dictionary<string, string>
        {
            ["q"] = $"{prefix}qkv.weight rows 0..{inner - 1}",
            ["k"] = $"{prefix}qkv.weight rows {inner}..{2 * inner - 1}",
            ["v"] = $"{prefix}qkv.weight rows {2 * inner}..{3 * inner - 1}",
            ["o"] = $"{prefix}proj.weight",
        };
        if (bias is not null) sources["qkv bias"] = prefix + "qkv.bias";
        tensors.TryGetValue(prefix + "proj.bias", out var ob);
        if (ob is not null) sources["o bias"] = prefix + "proj.bias";
        return new AttentionWeights(heads, headDim, parts[0], parts[1], parts[2], proj, bias?[0], bias?[1], bias?[2], ob, sources);
    }

    /// <summary>A Hugging Face GPT-NeoX (Pythia) attention block at <paramref name="prefix"/>
    /// (<c>gpt_neox.layers.0.attention.</c>): the fused <c>query_key_value</c> is laid out per head,
    /// <c>[heads, 3, head_dim]</c> (as <c>GPTNeoXAttention</c> views it), so it is split head by head into q, k, v;
    /// <c>dense</c> is the output projection. Rotary embeddings have no weights and are not carried over (the students
    /// have none; see docs/distillation.md).</summary>
    public static AttentionWeights FromGptNeoX(IReadOnlyDictionary<string, Tensor> tensors, string prefix, int heads)
    {
        var w = Required(tensors, prefix + "query_key_value.weight");
        long hidden = w.shape[1];
        long inner = w.shape[0] / 3;
        int headDim = SplitHeads(inner, heads, prefix + "query_key_value.weight");
        var split = w.reshape(heads, 3, headDim, hidden);
        Tensor Part(Tensor t, int i) => t.select(1, i).reshape(inner, hidden);
        Tensor? qb = null, kb = null, vb = null;
        var sources = new Dictionary<string, string>
        {
            ["q"] = $"{prefix}query_key_value.weight, rows [h·{3 * headDim} + 0 .. +{headDim - 1}] of each head h",
            ["k"] = $"{prefix}query_key_value.weight, rows [h·{3 * headDim} + {headDim} .. +{2 * headDim - 1}] of each head h",
            ["v"] = $"{prefix}query_key_value.weight, rows [h·{3 * headDim} + {2 * headDim} .. +{3 * headDim - 1}] of each head h",
            ["o"] = $"{prefix}dense.weight",
        };
        if (tensors.TryGetValue(prefix + "query_key_value.bias", out var b))
        {
            var bs = b.reshape(heads, 3, headDim);
            qb = bs.select(1, 0).reshape(inner);
            kb = bs.select(1, 1).reshape(inner);
            vb = bs.select(1, 2).reshape(inner);
            sources["qkv bias"] = prefix + "query_key_value.bias (split per head like the weight)";
        }
        tensors.TryGetValue(prefix + "dense.bias", out var ob);
        if (ob is not null) sources["o bias"] = prefix + "dense.bias";
        return new AttentionWeights(heads, headDim, Part(split, 0), Part(split, 1), Part(split, 2),
            Required(tensors, prefix + "dense.weight"), qb, kb, vb, ob, sources);
    }

    /// <summary>A Hugging Face Llama-style attention block at <paramref name="prefix"/>
    /// (<c>model.layers.0.self_attn.</c>): <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c> (biases when
    /// present, as Qwen2 has). With grouped-query attention (<paramref name="kvHeads"/> &lt; <paramref name="heads"/>)
    /// each key/value head is repeated for the <c>heads / kvHeads</c> consecutive query heads it serves
    /// (<c>repeat_kv</c>), since the students have one key per query head. RoPE is not carried over.</summary>
    public static AttentionWeights FromLlama(IReadOnlyDictionary<string, Tensor> tensors, string prefix, int heads, int? kvHeads = null)
    {
        var q = Required(tensors, prefix + "q_proj.weight");
        var k = Required(tensors, prefix + "k_proj.weight");
        var v = Required(tensors, prefix + "v_proj.weight");
        int kv = kvHeads ?? heads;
        if (kv <= 0 || heads % kv != 0)
            throw new ArgumentException($"{heads} query heads cannot share {kv} key/value heads (heads must be a multiple of kv heads).");
        int headDim = SplitHeads(q.shape[0], heads, prefix + "q_proj.weight");
        if (k.shape[0] != (long)kv * headDim)
            throw new ArgumentException($"{prefix}k_proj.weight has {k.shape[0]} rows; {kv} key/value heads of {headDim} need {(long)kv * headDim}.");
        int groups = heads / kv;
        // Head h reads key/value head h / groups, as transformers' repeat_kv.
        Tensor Repeat(Tensor t) => groups == 1 ? t
            : t.reshape(kv, 1, headDim, -1).expand(kv, groups, headDim, t.shape[^1]).reshape((long)heads * headDim, -1);
        var repeated = groups == 1 ? "" : $", each of the {kv} heads repeated for {groups} query heads";
        var sources = new Dictionary<string, string>
        {
            ["q"] = prefix + "q_proj.weight",
            ["k"] = prefix + "k_proj.weight" + repeated,
            ["v"] = prefix + "v_proj.weight" + repeated,
            ["o"] = prefix + "o_proj.weight",
        };
        tensors.TryGetValue(prefix + "q_proj.bias", out var qb);
        tensors.TryGetValue(prefix + "k_proj.bias", out var kb);
        tensors.TryGetValue(prefix + "v_proj.bias", out var vb);
        tensors.TryGetValue(prefix + "o_proj.bias", out var ob);
        if ((qb is null) != (kb is null) || (kb is null) != (vb is null))
            throw new ArgumentException($"{prefix}: q_proj, k_proj and v_proj must all have a bias or none (the students' qkv bias is one flag).");
        if (qb is not null) sources["qkv bias"] = $"{prefix}q_proj.bias, k_proj.bias, v_proj.bias{repeated}";
        if (ob is not null) sources["o bias"] = prefix + "o_proj.bias";
        return new AttentionWeights(heads, headDim, q, Repeat(k), Repeat(v), Required(tensors, prefix + "o_proj.weight"),
            qb, kb is null ? null : Repeat(kb.unsqueeze(-1)).squeeze(-1), vb is null ? null : Repeat(vb.unsqueeze(-1)).squeeze(-1), ob, sources);
    }

    /// <summary>Every tensor of a safetensors file (a Hugging Face <c>model.safetensors</c>), by name, on the CPU.</summary>
    public static Dictionary<string, Tensor> ReadSafeTensors(string path)
    {
        using var file = Mix.Runtime.Checkpoints.SafeTensorsFile.Open(path);
        return file.Names.ToDictionary(n => n, n => file.Read(n));
    }

    static Tensor Required(IReadOnlyDictionary<string, Tensor> tensors, string key) =>
        tensors.TryGetValue(key, out var t) ? t
            : throw new KeyNotFoundException($"The attention weights have no tensor '{key}'" +
                                             Near(tensors.Keys, key));

    static string Near(IEnumerable<string> keys, string key)
    {
        int last = key.LastIndexOf('.');
        int cut = last > 0 ? key.LastIndexOf('.', last - 1) : -1;
        var stem = key[..(cut + 1)];
        var near = keys.Where(k => k.StartsWith(stem, StringComparison.Ordinal)).Take(6).ToList();
        return near.Count == 0 ? $" (and none under '{stem}')." : $"; under '{stem}' there are: {string.Join(", ", near)}.";
    }

    static int SplitHeads(long inner, int heads, string key)
    {
        if (heads <= 0 || inner % heads != 0)
            throw new ArgumentException($"{key}: {inner} rows per projection do not split into {heads} heads.");
        return (int)(inner / heads);
    }
}
