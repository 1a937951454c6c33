using System;
using Mix.Runtime;
using Mix.Runtime.Caches;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests
{
    /// <summary>
    /// A test model (runtime models live in the zoo): a Mamba residual block as Hugging Face <c>MambaBlock</c>: <c>out = residual + mixer(norm(x))</c>, where the
    /// residual is cast to float32 when <c>residualInFp32</c> (HF <c>residual_in_fp32</c>).
    /// State-dict keys: <c>norm.weight</c>, <c>mixer.*</c> (see <see cref="MambaMixer"/>).
    /// Shape contract: <c>[batch, L, hiddenSize]</c> → <c>[batch, L, hiddenSize]</c>.
    /// </summary>
    public sealed class MambaBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly RMSNorm norm;
        private readonly MambaMixer mixer;

        /// <summary>Whether the residual stream is kept in float32.</summary>
        public bool ResidualInFp32 { get; }

        /// <summary>The block's mixer.</summary>
        public MambaMixer Mixer => mixer;

        /// <summary>The block's pre-norm.</summary>
        public RMSNorm Norm => norm;

        /// <summary>Creates a block with the hyper-parameters of HF <c>MambaConfig</c>.</summary>
        /// <param name="hiddenSize">Model width (HF <c>hidden_size</c>).</param>
        /// <param name="stateSize">SSM state size (HF <c>state_size</c>).</param>
        /// <param name="convKernel">Causal conv kernel (HF <c>conv_kernel</c>).</param>
        /// <param name="expand">Expansion factor (HF <c>expand</c>).</param>
        /// <param name="timeStepRank">Rank of <c>dt_proj</c>; ≤ 0 = auto (<c>ceil(hidden_size/16)</c>).</param>
        /// <param name="useBias">Bias in <c>in_proj</c>/<c>out_proj</c> (HF <c>use_bias</c>).</param>
        /// <param name="useConvBias">Bias in <c>conv1d</c> (HF <c>use_conv_bias</c>).</param>
        /// <param name="hiddenAct">Mixer activation (HF <c>hidden_act</c>).</param>
        /// <param name="layerNormEpsilon">RMSNorm epsilon (HF <c>layer_norm_epsilon</c>).</param>
        /// <param name="residualInFp32">Keep the residual in float32 (HF <c>residual_in_fp32</c>).</param>
        /// <param name="layerIdx">Layer index (HF <c>layer_idx</c>).</param>
        public MambaBlock(long hiddenSize, long stateSize = 16, long convKernel = 4, long expand = 2,
            long timeStepRank = -1, bool useBias = false, bool useConvBias = true, string hiddenAct = "silu",
            double layerNormEpsilon = 1e-5, bool residualInFp32 = true, int layerIdx = 0)
            : base(nameof(MambaBlock))
        {
            ResidualInFp32 = residualInFp32;
            norm = new RMSNorm((int)hiddenSize, layerNormEpsilon);
            mixer = new MambaMixer(hiddenSize, stateSize, convKernel, expand, timeStepRank, useBias, useConvBias,
                hiddenAct, layerIdx);
            RegisterComponents();
        }

        /// <summary>Applies the block.</summary>
        /// <param name="hiddenStates">Input <c>[batch, L, hiddenSize]</c>.</param>
        public override Tensor forward(Tensor hiddenStates)
        {
            using var scope = torch.NewDisposeScope();
            var residual = hiddenStates;
            var h = norm.forward(hiddenStates.to_type(norm.weight.dtype));
            if (ResidualInFp32) residual = residual.to_type(ScalarType.Float32);
            h = mixer.forward(h);
            return (residual + h).MoveToOuterDisposeScope();
        }

        /// <summary>Cache-aware block forward for any number of new tokens (see <see cref="MambaMixer.Forward(Tensor, MambaCacheSlot, Tensor?)"/>).</summary>
        /// <param name="hiddenStates">New tokens <c>[batch, n, hiddenSize]</c>.</param>
        /// <param name="slot">The layer's cache slot.</param>
        /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask.</param>
        public Tensor Forward(Tensor hiddenStates, MambaCacheSlot slot, Tensor? attentionMask = null)
        {
            using var scope = torch.NewDisposeScope();
            var residual = hiddenStates;
            var h = norm.forward(hiddenStates.to_type(norm.weight.dtype));
            if (ResidualInFp32) residual = residual.to_type(ScalarType.Float32);
            h = mixer.Forward(h, slot, attentionMask);
            return (residual + h).MoveToOuterDisposeScope();
        }
    }
}
