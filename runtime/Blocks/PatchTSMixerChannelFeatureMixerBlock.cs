using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerChannelFeatureMixerBlock</c> ("mix_channel" mode): mixes across input channels.
    /// <c>out = x + permute(mlp(gating_block?(permute(norm(x)))))</c> where the permutation moves channels last
    /// (<c>[batch, d_model, patches, channels]</c>); note the gate comes before the MLP here, as in HF.
    /// State-dict keys: <c>norm.*</c>, <c>mlp.fc1/fc2.*</c>, <c>gating_block.attn_layer.*</c> (if gated).
    /// Shape contract: <c>[batch, channels, patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerChannelFeatureMixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly PatchTSMixerNormLayer norm;
        private readonly PatchTSMixerMLP mlp;
        private readonly PatchTSMixerGatedAttention? gating_block;

        /// <summary>Creates the block.</summary>
        /// <param name="config">Configuration (<c>num_input_channels</c>, <c>gated_attn</c>, ...).</param>
        public PatchTSMixerChannelFeatureMixerBlock(PatchTSMixerConfig config) : base(nameof(PatchTSMixerChannelFeatureMixerBlock))
        {
            norm = new PatchTSMixerNormLayer(config);
            mlp = new PatchTSMixerMLP(config.NumInputChannels, config.NumInputChannels, config);
            if (config.GatedAttn) gating_block = new PatchTSMixerGatedAttention(config.NumInputChannels, config.NumInputChannels);
            RegisterComponents();
        }

        /// <summary>Applies channel mixing with a residual.</summary>
        /// <param name="inputs">Input <c>[batch, channels, patches, d_model]</c>.</param>
        public override Tensor forward(Tensor inputs)
        {
            using var scope = torch.NewDisposeScope();
            var h = norm.forward(inputs).permute(0, 3, 2, 1);
            if (gating_block is not null) h = gating_block.forward(h);
            h = mlp.forward(h).permute(0, 3, 2, 1);
            return (h + inputs).MoveToOuterDisposeScope();
        }
    }
}
