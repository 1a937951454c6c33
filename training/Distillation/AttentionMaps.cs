using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>
/// The attention weights <c>[B, heads, L, L]</c> (row t: how much position t reads each s ≤ t) of a mixer given its
/// input <c>x: [B, L, dim]</c> and its weights, for the attention-map alignment of stage 1. <see cref="Softmax"/> is
/// the standard library's causal <c>attention</c>; <see cref="Hedgehog"/> is <c>hedgehog_attention</c>'s normalised
/// linear attention, <c>phi(q_t)·phi(k_s) / sum_s' phi(q_t)·phi(k_s')</c>; both read q and k from the fused
/// <c>qkv</c> rows <c>[q | k | v]</c> as the mixers do (multiplying them by the values gives the mixers' outputs before
/// the output projection; the tests hold them to that).
/// </summary>
public static class AttentionMaps
{
    /// <summary>Causal softmax attention weights, <c>softmax(q kᵀ / √head_dim)</c> with the future masked.</summary>
    public static Tensor Softmax(Tensor x, Tensor qkvWeight, Tensor? qkvBias, int heads)
    {
        var (q, k) = QueriesKeys(x, qkvWeight, qkvBias, heads);
        long L = x.shape[1];
        var scores = torch.matmul(q, k.transpose(-1, -2)) / Math.Sqrt(q.shape[^1]);
        var future = torch.ones(L, L, dtype: ScalarType.Bool, device: x.device).triu(1);
        return scores.masked_fill(future, double.NegativeInfinity).softmax(-1);
    }

    /// <summary>Hedgehog's weights: phi(x) = softmax([x W, −x W]) per head (<paramref name="linearFeatures"/>: x W),
    /// with <paramref name="featureMapQ"/>, <paramref name="featureMapK"/> of shape <c>[heads, head_dim, head_dim]</c>;
    /// the causal scores normalised per row with the mixer's <paramref name="eps"/>.</summary>
    public static Tensor Hedgehog(Tensor x, Tensor qkvWeight, Tensor? qkvBias, Tensor featureMapQ, Tensor featureMapK,
        bool linearFeatures = false, double eps = 1e-6)
    {
        int heads = (int)featureMapQ.shape[0];
        var (q, k) = QueriesKeys(x, qkvWeight, qkvBias, heads);
        var fq = FeatureMap(q, featureMapQ, linearFeatures);
        var fk = FeatureMap(k, featureMapK, linearFeatures);
        long L = x.shape[1];
        var scores = torch.matmul(fq, fk.transpose(-1, -2)).tril();
        return scores / (scores.sum(-1, keepdim: true) + eps);
    }

    /// <summary>phi of <paramref name="x"/> <c>[B, heads, L, d]</c> with <paramref name="w"/> <c>[heads, d, e]</c>:
    /// <c>softmax([x W, −x W])</c> over 2e features, or <c>x W</c>.</summary>
    public static Tensor FeatureMap(Tensor x, Tensor w, bool linearFeatures = false)
    {
        var h = torch.einsum("bhld,hde->bhle", x, w);
        return linearFeatures ? h : torch.cat(new[] { h, -h }, -1).softmax(-1);
    }

    /// <summary>Queries and keys <c>[B, heads, L, head_dim]</c> from the fused projection.</summary>
    public static (Tensor Q, Tensor K) QueriesKeys(Tensor x, Tensor qkvWeight, Tensor? qkvBias, int heads)
    {
        long B = x.shape[0], L = x.shape[1];
        var qkv = nn.functional.linear(x, qkvWeight, qkvBias).chunk(3, -1);
        long d = qkv[0].shape[^1] / heads;
        Tensor Heads(Tensor t) => t.reshape(B, L, heads, d).transpose(1, 2);
        return (Heads(qkv[0]), Heads(qkv[1]));
    }
}
