using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerAttention</c> (eager, encoder self-attention without mask): multi-head scaled dot-product
    /// attention with <c>scaling = head_dim^-0.5</c>. State-dict keys: <c>k_proj</c>, <c>v_proj</c>, <c>q_proj</c>,
    /// <c>out_proj</c> (<c>.weight</c>, <c>.bias</c>). Shape contract: <c>[batch, L, embedDim]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerAttention : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Linear k_proj;
        private readonly Linear v_proj;
        private readonly Linear q_proj;
        private readonly Linear out_proj;
        private readonly Dropout attn_dropout;

        /// <summary>Number of heads.</summary>
        public long NumHeads { get; }

        /// <summary>Per-head width.</summary>
        public long HeadDim { get; }

        /// <summary>Creates the attention.</summary>
        /// <param name="embedDim">Model width.</param>
        /// <param name="numHeads">Number of heads (divides <paramref name="embedDim"/>).</param>
        /// <param name="dropout">Dropout on the attention weights (training only).</param>
        /// <param name="bias">Biases in the projections (default true).</param>
        public PatchTSMixerAttention(long embedDim, long numHeads, double dropout = 0.0, bool bias = true)
            : base(nameof(PatchTSMixerAttention))
        {
            if (numHeads <= 0 || embedDim % numHeads != 0)
                throw new ArgumentException($"embed_dim must be divisible by num_heads (got {embedDim} and {numHeads})");
            NumHeads = numHeads;
            HeadDim = embedDim / numHeads;
            k_proj = torch.nn.Linear(embedDim, embedDim, hasBias: bias);
            v_proj = torch.nn.Linear(embedDim, embedDim, hasBias: bias);
            q_proj = torch.nn.Linear(embedDim, embedDim, hasBias: bias);
            out_proj = torch.nn.Linear(embedDim, embedDim, hasBias: bias);
            attn_dropout = torch.nn.Dropout(dropout);
            RegisterComponents();
        }

        /// <summary>Self-attention over the sequence.</summary>
        /// <param name="hiddenStates">Input <c>[batch, L, embedDim]</c>.</param>
        public override Tensor forward(Tensor hiddenStates)
        {
            using var scope = torch.NewDisposeScope();
            long b = hiddenStates.shape[0], L = hiddenStates.shape[1];
            Tensor Heads(Tensor t) => t.view(b, L, NumHeads, HeadDim).transpose(1, 2);   // [b, h, L, hd]
            var q = Heads(q_proj.forward(hiddenStates));
            var k = Heads(k_proj.forward(hiddenStates));
            var v = Heads(v_proj.forward(hiddenStates));
            var weights = torch.matmul(q, k.transpose(2, 3)) * Math.Pow(HeadDim, -0.5);
            weights = attn_dropout.forward(torch.nn.functional.softmax(weights, -1));
            var o = torch.matmul(weights, v).transpose(1, 2).reshape(b, L, -1);
            return out_proj.forward(o).MoveToOuterDisposeScope();
        }
    }
}
