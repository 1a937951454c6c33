using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>FeatureMixerBlock</c>: mixes the hidden features. <c>out = x + gating_block?(mlp(norm(x)))</c> with the
    /// MLP over <c>d_model</c>. State-dict keys: <c>norm.*</c>, <c>mlp.fc1/fc2.*</c>, <c>gating_block.attn_layer.*</c>.
    /// Shape contract: <c>[batch, channels, num_patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class FeatureMixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly PatchTSMixerNormLayer norm;
        private readonly PatchTSMixerMLP mlp;
        private readonly PatchTSMixerGatedAttention? gating_block;

        /// <summary>Creates the block.</summary>
        /// <param name="config">Configuration (<c>d_model</c>, <c>gated_attn</c>, ...).</param>
        public FeatureMixerBlock(PatchTSMixerConfig config) : base(nameof(FeatureMixerBlock))
        {
            norm = new PatchTSMixerNormLayer(config);
            mlp = new PatchTSMixerMLP(config.DModel, config.DModel, config);
            if (config.GatedAttn) gating_block = new PatchTSMixerGatedAttention(config.DModel, config.DModel);
            RegisterComponents();
        }

        /// <summary>Applies feature mixing with a residual.</summary>
        /// <param name="hidden">Input <c>[batch, channels, num_patches, d_model]</c>.</param>
        public override Tensor forward(Tensor hidden)
        {
            using var scope = torch.NewDisposeScope();
            var h = mlp.forward(norm.forward(hidden));
            if (gating_block is not null) h = gating_block.forward(h);
            return (h + hidden).MoveToOuterDisposeScope();
        }
    }
}
