using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerMeanScaler</c> (scaling "mean"): <c>scale = Σ|x·m| / max(Σ m, 1)</c> per series and channel,
    /// replaced by the batch's mean absolute value where a series has no observations, clamped to ≥ 1e-10;
    /// output <c>x / scale</c>, loc 0. No parameters. Shapes as <see cref="PatchTSMixerStdScaler"/>.
    /// </summary>
    public sealed class PatchTSMixerMeanScaler : torch.nn.Module<Tensor, Tensor, (Tensor scaled, Tensor loc, Tensor scale)>
    {
        /// <summary>Lower bound of the scale (HF <c>minimum_scale</c>, 1e-10).</summary>
        public double MinimumScale { get; }

        /// <summary>Creates the scaler.</summary>
        /// <param name="minimumScale">Lower bound of the scale.</param>
        public PatchTSMixerMeanScaler(double minimumScale = 1e-10) : base(nameof(PatchTSMixerMeanScaler))
        {
            MinimumScale = minimumScale;
        }

        /// <summary>Scales the data by its mean absolute value.</summary>
        /// <param name="data">Values <c>[batch, L, channels]</c>.</param>
        /// <param name="observedIndicator">1 where observed, 0 where missing, same shape.</param>
        public override (Tensor scaled, Tensor loc, Tensor scale) forward(Tensor data, Tensor observedIndicator)
        {
            using var scope = torch.NewDisposeScope();
            var m = observedIndicator.to_type(data.dtype);
            var tsSum = (data * m).abs().sum(new long[] { 1 }, keepdim: true);
            var numObserved = m.sum(new long[] { 1 }, keepdim: true);
            var scale = tsSum / numObserved.clamp_min(1.0);
            var batchSum = tsSum.sum(0);
            var batchObservations = numObserved.sum(0).clamp_min(1.0);
            var defaultScale = (batchSum / batchObservations).squeeze();
            scale = torch.where(numObserved > 0, scale, defaultScale);
            scale = scale.clamp_min(MinimumScale);
            var scaled = data / scale;
            var loc = torch.zeros_like(scale);
            return (scaled.MoveToOuterDisposeScope(), loc.MoveToOuterDisposeScope(), scale.MoveToOuterDisposeScope());
        }
    }
}
