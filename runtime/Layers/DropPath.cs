using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Stochastic depth per sample (timm <c>DropPath</c>): in training mode with <c>dropProb</c> &gt; 0 each sample of
/// the batch is zeroed with probability <c>dropProb</c> and (with <c>scaleByKeep</c>) the survivors are divided by
/// <c>1 - dropProb</c>; in eval mode or with <c>dropProb</c> = 0 it is the identity.
/// </summary>
/// <remarks>Shape contract: [B, ...] in, the same shape out. No parameters.</remarks>
public sealed class DropPath : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Probability of dropping a sample's path.</summary>
    public double DropProb { get; }

    /// <summary>Whether kept samples are scaled by 1 / (1 - DropProb).</summary>
    public bool ScaleByKeep { get; }

    /// <summary>Creates a DropPath.</summary>
    /// <param name="dropProb">Probability of dropping a sample's path, in [0, 1].</param>
    /// <param name="scaleByKeep">Scale kept samples by 1 / (1 - dropProb).</param>
    public DropPath(double dropProb = 0.0, bool scaleByKeep = true) : base(nameof(DropPath))
    {
        if (dropProb < 0 || dropProb > 1) throw new ArgumentOutOfRangeException(nameof(dropProb), dropProb, "must be in [0, 1]");
        DropProb = dropProb;
        ScaleByKeep = scaleByKeep;
        RegisterComponents();
    }

    /// <summary>Drops whole samples at random in training mode.</summary>
    /// <param name="x">[B, ...].</param>
    /// <returns>Same shape as <paramref name="x"/> (an alias of it when inactive).</returns>
    public override Tensor forward(Tensor x)
    {
        if (DropProb == 0.0 || !training) return x.alias();
        return DropSamples(x, DropProb, ScaleByKeep);
    }

    /// <summary>Zeroes each sample (first axis) with probability <paramref name="p"/>; the kept ones are divided by
    /// 1 − p when <paramref name="scaleByKeep"/>. Always active: callers decide when training.</summary>
    /// <param name="x">[B, ...].</param>
    /// <param name="p">Drop probability.</param>
    /// <param name="scaleByKeep">Rescale the kept samples.</param>
    public static Tensor DropSamples(Tensor x, double p, bool scaleByKeep = true)
    {
        using var scope = torch.NewDisposeScope();
        double keep = 1.0 - p;
        var shape = new long[x.dim()];
        shape[0] = x.shape[0];
        for (int i = 1; i < shape.Length; i++) shape[i] = 1;
        var mask = torch.empty(shape, dtype: x.dtype, device: x.device).bernoulli_(keep);
        if (keep > 0.0 && scaleByKeep) mask.div_(keep);
        return (x * mask).MoveToOuterDisposeScope();
    }
}
