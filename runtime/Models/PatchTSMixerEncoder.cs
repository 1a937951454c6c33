using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerEncoder</c>: <c>patcher</c> (Linear <c>patch_length → d_model</c>), optional
    /// <c>positional_encoder</c>, then <c>mlp_mixer_encoder</c> (<see cref="PatchTSMixerBlock"/>).
    /// State-dict keys: <c>patcher.{weight,bias}</c>, <c>positional_encoder.position_enc</c> (if used),
    /// <c>mlp_mixer_encoder.mixers.N.*</c>.
    /// Shape contract: patches <c>[batch, channels, num_patches, patch_length]</c> →
    /// <c>[batch, channels, num_patches, d_model]</c>.
    /// </summary>
    public sealed class PatchTSMixerEncoder : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Linear patcher;
        private readonly PatchTSMixerPositionalEncoding? positional_encoder;
        private readonly PatchTSMixerBlock mlp_mixer_encoder;

        /// <summary>Creates the encoder.</summary>
        /// <param name="config">Configuration.</param>
        public PatchTSMixerEncoder(PatchTSMixerConfig config) : base(nameof(PatchTSMixerEncoder))
        {
            config.Validate();
            patcher = torch.nn.Linear(config.PatchLength, config.DModel);
            if (config.UsePositionalEncoding) positional_encoder = new PatchTSMixerPositionalEncoding(config);
            mlp_mixer_encoder = new PatchTSMixerBlock(config);
            RegisterComponents();
        }

        /// <summary>Embeds the patches and mixes them.</summary>
        /// <param name="pastValues">Patches <c>[batch, channels, num_patches, patch_length]</c>.</param>
        public override Tensor forward(Tensor pastValues)
        {
            using var scope = torch.NewDisposeScope();
            var patches = patcher.forward(pastValues);
            if (positional_encoder is not null) patches = positional_encoder.forward(patches);
            return mlp_mixer_encoder.forward(patches).MoveToOuterDisposeScope();
        }
    }
}
