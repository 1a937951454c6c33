using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// Mamba language model as Hugging Face <c>MambaForCausalLM</c>: a <see cref="MambaModel"/> <c>backbone</c> and a
    /// bias-free <c>lm_head</c> whose weight is tied to <c>backbone.embeddings.weight</c> by default (the same
    /// <see cref="Parameter"/> object; both keys appear in the state dict, as in PyTorch).
    /// Shape contract: token ids <c>[batch, L]</c> (int64) → logits <c>[batch, L, vocabSize]</c> (float32).
    /// </summary>
    public sealed class MambaForCausalLM : torch.nn.Module<Tensor, Tensor>, ICausalLM
    {
        private readonly MambaModel backbone;
        private readonly Linear lm_head;

        /// <summary>The backbone.</summary>
        public MambaModel Backbone => backbone;

        /// <summary>The output projection <c>[vocabSize, hiddenSize]</c>.</summary>
        public Linear LmHead => lm_head;

        /// <summary>Whether <c>lm_head.weight</c> is the embedding matrix.</summary>
        public bool TieWordEmbeddings { get; }

        /// <summary>Creates the model with the hyper-parameters of HF <c>MambaConfig</c>.</summary>
        /// <param name="vocabSize">Vocabulary size (HF <c>vocab_size</c>).</param>
        /// <param name="hiddenSize">Model width (HF <c>hidden_size</c>).</param>
        /// <param name="stateSize">SSM state size (HF <c>state_size</c>).</param>
        /// <param name="numHiddenLayers">Number of blocks (HF <c>num_hidden_layers</c>).</param>
        /// <param name="layerNormEpsilon">RMSNorm epsilon (HF <c>layer_norm_epsilon</c>).</param>
        /// <param name="expand">Expansion factor (HF <c>expand</c>).</param>
        /// <param name="convKernel">Conv kernel (HF <c>conv_kernel</c>).</param>
        /// <param name="useBias">Bias in in/out projections (HF <c>use_bias</c>).</param>
        /// <param name="useConvBias">Bias in conv1d (HF <c>use_conv_bias</c>).</param>
        /// <param name="hiddenAct">Mixer activation (HF <c>hidden_act</c>).</param>
        /// <param name="initializerRange">Std of the embedding initialisation (HF <c>initializer_range</c>).</param>
        /// <param name="residualInFp32">Keep residuals in float32 (HF <c>residual_in_fp32</c>).</param>
        /// <param name="timeStepRank">Rank of <c>dt_proj</c>; ≤ 0 = auto.</param>
        /// <param name="tieWordEmbeddings">Tie <c>lm_head.weight</c> to the embeddings (HF <c>tie_word_embeddings</c>, default true).</param>
        public MambaForCausalLM(long vocabSize = 50280, long hiddenSize = 768, long stateSize = 16,
            long numHiddenLayers = 32, double layerNormEpsilon = 1e-5, long expand = 2, long convKernel = 4,
            bool useBias = false, bool useConvBias = true, string hiddenAct = "silu", double initializerRange = 0.1,
            bool residualInFp32 = true, long timeStepRank = -1, bool tieWordEmbeddings = true)
            : base(nameof(MambaForCausalLM))
        {
            TieWordEmbeddings = tieWordEmbeddings;
            backbone = new MambaModel(vocabSize, hiddenSize, stateSize, numHiddenLayers, layerNormEpsilon, expand,
                convKernel, useBias, useConvBias, hiddenAct, initializerRange, residualInFp32, timeStepRank);
            lm_head = torch.nn.Linear(hiddenSize, vocabSize, hasBias: false);
            if (tieWordEmbeddings)
            {
                var old = lm_head.weight;
                lm_head.weight = backbone.Embeddings.weight!;
                old?.Dispose();
            }
            else
            {
                using (torch.no_grad()) lm_head.weight!.normal_(0.0, initializerRange);
            }
            RegisterComponents();
        }

        /// <summary>
        /// The trainable parameters, listing the tied <c>lm_head.weight</c>/<c>backbone.embeddings.weight</c> matrix once
        /// (as PyTorch does), so that optimizers update it once per step. The state dict still has both keys.
        /// </summary>
        /// <param name="recurse">Include sub-modules' parameters.</param>
        public override IEnumerable<Parameter> parameters(bool recurse = true)
        {
            if (!TieWordEmbeddings) return base.parameters(recurse);
            return named_parameters(recurse).Where(np => np.name != "lm_head.weight").Select(np => np.parameter).ToList();
        }

        /// <summary>Computes next-token logits.</summary>
        /// <param name="inputIds">Token ids <c>[batch, L]</c> (int64).</param>
        public override Tensor forward(Tensor inputIds)
        {
            using var scope = torch.NewDisposeScope();
            var h = backbone.forward(inputIds);
            var logits = lm_head.forward(h.to_type(lm_head.weight!.dtype)).to_type(ScalarType.Float32);
            return logits.MoveToOuterDisposeScope();
        }

        /// <inheritdoc/>
        public long VocabSize => backbone.VocabSize;

        /// <inheritdoc/>
        public InferenceCache CreateCache(long batch, KvCacheOptions? kvOptions = null) => backbone.CreateCache(batch);

        /// <summary>Cache-aware logits of <c>n</c> new tokens: ids <c>[batch, n]</c> → <c>[batch, n, vocabSize]</c> (float32).</summary>
        /// <param name="inputIds">New token ids.</param>
        /// <param name="cache">Cache from <see cref="CreateCache"/>.</param>
        /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask.</param>
        /// <remarks>Checked first and transactional: a refused or failed step leaves every slot as it was (see
        /// <see cref="InferenceCache.CheckStep(Tensor, Tensor?, long, string)"/> and <see cref="InferenceCache.BeginStep"/>).</remarks>
        public Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null)
        {
            backbone.CheckStep(inputIds, cache, attentionMask);
            using var step = cache.BeginStep();
            using var scope = torch.NewDisposeScope();
            var h = backbone.ForwardCore(inputIds, cache, attentionMask);
            var logits = lm_head.forward(h.to_type(lm_head.weight!.dtype)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
            step.Commit();
            return logits;
        }

        /// <summary>
        /// Logits and the HF causal-LM loss: cross-entropy of <c>logits[:, :-1]</c> against <c>labels[:, 1:]</c>
        /// (labels are shifted inside, positions labelled -100 are ignored).
        /// </summary>
        /// <param name="inputIds">Token ids <c>[batch, L]</c>.</param>
        /// <param name="labels">Labels <c>[batch, L]</c> (usually the input ids).</param>
        public (Tensor logits, Tensor loss) ForwardWithLoss(Tensor inputIds, Tensor labels)
        {
            using var scope = torch.NewDisposeScope();
            ArgumentNullException.ThrowIfNull(labels);
            if (!labels.shape.SequenceEqual(inputIds.shape))
                throw new ArgumentException($"labels must have the shape of the ids [{string.Join(", ", inputIds.shape)}], got [{string.Join(", ", labels.shape)}]", nameof(labels));
            using (var valid = labels.ne(-100))
            using (var kept = labels.masked_select(valid))
                TokenIds.Check(kept.to_type(ScalarType.Int64), VocabSize, "the labels (-100 = ignored)");
            var logits = forward(inputIds);
            long L = logits.shape[1];
            if (L < 2) throw new ArgumentException("need at least two positions to compute a shifted loss", nameof(inputIds));
            var shiftLogits = logits.narrow(1, 0, L - 1).reshape(-1, logits.shape[2]);
            var shiftLabels = labels.narrow(1, 1, L - 1).reshape(-1).to_type(ScalarType.Int64);
            var loss = torch.nn.functional.cross_entropy(shiftLogits, shiftLabels, ignore_index: -100);
            return (logits.MoveToOuterDisposeScope(), loss.MoveToOuterDisposeScope());
        }
    }
}
