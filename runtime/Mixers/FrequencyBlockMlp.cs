using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// The complex block-diagonal two-layer MLP shared by <see cref="AFNO2D"/> and <see cref="AdaptiveFrequencyFilter"/>:
    /// with <c>X = Xr + i·Xi</c> split into <c>numBlocks</c> blocks of the channel axis,
    /// <c>o1 = relu(X·W1 + b1)</c>, <c>o2 = o1·W2 + b2</c> (complex products written out with the real/imaginary
    /// parameter halves <c>w[0]</c>, <c>w[1]</c>), then <c>softshrink(λ)</c> on the real and imaginary parts.
    /// </summary>
    internal static class FrequencyBlockMlp
    {
        /// <summary>
        /// Applies the MLP. <paramref name="x"/> is complex <c>[..., numBlocks, blockSize]</c>; w1 <c>[2, nb, bs, bs·f]</c>,
        /// b1 <c>[2, nb, bs·f]</c>, w2 <c>[2, nb, bs·f, bs]</c>, b2 <c>[2, nb, bs]</c>. Returns complex <c>[..., nb, bs]</c>.
        /// </summary>
        public static Tensor Apply(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2, double lambda, ScalarType realType)
        {
            var xr = torch.view_as_real(x);
            var re = xr.select(-1, 0);
            var im = xr.select(-1, 1);
            var W1r = w1[0].to_type(realType); var W1i = w1[1].to_type(realType);
            var B1r = b1[0].to_type(realType); var B1i = b1[1].to_type(realType);
            var W2r = w2[0].to_type(realType); var W2i = w2[1].to_type(realType);
            var B2r = b2[0].to_type(realType); var B2i = b2[1].to_type(realType);

            var o1r = torch.nn.functional.relu(BlockMul(re, W1r) - BlockMul(im, W1i) + B1r);
            var o1i = torch.nn.functional.relu(BlockMul(im, W1r) + BlockMul(re, W1i) + B1i);
            var o2r = BlockMul(o1r, W2r) - BlockMul(o1i, W2i) + B2r;
            var o2i = BlockMul(o1i, W2r) + BlockMul(o1r, W2i) + B2i;

            var y = torch.stack(new[] { o2r, o2i }, -1);
            y = torch.nn.functional.softshrink(y, lambda);
            return torch.view_as_complex(y.contiguous());
        }

        /// <summary>Block-diagonal product <c>'...bi,bio->...bo'</c>: <c>[..., nb, i]</c> × <c>[nb, i, o]</c> → <c>[..., nb, o]</c>.</summary>
        private static Tensor BlockMul(Tensor x, Tensor w) => torch.matmul(x.unsqueeze(-2), w).squeeze(-2);
    }
}
