using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerPositionalEncoding</c>: adds <c>position_enc</c> <c>[num_patches, d_model]</c> — learned
    /// (<c>randn</c>) for "random", or the fixed sin/cos table (even columns sin, odd columns cos, then centred and
    /// divided by <c>10·std</c>; not trainable) for "sincos". State-dict key: <c>position_enc</c>.
    /// Shape contract: <c>[batch, channels, num_patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerPositionalEncoding : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Parameter position_enc;

        /// <summary>Creates the encoding.</summary>
        /// <param name="config">Configuration (<c>use_positional_encoding</c>, <c>positional_encoding_type</c>, sizes).</param>
        public PatchTSMixerPositionalEncoding(PatchTSMixerConfig config) : base(nameof(PatchTSMixerPositionalEncoding))
        {
            long p = config.NumPatches, d = config.DModel;
            using (torch.no_grad())
            {
                if (!config.UsePositionalEncoding)
                    position_enc = new Parameter(torch.zeros(p, d));
                else if (config.PositionalEncodingType == "random")
                    position_enc = new Parameter(torch.randn(p, d));
                else if (config.PositionalEncodingType == "sincos")
                    position_enc = new Parameter(SinCos(p, d), requires_grad: false);
                else
                    throw new ArgumentException($"{config.PositionalEncodingType} is not a valid positional encoder. Available types are 'random' and 'sincos'.");
            }
            RegisterComponents();
        }

        private static Tensor SinCos(long p, long d)
        {
            if (d % 2 != 0) throw new ArgumentException("sincos positional encoding needs an even d_model (as in HF)");
            var pe = new double[p * d];
            for (long pos = 0; pos < p; pos++)
            for (long i = 0; i < d; i += 2)
            {
                double div = Math.Exp(i * -(Math.Log(10000.0) / d));
                pe[pos * d + i] = Math.Sin(pos * div);
                pe[pos * d + i + 1] = Math.Cos(pos * div);
            }
            double mean = pe.Average();
            for (int i = 0; i < pe.Length; i++) pe[i] -= mean;
            double std = Math.Sqrt(pe.Sum(v => v * v) / (pe.Length - 1));   // unbiased, as torch.std
            for (int i = 0; i < pe.Length; i++) pe[i] /= std * 10;
            return torch.tensor(pe.Select(v => (float)v).ToArray(), new[] { p, d });
        }

        /// <summary>Adds the encoding.</summary>
        /// <param name="patchInput">Input <c>[batch, channels, num_patches, d_model]</c>.</param>
        public override Tensor forward(Tensor patchInput) => patchInput + position_enc;
    }
}
