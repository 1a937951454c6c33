using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// Adaptive Fourier Neural Operator token mixer (NVlabs <c>AFNO2D</c>): <c>X = rfft2(x, norm='ortho')</c> over the
    /// spatial axes; on the first <c>kept = int((W/2+1)·hardThresholdingFraction)</c> columns of the half spectrum a
    /// complex block-diagonal 2-layer MLP (<c>numBlocks</c> blocks, hidden factor <c>hiddenSizeFactor</c>, ReLU) is
    /// applied, the other columns are zeroed; softshrink(λ = <c>sparsityThreshold</c>) on real and imaginary parts;
    /// <c>irfft2(·, s=(H, W), norm='ortho')</c>; then the input is added back (<c>return x + bias</c>).
    /// Parameters (init <c>0.02·randn</c>): <c>w1</c> <c>[2, nb, bs, bs·f]</c>, <c>b1</c> <c>[2, nb, bs·f]</c>,
    /// <c>w2</c> <c>[2, nb, bs·f, bs]</c>, <c>b2</c> <c>[2, nb, bs]</c> with <c>bs = hiddenSize / numBlocks</c>.
    /// Shape contract: <c>[batch, N, hiddenSize]</c> (N = a·a square grid) or <c>[batch, H, W, hiddenSize]</c> → same
    /// shape and dtype (computed in float32, float64 for float64 input).
    /// </summary>
    public sealed class AFNO2D : torch.nn.Module<Tensor, Tensor>
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

        /// <summary>Fraction of the half-spectrum columns processed (the rest are zeroed).</summary>
        public double HardThresholdingFraction { get; }

        /// <summary>Creates the mixer (NVlabs <c>AFNO2D</c> arguments).</summary>
        /// <param name="hiddenSize">Channel width; divisible by <paramref name="numBlocks"/>.</param>
        /// <param name="numBlocks">Number of diagonal blocks (default 8).</param>
        /// <param name="sparsityThreshold">Softshrink λ (default 0.01).</param>
        /// <param name="hardThresholdingFraction">Fraction of frequency columns kept (default 1).</param>
        /// <param name="hiddenSizeFactor">MLP hidden expansion per block (default 1).</param>
        public AFNO2D(long hiddenSize, long numBlocks = 8, double sparsityThreshold = 0.01,
            double hardThresholdingFraction = 1.0, long hiddenSizeFactor = 1) : base(nameof(AFNO2D))
        {
            if (hiddenSize <= 0 || numBlocks <= 0 || hiddenSize % numBlocks != 0)
                throw new ArgumentException($"hiddenSize {hiddenSize} must be divisible by numBlocks {numBlocks}", nameof(hiddenSize));
            if (hiddenSizeFactor <= 0) throw new ArgumentOutOfRangeException(nameof(hiddenSizeFactor));
            HiddenSize = hiddenSize;
            NumBlocks = numBlocks;
            SparsityThreshold = sparsityThreshold;
            HardThresholdingFraction = hardThresholdingFraction;
            long bs = hiddenSize / numBlocks, hf = bs * hiddenSizeFactor;
            w1 = RandomParameter(2, numBlocks, bs, hf);
            b1 = RandomParameter(2, numBlocks, hf);
            w2 = RandomParameter(2, numBlocks, hf, bs);
            b2 = RandomParameter(2, numBlocks, bs);
            RegisterComponents();
        }

        internal static Parameter RandomParameter(params long[] shape)
        {
            using var _ = torch.no_grad();
            using var t = torch.randn(shape) * 0.02;
            return new Parameter(t.clone());
        }

        /// <summary>Mixes tokens in the frequency domain and adds the input.</summary>
        /// <param name="x">Input <c>[batch, N, hiddenSize]</c> (square grid) or <c>[batch, H, W, hiddenSize]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var (grid, a, b) = GlobalFilter.ToGrid(x, HiddenSize);
            var computeType = x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            grid = grid.to_type(computeType);
            long batch = x.shape[0];

            var X = torch.fft.rfft2(grid, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);   // [B, H, Wf, C]
            long wf = X.shape[2];
            long bs = HiddenSize / NumBlocks;
            X = X.reshape(batch, a, wf, NumBlocks, bs);
            long totalModes = b / 2 + 1;
            long kept = Math.Min(wf, (long)(totalModes * HardThresholdingFraction));

            Tensor Y;
            if (kept <= 0)
            {
                Y = torch.zeros_like(X);
            }
            else
            {
                Y = FrequencyBlockMlp.Apply(X.narrow(2, 0, kept), w1, b1, w2, b2, SparsityThreshold, computeType);
                if (kept < wf)
                {
                    var rest = torch.zeros(new[] { batch, a, wf - kept, NumBlocks, bs }, dtype: Y.dtype, device: Y.device);
                    Y = torch.cat(new[] { Y, rest }, 2);
                }
            }
            Y = Y.reshape(batch, a, wf, HiddenSize);
            var y = torch.fft.irfft2(Y, s: new[] { a, b }, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
            y = y.reshape(x.shape).to_type(x.dtype);
            return (y + x).MoveToOuterDisposeScope();
        }
    }
}
