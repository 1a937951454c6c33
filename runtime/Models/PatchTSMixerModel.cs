using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerModel</c> backbone (without masking): <c>scaler</c> (std by default, as HF) →
    /// <c>patching</c> (<see cref="PatchTSMixerPatchify"/>) → <c>encoder</c> (<see cref="PatchTSMixerEncoder"/>).
    /// State-dict keys are HF's: <c>encoder.patcher.*</c>, <c>encoder.positional_encoder.position_enc</c>,
    /// <c>encoder.mlp_mixer_encoder.mixers.N.{patch_mixer,feature_mixer,channel_feature_mixer}.*</c>
    /// (scaler and patching have none), so HF <c>PatchTSMixerModel</c> weights load directly.
    /// Shape contract: <c>past_values</c> <c>[batch, context_length, num_input_channels]</c> → last hidden state
    /// <c>[batch, num_input_channels, num_patches, d_model]</c>.
    /// </summary>
    public sealed class PatchTSMixerModel : torch.nn.Module<Tensor, Tensor>
    {
        private readonly PatchTSMixerEncoder encoder;
        private readonly PatchTSMixerPatchify patching;
        private readonly torch.nn.Module<Tensor, Tensor, (Tensor scaled, Tensor loc, Tensor scale)> scaler;

        /// <summary>The configuration the model was built from.</summary>
        public PatchTSMixerConfig Config { get; }

        /// <summary>Creates the model.</summary>
        /// <param name="config">Configuration (HF <c>PatchTSMixerConfig</c> fields).</param>
        public PatchTSMixerModel(PatchTSMixerConfig config) : base(nameof(PatchTSMixerModel))
        {
            config.Validate();
            Config = config;
            encoder = new PatchTSMixerEncoder(config);
            patching = new PatchTSMixerPatchify(config);
            scaler = config.Scaling switch
            {
                "mean" => new PatchTSMixerMeanScaler(),
                "std" => new PatchTSMixerStdScaler(),
                null or "none" or "" => new PatchTSMixerNOPScaler(),
                _ => throw new ArgumentException($"unknown scaling '{config.Scaling}'", nameof(config)),
            };
            RegisterComponents();
        }

        /// <summary>Returns the last hidden state <c>[batch, channels, num_patches, d_model]</c> (all values observed).</summary>
        /// <param name="pastValues">History <c>[batch, context_length, num_input_channels]</c>.</param>
        public override Tensor forward(Tensor pastValues)
        {
            using var scope = torch.NewDisposeScope();
            var (hidden, _, _, _) = ForwardDetailed(pastValues, null);
            return hidden.MoveToOuterDisposeScope();
        }

        /// <summary>
        /// Full HF output: last hidden state, the patched (scaled) input <c>[batch, channels, num_patches, patch_length]</c>,
        /// and the scaler's <c>loc</c>/<c>scale</c> <c>[batch, 1, channels]</c>.
        /// </summary>
        /// <param name="pastValues">History <c>[batch, context_length, num_input_channels]</c>.</param>
        /// <param name="observedMask">1 for observed, 0 for missing values (same shape); null = all observed.</param>
        public (Tensor lastHiddenState, Tensor patchInput, Tensor loc, Tensor scale) ForwardDetailed(Tensor pastValues, Tensor? observedMask)
        {
            using var scope = torch.NewDisposeScope();
            var mask = observedMask ?? torch.ones_like(pastValues);
            var (scaled, loc, scale) = scaler.forward(pastValues, mask);
            var patched = patching.forward(scaled);
            var hidden = encoder.forward(patched);
            return (hidden.MoveToOuterDisposeScope(), patched.MoveToOuterDisposeScope(), loc.MoveToOuterDisposeScope(),
                scale.MoveToOuterDisposeScope());
        }
    }
}
