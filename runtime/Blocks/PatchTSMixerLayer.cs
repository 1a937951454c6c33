using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerLayer</c>: in "mix_channel" mode first <c>channel_feature_mixer</c>, then
    /// <c>patch_mixer</c> (<see cref="PatchMixerBlock"/>) and <c>feature_mixer</c> (<see cref="FeatureMixerBlock"/>).
    /// State-dict keys: <c>patch_mixer.*</c>, <c>feature_mixer.*</c>, <c>channel_feature_mixer.*</c> (mix_channel).
    /// Shape contract: <c>[batch, channels, num_patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerLayer : torch.nn.Module<Tensor, Tensor>
    {
        private readonly PatchMixerBlock patch_mixer;
        private readonly FeatureMixerBlock feature_mixer;
        private readonly PatchTSMixerChannelFeatureMixerBlock? channel_feature_mixer;

        /// <summary>Creates the layer.</summary>
        /// <param name="config">Configuration.</param>
        public PatchTSMixerLayer(PatchTSMixerConfig config) : base(nameof(PatchTSMixerLayer))
        {
            patch_mixer = new PatchMixerBlock(config);
            feature_mixer = new FeatureMixerBlock(config);
            if (config.Mode == "mix_channel") channel_feature_mixer = new PatchTSMixerChannelFeatureMixerBlock(config);
            RegisterComponents();
        }

        /// <summary>Applies the layer.</summary>
        /// <param name="hidden">Input <c>[batch, channels, num_patches, d_model]</c>.</param>
        public override Tensor forward(Tensor hidden)
        {
            using var scope = torch.NewDisposeScope();
            if (channel_feature_mixer is not null) hidden = channel_feature_mixer.forward(hidden);
            hidden = patch_mixer.forward(hidden);
            return feature_mixer.forward(hidden).MoveToOuterDisposeScope();
        }
    }
}
