using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerStdScaler</c> (the HF default scaling): per series and channel over the time axis (dim 1),
    /// <c>loc = Σ x·m / max(Σ m, 1)</c>, <c>scale = sqrt(Σ ((x - loc)·m)² / max(Σ m, 1) + 1e-5)</c>, output
    /// <c>(x - loc) / scale</c>, where <c>m</c> is the observed mask. No parameters.
    /// Shape contract: data and mask <c>[batch, L, channels]</c> → (scaled <c>[batch, L, channels]</c>,
    /// loc <c>[batch, 1, channels]</c>, scale <c>[batch, 1, channels]</c>).
    /// </summary>
    public sealed class PatchTSMixerStdScaler : torch.nn.Module<Tensor, Tensor, (Tensor scaled, Tensor loc, Tensor scale)>
    {
        /// <summary>Minimum added to the variance (HF <c>minimum_scale</c>, 1e-5).</summary>
        public double MinimumScale { get; }

        /// <summary>Creates the scaler.</summary>
        /// <param name="minimumScale">Added to the variance before the square root.</param>
        public PatchTSMixerStdScaler(double minimumScale = 1e-5) : base(nameof(PatchTSMixerStdScaler))
        {
            MinimumScale = minimumScale;
        }

        /// <summary>Standardises the data.</summary>
        /// <param name="data">Values <c>[batch, L, channels]</c>.</param>
        /// <param name="observedIndicator">1 where observed, 0 where missing, same shape.</param>
        public override (Tensor scaled, Tensor loc, Tensor scale) forward(Tensor data, Tensor observedIndicator)
        {
            using var scope = torch.NewDisposeScope();
            var m = observedIndicator.to_type(data.dtype);
            var denominator = m.sum(new long[] { 1 }, keepdim: true).clamp_min(1.0);
            var loc = (data * m).sum(new long[] { 1 }, keepdim: true) / denominator;
            var variance = ((data - loc) * m).pow(2).sum(new long[] { 1 }, keepdim: true) / denominator;
            var scale = torch.sqrt(variance + MinimumScale);
            var scaled = (data - loc) / scale;
            return (scaled.MoveToOuterDisposeScope(), loc.MoveToOuterDisposeScope(), scale.MoveToOuterDisposeScope());
        }
    }
}
