using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// MLP-Mixer block as timm's <c>MixerBlock</c>:
    /// <c>x = x + drop_path(mlp_tokens(norm1(x)ᵀ)ᵀ)</c> (token mixing over the sequence axis on the transposed tokens),
    /// then <c>x = x + drop_path(mlp_channels(norm2(x)))</c>. Hidden widths are <c>int(tokenMlpRatio·dim)</c> and
    /// <c>int(channelMlpRatio·dim)</c> (timm <c>mlp_ratio=(0.5, 4.0)</c>); LayerNorm eps 1e-6.
    /// State-dict keys: <c>norm1.{weight,bias}</c>, <c>mlp_tokens.fc1/fc2.{weight,bias}</c>, <c>norm2.{weight,bias}</c>,
    /// <c>mlp_channels.fc1/fc2.{weight,bias}</c>.
    /// Shape contract: <c>[batch, seqLen, dim]</c> → <c>[batch, seqLen, dim]</c>.
    /// </summary>
    public sealed class MixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm norm1;
        private readonly MixerMlp mlp_tokens;
        private readonly MixerDropPath drop_path;
        private readonly LayerNorm norm2;
        private readonly MixerMlp mlp_channels;

        /// <summary>Number of tokens the block was built for.</summary>
        public long SeqLen { get; }

        /// <summary>Channel width.</summary>
        public long Dim { get; }

        /// <summary>Creates the block (timm <c>MixerBlock</c> arguments).</summary>
        /// <param name="dim">Channel width.</param>
        /// <param name="seqLen">Number of tokens (token-mixing MLP width).</param>
        /// <param name="tokenMlpRatio">Token MLP hidden = <c>int(tokenMlpRatio · dim)</c> (timm 0.5).</param>
        /// <param name="channelMlpRatio">Channel MLP hidden = <c>int(channelMlpRatio · dim)</c> (timm 4.0).</param>
        /// <param name="actLayer">MLP activation (default exact "gelu").</param>
        /// <param name="drop">Dropout inside the MLPs.</param>
        /// <param name="dropPath">Stochastic-depth probability.</param>
        /// <param name="normEps">LayerNorm epsilon (timm 1e-6).</param>
        public MixerBlock(long dim, long seqLen, double tokenMlpRatio = 0.5, double channelMlpRatio = 4.0,
            string actLayer = "gelu", double drop = 0.0, double dropPath = 0.0, double normEps = 1e-6)
            : base(nameof(MixerBlock))
        {
            if (dim <= 0) throw new ArgumentOutOfRangeException(nameof(dim));
            if (seqLen <= 0) throw new ArgumentOutOfRangeException(nameof(seqLen));
            Dim = dim;
            SeqLen = seqLen;
            long tokensDim = (long)(tokenMlpRatio * dim), channelsDim = (long)(channelMlpRatio * dim);
            norm1 = torch.nn.LayerNorm(dim, eps: normEps);
            mlp_tokens = new MixerMlp(seqLen, tokensDim, seqLen, actLayer, drop);
            drop_path = new MixerDropPath(dropPath);
            norm2 = torch.nn.LayerNorm(dim, eps: normEps);
            mlp_channels = new MixerMlp(dim, channelsDim, dim, actLayer, drop);
            RegisterComponents();
        }

        /// <summary>Applies token mixing then channel mixing, each with a residual.</summary>
        /// <param name="x">Input <c>[batch, seqLen, dim]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            if (x.dim() != 3 || x.shape[1] != SeqLen || x.shape[2] != Dim)
                throw new ArgumentException($"expected [batch, {SeqLen}, {Dim}], got [{string.Join(", ", x.shape)}]", nameof(x));
            using var scope = torch.NewDisposeScope();
            var tokens = mlp_tokens.forward(norm1.forward(x).transpose(1, 2)).transpose(1, 2);
            x = x + drop_path.forward(tokens);
            x = x + drop_path.forward(mlp_channels.forward(norm2.forward(x)));
            return x.MoveToOuterDisposeScope();
        }
    }
}
