using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerBatchNorm</c>: batch norm of the <c>d_model</c> features over batch and sequence.
    /// State-dict keys: <c>batchnorm.{weight,bias,running_mean,running_var,num_batches_tracked}</c>.
    /// Shape contract: <c>[batch, L, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerBatchNorm : torch.nn.Module<Tensor, Tensor>
    {
        private readonly BatchNorm1d batchnorm;

        /// <summary>Creates the norm from the config (<c>d_model</c>, <c>norm_eps</c>).</summary>
        /// <param name="config">The configuration.</param>
        public PatchTSMixerBatchNorm(PatchTSMixerConfig config) : base(nameof(PatchTSMixerBatchNorm))
        {
            batchnorm = torch.nn.BatchNorm1d(config.DModel, eps: config.NormEps);
            RegisterComponents();
        }

        /// <summary>Normalises.</summary>
        /// <param name="inputs">Input <c>[batch, L, d_model]</c>.</param>
        public override Tensor forward(Tensor inputs)
        {
            using var scope = torch.NewDisposeScope();
            return batchnorm.forward(inputs.transpose(1, 2)).transpose(1, 2).MoveToOuterDisposeScope();
        }
    }
}
