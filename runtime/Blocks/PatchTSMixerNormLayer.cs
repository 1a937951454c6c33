using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerNormLayer</c>: <c>LayerNorm(d_model)</c>, or <see cref="PatchTSMixerBatchNorm"/> when
    /// <c>norm_mlp</c> contains "batch" (then applied to <c>[batch·channels, patches, d_model]</c>).
    /// State-dict keys: <c>norm.{weight,bias}</c> or <c>norm.batchnorm.*</c>.
    /// Shape contract: <c>[batch, channels, patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerNormLayer : torch.nn.Module<Tensor, Tensor>
    {
        private readonly torch.nn.Module<Tensor, Tensor> norm;
        private readonly bool isBatch;

        /// <summary>Creates the norm from the config (<c>norm_mlp</c>, <c>d_model</c>, <c>norm_eps</c>).</summary>
        /// <param name="config">The configuration.</param>
        public PatchTSMixerNormLayer(PatchTSMixerConfig config) : base(nameof(PatchTSMixerNormLayer))
        {
            isBatch = config.NormMlp.ToLowerInvariant().Contains("batch");
            norm = isBatch
                ? new PatchTSMixerBatchNorm(config)
                : torch.nn.LayerNorm(config.DModel, eps: config.NormEps);
            RegisterComponents();
        }

        /// <summary>Normalises the last axis.</summary>
        /// <param name="inputs">Input <c>[batch, channels, patches, d_model]</c>.</param>
        public override Tensor forward(Tensor inputs)
        {
            if (!isBatch) return norm.forward(inputs);
            using var scope = torch.NewDisposeScope();
            var reshaped = inputs.reshape(inputs.shape[0] * inputs.shape[1], inputs.shape[2], inputs.shape[3]);
            return norm.forward(reshaped).reshape(inputs.shape).MoveToOuterDisposeScope();
        }
    }
}
