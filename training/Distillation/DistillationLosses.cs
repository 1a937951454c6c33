using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>
/// The distillation losses, each a scalar mean. Attention maps are <c>[..., L, L]</c> rows of weights (each row sums
/// to 1 over the positions it may read); hidden states and logits are <c>[..., features]</c> and compared along the
/// last axis.
/// </summary>
public static class DistillationLosses
{
    /// <summary>Hedgehog's attention distillation: the soft cross-entropy <c>−Σ_s a_ts log â_ts</c> of the student's
    /// weights <paramref name="student"/> against the teacher's <paramref name="teacher"/>, averaged over rows (over
    /// batch, heads and query positions). Entries the teacher gives no weight (the future) contribute nothing;
    /// <paramref name="eps"/> keeps log finite where the student's weight is 0.</summary>
    public static Tensor AttentionCrossEntropy(Tensor teacher, Tensor student, double eps = 1e-12) =>
        -(teacher * (student + eps).log()).sum(-1).mean();

    /// <summary>Mean squared difference of two attention maps, over every entry.</summary>
    public static Tensor AttentionMse(Tensor teacher, Tensor student) => (student - teacher).square().mean();

    /// <summary>Mean squared error of hidden states, over every element.</summary>
    public static Tensor HiddenMse(Tensor teacher, Tensor student) => (student - teacher).square().mean();

    /// <summary>One minus the cosine similarity along the last axis, averaged over the other axes (0 when every
    /// student vector points the teacher's way, whatever its length).</summary>
    public static Tensor HiddenCosine(Tensor teacher, Tensor student, double eps = 1e-8) =>
        1.0 - nn.functional.cosine_similarity(student, teacher, -1, eps).mean();

    /// <summary>Logit distillation (Hinton et al.): <c>T² · KL(softmax(t / T) ‖ softmax(s / T))</c> summed over the
    /// vocabulary and averaged over tokens; the T² keeps its gradients the size of a T = 1 loss.</summary>
    public static Tensor LogitKl(Tensor teacher, Tensor student, double temperature = 1.0)
    {
        if (temperature <= 0) throw new ArgumentOutOfRangeException(nameof(temperature), "The temperature must be positive.");
        var logP = (teacher / temperature).log_softmax(-1);
        var logQ = (student / temperature).log_softmax(-1);
        return (logP.exp() * (logP - logQ)).sum(-1).mean() * (temperature * temperature);
    }
}
