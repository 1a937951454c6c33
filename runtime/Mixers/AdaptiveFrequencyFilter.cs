using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// Adaptive frequency filter token mixer (AFFNet, "Adaptive Frequency Filters As Efficient Global Token Mixers";
    /// the reference <c>AFNO2D_channelfirst</c>): <c>X = rfft2(x, norm='ortho')</c> over the spatial axes of a channel-first
    /// input; the AFNO complex block-diagonal 2-layer MLP (ReLU, softshrink λ) turns <c>X</c> into an instance-adaptive
    /// mask <c>M</c>, which multiplies the spectrum: <c>y = irfft2(M ⊙ X, s=(H, W), norm='ortho') + x</c>.
    /// Parameters (init <c>0.02·randn</c>): <c>w1</c> <c>[2, nb, bs, bs·f]</c>, <c>b1</c> <c>[2, nb, bs·f]</c>,
    /// <c>w2</c> <c>[2, nb, bs·f, bs]</c>, <c>b2</c> <c>[2, nb, bs]</c> with <c>bs = hiddenSize / numBlocks</c>.
    /// Shape contract: <c>[batch, hiddenSize, H, W]</c> (channel first, as the reference) → same shape and dtype, or
    /// <c>[batch, H, W, hiddenSize]</c> with <c>channelsLast</c> (the .mix <c>aff</c>).
    /// </summary>
    public sealed class AdaptiveFrequencyFilter : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Parameter w1;
        private readonly Parameter b1;
        private readonly Parameter w2;
        private readonly Parameter b2;

        /// <summary>Channel width.</summary>
        public long HiddenSize { get; }

        /// <summary>Number of diagonal blocks.</summary>
        public long NumBlocks { get; }

        /// <summary>Softshrink λ.</summary>
        public double SparsityThreshold { get; }

        /// <summary>Whether the input and output are <c>[batch, H, W, hiddenSize]</c> rather than channels first.</summary>
        public bool ChannelsLast { get; }

        /// <summary>Creates the filter.</summary>
        /// <param name="hiddenSize">Channel width; divisible by <paramref name="numBlocks"/>.</param>
        /// <param name="numBlocks">Number of diagonal blocks (default 8).</param>
        /// <param name="sparsityThreshold">Softshrink λ (reference 0.01).</param>
        /// <param name="hiddenSizeFactor">MLP hidden expansion per block (default 1).</param>
        /// <param name="channelsLast">Take and return <c>[batch, H, W, hiddenSize]</c> (the .mix <c>aff</c> contract) instead of channels first.</param>
        public AdaptiveFrequencyFilter(long hiddenSize, long numBlocks = 8, double sparsityThreshold = 0.01,
            long hiddenSizeFactor = 1, bool channelsLast = false) : base(nameof(AdaptiveFrequencyFilter))
        {
            ChannelsLast = channelsLast;
            if (hiddenSize <= 0 || numBlocks <= 0 || hiddenSize % numBlocks != 0)
                throw new ArgumentException($"hiddenSize {hiddenSize} must be divisible by numBlocks {numBlocks}", nameof(hiddenSize));
            if (hiddenSizeFactor <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenSizeFactor));
            HiddenSize = hiddenSize;
            NumBlocks = numBlocks;
            SparsityThreshold = sparsityThreshold;
            long bs = hiddenSize / numBlocks, hf = bs * hiddenSizeFactor;
            w1 = AFNO2D.RandomParameter(2, numBlocks, bs, hf);
            b1 = AFNO2D.RandomParameter(2, numBlocks, hf);
            w2 = AFNO2D.RandomParameter(2, numBlocks, hf, bs);
            b2 = AFNO2D.RandomParameter(2, numBlocks, bs);
            RegisterComponents();
        }

        /// <summary>Filters the spectrum with the input-dependent mask and adds the input.</summary>
        /// <param name="x">Input <c>[batch, hiddenSize, H, W]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            if (ChannelsLast)
            {
                if (x.dim() != 4 || x.shape[3] != HiddenSize)
                    throw new ArgumentException($"expected [batch, H, W, {HiddenSize}], got [{string.Join(", ", x.shape)}]", nameof(x));
                using var outer = torch.NewDisposeScope();
                return Filter(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).MoveToOuterDisposeScope();
            }
            return Filter(x);
        }

        Tensor Filter(Tensor x)
        {
            if (x.dim() != 4 || x.shape[1] != HiddenSize)
                throw new ArgumentException($"expected [batch, {HiddenSize}, H, W], got [{string.Join(", ", x.shape)}]", nameof(x));
            using var scope = torch.NewDisposeScope();
            long batch = x.shape[0], h = x.shape[2], w = x.shape[3];
            var computeType = x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            var X = torch.fft.rfft2(x.to_type(computeType), dim: new long[] { 2, 3 }, norm: FFTNormType.Ortho); // [B, C, H, Wf]
            long wf = X.shape[3], bs = HiddenSize / NumBlocks;
            // [B, nb, bs, H, Wf] → [B, H, Wf, nb, bs] for the block MLP, and back
            var blocks = X.reshape(batch, NumBlocks, bs, h, wf).permute(0, 3, 4, 1, 2);
            var mask = FrequencyBlockMlp.Apply(blocks, w1, b1, w2, b2, SparsityThreshold, computeType);
            mask = mask.permute(0, 3, 4, 1, 2).reshape(batch, HiddenSize, h, wf);
            var y = torch.fft.irfft2(mask * X, s: new[] { h, w }, dim: new long[] { 2, 3 }, norm: FFTNormType.Ortho);
            return (y.to_type(x.dtype) + x).MoveToOuterDisposeScope();
        }
    }
}
