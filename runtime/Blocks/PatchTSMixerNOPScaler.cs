using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerNOPScaler</c> (scaling "none"): returns the data unchanged, loc 0 and scale 1
    /// (<c>[batch, 1, channels]</c>). No parameters.
    /// </summary>
    public sealed class PatchTSMixerNOPScaler : torch.nn.Module<Tensor, Tensor, (Tensor scaled, Tensor loc, Tensor scale)>
    {
        /// <summary>Creates the scaler.</summary>
        public PatchTSMixerNOPScaler() : base(nameof(PatchTSMixerNOPScaler)) { }

        /// <summary>Passes the data through.</summary>
        /// <param name="data">Values <c>[batch, L, channels]</c>.</param>
        /// <param name="observedIndicator">Ignored.</param>
        public override (Tensor scaled, Tensor loc, Tensor scale) forward(Tensor data, Tensor observedIndicator)
        {
            var shape = new[] { data.shape[0], 1L, data.shape[2] };
            return (data.alias(), torch.zeros(shape, dtype: data.dtype, device: data.device),
                torch.ones(shape, dtype: data.dtype, device: data.device));
        }
    }
}
