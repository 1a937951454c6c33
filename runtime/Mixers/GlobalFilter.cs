using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// GFNet global filter layer: <c>y = irfft2(rfft2(x, norm='ortho') ⊙ W, s=(H, W), norm='ortho')</c> over the two
    /// spatial axes, with a learnable complex filter <c>complex_weight</c> <c>[h, w, dim, 2]</c> (real, imaginary; init
    /// <c>0.02·randn</c>), where <c>w = W/2 + 1</c> is the half-spectrum width.
    /// Shape contract: <c>[batch, N, dim]</c> with <c>N = a·a</c> (square grid, as GFNet without <c>spatial_size</c>) or
    /// <c>[batch, H, W, dim]</c> → same shape; <c>(H, W/2+1)</c> must equal <c>(h, w)</c>. Computed in float32
    /// (float64 for float64 input) and returned in that dtype, as GFNet.
    /// State-dict key: <c>complex_weight</c>.
    /// </summary>
    public sealed class GlobalFilter : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Parameter complex_weight;

        /// <summary>Channel width.</summary>
        public long Dim { get; }

        /// <summary>Filter height (= H).</summary>
        public long H { get; }

        /// <summary>Filter width (= W/2 + 1).</summary>
        public long W { get; }

        /// <summary>Creates the filter (GFNet <c>GlobalFilter(dim, h=14, w=8)</c>).</summary>
        /// <param name="dim">Channel width.</param>
        /// <param name="h">Spatial height H.</param>
        /// <param name="w">Half-spectrum width <c>W/2 + 1</c> (8 for W = 14).</param>
        public GlobalFilter(long dim, long h = 14, long w = 8) : base(nameof(GlobalFilter))
        {
            if (dim <= 0 || h <= 0 || w <= 0) throw new ArgumentOutOfRangeException(nameof(dim), "dim, h and w must be positive");
            Dim = dim; H = h; W = w;
            using (torch.no_grad())
            using (var init = torch.randn(h, w, dim, 2, dtype: ScalarType.Float32) * 0.02)
                complex_weight = new Parameter(init.clone());
            RegisterComponents();
        }

        /// <summary>Filters the input in the 2-D frequency domain.</summary>
        /// <param name="x">Input <c>[batch, N, dim]</c> (square grid) or <c>[batch, H, W, dim]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var (grid, a, b) = ToGrid(x, Dim);
            var computeType = grid.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            grid = grid.to_type(computeType);
            var spectrum = torch.fft.rfft2(grid, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
            if (spectrum.shape[1] != H || spectrum.shape[2] != W)
                throw new ArgumentException($"spatial size {a}x{b} gives a {spectrum.shape[1]}x{spectrum.shape[2]} spectrum; the filter is {H}x{W}", nameof(x));
            var weight = torch.view_as_complex(complex_weight);
            spectrum = spectrum * weight;
            var y = torch.fft.irfft2(spectrum, s: new[] { a, b }, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
            return y.reshape(x.shape).MoveToOuterDisposeScope();
        }


        /// <summary>The learned filter <c>[h, w/2+1, dim, 2]</c> (for the fused path).</summary>
        internal Tensor ComplexWeight => complex_weight;

        /// <summary>Views <c>[B, N, C]</c> as <c>[B, a, a, C]</c> or passes <c>[B, H, W, C]</c> through.</summary>
        internal static (Tensor grid, long a, long b) ToGrid(Tensor x, long channels)
        {
            if (x.dim() == 4 && x.shape[3] == channels) return (x, x.shape[1], x.shape[2]);
            if (x.dim() == 3 && x.shape[2] == channels)
            {
                long n = x.shape[1];
                long a = (long)Math.Round(Math.Sqrt(n));
                if (a * a != n) throw new ArgumentException($"[batch, N, C] input needs a square N, got {n}", nameof(x));
                return (x.reshape(x.shape[0], a, a, channels), a, a);
            }
            throw new ArgumentException($"expected [batch, N, {channels}] or [batch, H, W, {channels}], got [{string.Join(", ", x.shape)}]", nameof(x));
        }
    }
}
