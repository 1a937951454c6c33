using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// RMS normalisation as Hugging Face <c>MambaRMSNorm</c> (= T5/Llama RMSNorm): computed in float32,
    /// <c>weight · (x / sqrt(mean(x²) + eps))</c> with the normalised value cast back to the input dtype before the
    /// weight is applied. State-dict key: <c>weight</c> <c>[hiddenSize]</c>.
    /// Shape contract: <c>[..., hiddenSize]</c> → same shape.
    /// </summary>
    public sealed class MambaRMSNorm : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Parameter weight;

        /// <summary>Epsilon added to the mean square (HF <c>variance_epsilon</c>).</summary>
        public double Eps { get; }

        /// <summary>The scale parameter <c>[hiddenSize]</c> (initialised to ones).</summary>
        public Parameter Weight => weight;

        /// <summary>Creates the norm.</summary>
        /// <param name="hiddenSize">Size of the normalised (last) axis.</param>
        /// <param name="eps">Epsilon; HF's class default is 1e-6 (Mamba models pass <c>layer_norm_epsilon</c> = 1e-5).</param>
        public MambaRMSNorm(long hiddenSize, double eps = 1e-6) : base(nameof(MambaRMSNorm))
        {
            if (hiddenSize <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenSize));
            Eps = eps;
            weight = new Parameter(torch.ones(hiddenSize));
            RegisterComponents();
        }

        /// <summary>Normalises over the last axis.</summary>
        /// <param name="hiddenStates">Input <c>[..., hiddenSize]</c>.</param>
        public override Tensor forward(Tensor hiddenStates)
        {
            using var scope = torch.NewDisposeScope();
            var inputType = hiddenStates.dtype;
            var h = hiddenStates.to_type(ScalarType.Float32);
            var variance = h.pow(2).mean(new long[] { -1 }, keepdim: true);
            h = h * torch.rsqrt(variance + Eps);
            var y = weight * h.to_type(inputType);
            return y.MoveToOuterDisposeScope();
        }
    }
}
