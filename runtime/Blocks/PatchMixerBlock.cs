using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchMixerBlock</c>: mixes along the patch (time) axis.
    /// <c>h = norm(x)</c>; <c>m = gating_block?(mlp(hᵀ))ᵀ</c> with the MLP over <c>num_patches</c> on
    /// <c>[batch, channels, d_model, patches]</c>; with <c>self_attn</c>, <c>m = norm_attn(m + self_attn_layer(h))</c>;
    /// <c>out = m + x</c>.
    /// State-dict keys: <c>norm.*</c>, <c>mlp.fc1/fc2.*</c>, <c>gating_block.attn_layer.*</c> (if gated),
    /// <c>self_attn_layer.{k,v,q,out}_proj.*</c> and <c>norm_attn.*</c> (if self-attention).
    /// Shape contract: <c>[batch, channels, num_patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchMixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly PatchTSMixerNormLayer norm;
        private readonly PatchTSMixerMLP mlp;
        private readonly PatchTSMixerGatedAttention? gating_block;
        private readonly PatchTSMixerAttention? self_attn_layer;
        private readonly PatchTSMixerNormLayer? norm_attn;

        /// <summary>Creates the block.</summary>
        /// <param name="config">Configuration (<c>num_patches</c>, <c>gated_attn</c>, <c>self_attn</c>, ...).</param>
        public PatchMixerBlock(PatchTSMixerConfig config) : base(nameof(PatchMixerBlock))
        {
            norm = new PatchTSMixerNormLayer(config);
            mlp = new PatchTSMixerMLP(config.NumPatches, config.NumPatches, config);
            if (config.GatedAttn) gating_block = new PatchTSMixerGatedAttention(config.NumPatches, config.NumPatches);
            if (config.SelfAttn)
            {
                self_attn_layer = new PatchTSMixerAttention(config.DModel, config.SelfAttnHeads, config.Dropout);
                norm_attn = new PatchTSMixerNormLayer(config);
            }
            RegisterComponents();
        }

        /// <summary>Applies patch mixing with a residual.</summary>
        /// <param name="hiddenState">Input <c>[batch, channels, num_patches, d_model]</c>.</param>
        public override Tensor forward(Tensor hiddenState)
        {
            using var scope = torch.NewDisposeScope();
            var h = norm.forward(hiddenState);
            Tensor? attn = null;
            if (self_attn_layer is not null)
            {
                long b = h.shape[0], c = h.shape[1], p = h.shape[2], d = h.shape[3];
                attn = self_attn_layer.forward(h.reshape(b * c, p, d)).reshape(b, c, p, d);
            }
            var m = mlp.forward(h.transpose(2, 3));
            if (gating_block is not null) m = gating_block.forward(m);
            m = m.transpose(2, 3);
            if (attn is not null) m = norm_attn!.forward(m + attn);
            return (m + hiddenState).MoveToOuterDisposeScope();
        }
    }
}
