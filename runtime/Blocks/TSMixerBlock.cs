using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// TSMixer residual block (Chen et al. 2023, google-research <c>tsmixer</c> <c>res_block</c>):
    /// <list type="number">
    /// <item>time mixing: <c>x = x + dropout(act(temporal_linear(temporal_norm(x)ᵀ)))ᵀ</c> — a dense layer over the
    /// time axis L applied to the transposed input <c>[batch, C, L]</c>;</item>
    /// <item>feature mixing: <c>x = x + dropout(feature_linear2(dropout(act(feature_linear1(feature_norm(x))))))</c>.</item>
    /// </list>
    /// Normalisation is over the last two axes <c>(L, C)</c> as in the reference: "L" = layer norm with
    /// <c>[L, C]</c> affine parameters, "B" = batch norm with per-<c>(l, c)</c> statistics (Keras
    /// <c>axis=[-2, -1]</c>; eps 1e-3 and momentum 0.99 as Keras, i.e. TorchSharp momentum 0.01).
    /// State-dict keys: <c>temporal_norm.*</c>, <c>temporal_linear.{weight,bias}</c> <c>[L, L]</c>, <c>feature_norm.*</c>,
    /// <c>feature_linear1.{weight,bias}</c> <c>[ffDim, C]</c>, <c>feature_linear2.{weight,bias}</c> <c>[C, ffDim]</c>.
    /// Shape contract: <c>[batch, seqLen, numFeatures]</c> → same shape.
    /// </summary>
    public sealed class TSMixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly torch.nn.Module<Tensor, Tensor> temporal_norm;
        private readonly Linear temporal_linear;
        private readonly torch.nn.Module<Tensor, Tensor> feature_norm;
        private readonly Linear feature_linear1;
        private readonly Linear feature_linear2;
        private readonly torch.nn.Module<Tensor, Tensor> activation;
        private readonly Dropout dropout;

        /// <summary>Input length L.</summary>
        public long SeqLen { get; }

        /// <summary>Number of features (channels) C.</summary>
        public long NumFeatures { get; }

        /// <summary>"L" (layer norm) or "B" (batch norm).</summary>
        public string NormType { get; }

        /// <summary>Creates the block (reference <c>res_block(inputs, norm_type, activation, dropout, ff_dim)</c>).</summary>
        /// <param name="seqLen">Input length L.</param>
        /// <param name="numFeatures">Number of features C.</param>
        /// <param name="ffDim">Hidden width of the feature MLP (reference default 2048).</param>
        /// <param name="normType">"B" (batch norm, reference default) or "L" (layer norm).</param>
        /// <param name="activation">"relu" (reference default), "gelu" or "silu".</param>
        /// <param name="dropout">Dropout rate (reference default 0.05).</param>
        /// <param name="normEps">Normalisation epsilon (Keras default 1e-3).</param>
        public TSMixerBlock(long seqLen, long numFeatures, long ffDim = 2048, string normType = "B",
            string activation = "relu", double dropout = 0.05, double normEps = 1e-3)
            : base(nameof(TSMixerBlock))
        {
            if (seqLen <= 0) throw new ArgumentOutOfRangeException(nameof(seqLen));
            if (numFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(numFeatures));
            if (ffDim <= 0) throw new ArgumentOutOfRangeException(nameof(ffDim));
            SeqLen = seqLen;
            NumFeatures = numFeatures;
            NormType = normType;
            temporal_norm = CreateNorm(normType, seqLen, numFeatures, normEps);
            temporal_linear = torch.nn.Linear(seqLen, seqLen);
            feature_norm = CreateNorm(normType, seqLen, numFeatures, normEps);
            feature_linear1 = torch.nn.Linear(numFeatures, ffDim);
            feature_linear2 = torch.nn.Linear(ffDim, numFeatures);
            this.activation = MixerMlp.CreateActivation(activation);
            this.dropout = torch.nn.Dropout(dropout);
            RegisterComponents();
        }

        /// <summary>Applies time mixing then feature mixing.</summary>
        /// <param name="x">Input <c>[batch, seqLen, numFeatures]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            if (x.dim() != 3 || x.shape[1] != SeqLen || x.shape[2] != NumFeatures)
                throw new ArgumentException($"expected [batch, {SeqLen}, {NumFeatures}], got [{string.Join(", ", x.shape)}]", nameof(x));
            using var scope = torch.NewDisposeScope();
            // time mixing on [batch, C, L]
            var t = Normalize(temporal_norm, x).transpose(1, 2);
            t = activation.forward(temporal_linear.forward(t)).transpose(1, 2);
            var res = x + dropout.forward(t);
            // feature mixing
            var f = activation.forward(feature_linear1.forward(Normalize(feature_norm, res)));
            f = dropout.forward(feature_linear2.forward(dropout.forward(f)));
            return (res + f).MoveToOuterDisposeScope();
        }

        private static torch.nn.Module<Tensor, Tensor> CreateNorm(string normType, long seqLen, long numFeatures, double eps) =>
            normType switch
            {
                "L" => torch.nn.LayerNorm(new[] { seqLen, numFeatures }, eps: eps),
                "B" => torch.nn.BatchNorm1d(seqLen * numFeatures, eps: eps, momentum: 0.01),
                _ => throw new ArgumentException($"norm type must be \"L\" or \"B\", got '{normType}'", nameof(normType)),
            };

        private static Tensor Normalize(torch.nn.Module<Tensor, Tensor> norm, Tensor x)
        {
            if (norm is BatchNorm1d)
                return norm.forward(x.reshape(x.shape[0], -1)).reshape(x.shape);
            return norm.forward(x);
        }
    }
}
