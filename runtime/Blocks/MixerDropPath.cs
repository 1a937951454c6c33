using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// Stochastic depth as timm's <c>DropPath</c>: in training, each sample's residual branch is zeroed with probability
    /// <c>dropProb</c> and survivors are scaled by <c>1 / (1 - dropProb)</c>; identity in evaluation or when
    /// <c>dropProb = 0</c>. No parameters. Shape contract: <c>[batch, ...]</c> → same shape.
    /// </summary>
    public sealed class MixerDropPath : torch.nn.Module<Tensor, Tensor>
    {
        /// <summary>Probability of dropping a sample's branch.</summary>
        public double DropProb { get; }

        /// <summary>Whether kept samples are scaled by <c>1/keep</c>.</summary>
        public bool ScaleByKeep { get; }

        /// <summary>Creates the module.</summary>
        /// <param name="dropProb">Drop probability in [0, 1).</param>
        /// <param name="scaleByKeep">Scale kept samples by <c>1/(1-dropProb)</c> (timm default true).</param>
        public MixerDropPath(double dropProb = 0.0, bool scaleByKeep = true) : base(nameof(MixerDropPath))
        {
            if (dropProb < 0 || dropProb >= 1) throw new ArgumentOutOfRangeException(nameof(dropProb));
            DropProb = dropProb;
            ScaleByKeep = scaleByKeep;
        }

        /// <summary>Applies stochastic depth.</summary>
        /// <param name="x">Input <c>[batch, ...]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            if (DropProb == 0.0 || !training) return x.alias();
            return DropPath.DropSamples(x, DropProb, ScaleByKeep);
        }
    }
}
