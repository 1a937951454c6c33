using System;
using Mix.Training.Distillation;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Examples.Tests;

/// <summary>The distillation losses on values worked out by hand.</summary>
public class DistillationLossTests
{
    static Tensor T(float[] values, params long[] shape) => torch.tensor(values, shape);

    [Fact]
    public void Attention_cross_entropy_is_the_soft_cross_entropy_per_row()
    {
        // Row 0: −1·ln 1 = 0. Row 1: −(0.5 ln 0.25 + 0.5 ln 0.75) = 0.5 ln 4 + 0.5 ln(4/3). Mean of the two rows.
        var teacher = T(new[] { 1f, 0, 0.5f, 0.5f }, 1, 1, 2, 2);
        var student = T(new[] { 1f, 0, 0.25f, 0.75f }, 1, 1, 2, 2);
        double expected = (0.5 * Math.Log(4) + 0.5 * Math.Log(4.0 / 3)) / 2;
        Assert.Equal(expected, DistillationLosses.AttentionCrossEntropy(teacher, student).item<float>(), 5);
        // Against itself it is the teacher's entropy (row 1: ln 2), not 0: the gradient is what matters.
        Assert.Equal(Math.Log(2) / 2, DistillationLosses.AttentionCrossEntropy(teacher, teacher).item<float>(), 5);
        // (0 + 0 + 0.25² + 0.25²) / 4.
        Assert.Equal(0.03125, DistillationLosses.AttentionMse(teacher, student).item<float>(), 6);
    }

    [Fact]
    public void Hidden_state_mse_and_cosine()
    {
        Assert.Equal(2.5, DistillationLosses.HiddenMse(T(new[] { 1f, 2 }, 2), T(new[] { 2f, 4 }, 2)).item<float>(), 6);
        // [1, 0] vs [0, 1]: orthogonal, 1 − 0; [1, 0] vs [2, 0]: same direction, 1 − 1. Mean 0.5.
        var teacher = T(new[] { 1f, 0, 1, 0 }, 2, 2);
        var student = T(new[] { 0f, 1, 2, 0 }, 2, 2);
        Assert.Equal(0.5, DistillationLosses.HiddenCosine(teacher, student).item<float>(), 6);
        Assert.Equal(2.0, DistillationLosses.HiddenCosine(T(new[] { 1f, 1 }, 1, 2), T(new[] { -3f, -3 }, 1, 2)).item<float>(), 6);
    }

    [Fact]
    public void Logit_kl_with_temperature()
    {
        // Teacher [0, ln 3] → p = [1/4, 3/4]; student [0, 0] → q = [1/2, 1/2]. KL = 1/4 ln(1/2) + 3/4 ln(3/2).
        double kl = 0.25 * Math.Log(0.5) + 0.75 * Math.Log(1.5);
        var teacher = T(new[] { 0f, (float)Math.Log(3) }, 1, 2);
        var student = T(new[] { 0f, 0 }, 1, 2);
        Assert.Equal(kl, DistillationLosses.LogitKl(teacher, student).item<float>(), 6);
        // At T = 2 the teacher's logits [0, 2 ln 3] soften to the same p, and the loss is scaled by T² = 4.
        var sharp = T(new[] { 0f, (float)(2 * Math.Log(3)) }, 1, 2);
        Assert.Equal(4 * kl, DistillationLosses.LogitKl(sharp, student, temperature: 2).item<float>(), 5);
        // Averaged over tokens: a second, identical token pair adds 0.
        var two = DistillationLosses.LogitKl(T(new[] { 0f, (float)Math.Log(3), 1, 1 }, 2, 2), T(new[] { 0f, 0, 1, 1 }, 2, 2));
        Assert.Equal(kl / 2, two.item<float>(), 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => DistillationLosses.LogitKl(teacher, student, 0));
    }
}
