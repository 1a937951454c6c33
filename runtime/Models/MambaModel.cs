using System;
using Mix.Runtime.Caches;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// The Mamba backbone as Hugging Face <c>MambaModel</c>: token embeddings, <c>numHiddenLayers</c>
    /// <see cref="MambaBlock"/>s and a final <see cref="MambaRMSNorm"/>.
    /// State-dict keys: <c>embeddings.weight</c>, <c>layers.N.norm.weight</c>, <c>layers.N.mixer.*</c>, <c>norm_f.weight</c>.
    /// Shape contract: token ids <c>[batch, L]</c> (int64) → last hidden state <c>[batch, L, hiddenSize]</c>.
    /// </summary>
    public sealed class MambaModel : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Embedding embeddings;
        private readonly ModuleList<MambaBlock> layers;
        private readonly MambaRMSNorm norm_f;

        /// <summary>The token embedding table <c>[vocabSize, hiddenSize]</c>.</summary>
        public Embedding Embeddings => embeddings;

        /// <summary>The residual blocks.</summary>
        public ModuleList<MambaBlock> Layers => layers;

        /// <summary>The final RMSNorm (HF <c>norm_f</c>).</summary>
        public MambaRMSNorm NormF => norm_f;

        /// <summary>Vocabulary size.</summary>
        public long VocabSize { get; }

        /// <summary>Model width.</summary>
        public long HiddenSize { get; }

        /// <summary>Creates the backbone with the hyper-parameters of HF <c>MambaConfig</c>.</summary>
        /// <param name="vocabSize">Vocabulary size (HF <c>vocab_size</c>, default 50280).</param>
        /// <param name="hiddenSize">Model width (HF <c>hidden_size</c>, default 768).</param>
        /// <param name="stateSize">SSM state size (HF <c>state_size</c>, default 16).</param>
        /// <param name="numHiddenLayers">Number of blocks (HF <c>num_hidden_layers</c>, default 32).</param>
        /// <param name="layerNormEpsilon">RMSNorm epsilon (HF <c>layer_norm_epsilon</c>, default 1e-5).</param>
        /// <param name="expand">Expansion factor (HF <c>expand</c>, default 2).</param>
        /// <param name="convKernel">Conv kernel (HF <c>conv_kernel</c>, default 4).</param>
        /// <param name="useBias">Bias in in/out projections (HF <c>use_bias</c>, default false).</param>
        /// <param name="useConvBias">Bias in conv1d (HF <c>use_conv_bias</c>, default true).</param>
        /// <param name="hiddenAct">Mixer activation (HF <c>hidden_act</c>, default "silu").</param>
        /// <param name="initializerRange">Std of the embedding initialisation (HF <c>initializer_range</c>, default 0.1).</param>
        /// <param name="residualInFp32">Keep residuals in float32 (HF <c>residual_in_fp32</c>, default true).</param>
        /// <param name="timeStepRank">Rank of <c>dt_proj</c>; ≤ 0 = auto <c>ceil(hidden_size/16)</c> (HF "auto").</param>
        public MambaModel(long vocabSize = 50280, long hiddenSize = 768, long stateSize = 16, long numHiddenLayers = 32,
            double layerNormEpsilon = 1e-5, long expand = 2, long convKernel = 4, bool useBias = false,
            bool useConvBias = true, string hiddenAct = "silu", double initializerRange = 0.1,
            bool residualInFp32 = true, long timeStepRank = -1)
            : base(nameof(MambaModel))
        {
            if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize));
            if (numHiddenLayers < 0) throw new ArgumentOutOfRangeException(nameof(numHiddenLayers));
            VocabSize = vocabSize;
            HiddenSize = hiddenSize;
            embeddings = torch.nn.Embedding(vocabSize, hiddenSize);
            using (torch.no_grad()) embeddings.weight!.normal_(0.0, initializerRange);
            layers = new ModuleList<MambaBlock>(Enumerable.Range(0, (int)numHiddenLayers)
                .Select(i => new MambaBlock(hiddenSize, stateSize, convKernel, expand, timeStepRank, useBias, useConvBias,
                    hiddenAct, layerNormEpsilon, residualInFp32, i))
                .ToArray());
            norm_f = new MambaRMSNorm(hiddenSize, layerNormEpsilon);
            RegisterComponents();
        }

        /// <summary>Runs the backbone on token ids.</summary>
        /// <param name="inputIds">Token ids <c>[batch, L]</c> (int64).</param>
        public override Tensor forward(Tensor inputIds)
        {
            TokenIds.CheckBatch(inputIds, VocabSize, "embeddings");
            using var scope = torch.NewDisposeScope();
            return ForwardEmbeddings(embeddings.forward(inputIds)).MoveToOuterDisposeScope();
        }

        /// <summary>Runs the blocks and the final norm on given input embeddings (HF <c>inputs_embeds</c>).</summary>
        /// <param name="inputsEmbeds">Embeddings <c>[batch, L, hiddenSize]</c>.</param>
        public Tensor ForwardEmbeddings(Tensor inputsEmbeds)
        {
            using var scope = torch.NewDisposeScope();
            var h = inputsEmbeds;
            foreach (var layer in layers) h = layer.call(h); // call: hooks (AWQ block capture) see every block
            return norm_f.forward(h).MoveToOuterDisposeScope();
        }

        /// <summary>Creates an empty cache for this backbone: one <see cref="MambaCacheSlot"/> per layer.</summary>
        /// <param name="batch">Rows.</param>
        /// <param name="device">Device of the states (that of the embeddings when null).</param>
        public InferenceCache CreateCache(long batch, Device? device = null)
        {
            var dev = device ?? embeddings.weight!.device;
            var dtype = embeddings.weight!.dtype;
            return new InferenceCache(layers.Select((layer, i) => (CacheSlot)new MambaCacheSlot(i, batch,
                layer.Mixer.IntermediateSize, layer.Mixer.ConvKernel, layer.Mixer.StateSize, dtype, dev)));
        }

        /// <summary>Cache-aware forward of <c>n</c> new tokens <c>[batch, n]</c> → hidden states <c>[batch, n, hiddenSize]</c>.</summary>
        /// <param name="inputIds">New token ids <c>[batch, n]</c>.</param>
        /// <param name="cache">The cache from <see cref="CreateCache"/>.</param>
        /// <param name="attentionMask">Optional <c>[batch, n]</c> padding mask.</param>
        public Tensor Forward(Tensor inputIds, InferenceCache cache, Tensor? attentionMask = null)
        {
            ArgumentNullException.ThrowIfNull(cache);
            Caches.CacheLayout.Check(cache, layers.Count, _ => typeof(MambaCacheSlot));
            cache.CheckStep(inputIds, attentionMask, VocabSize, "embeddings");
            using var step = cache.BeginStep();
            var h = ForwardCore(inputIds, cache, attentionMask);
            step.Commit();
            return h;
        }

        /// <summary>The cached forward without checks or a step (the caller holds both).</summary>
        internal Tensor ForwardCore(Tensor inputIds, InferenceCache cache, Tensor? attentionMask)
        {
            using var scope = torch.NewDisposeScope();
            var h = embeddings.forward(inputIds);
            for (int i = 0; i < layers.Count; i++) h = layers[i].Forward(h, cache.Slot<MambaCacheSlot>(i), attentionMask);
            return norm_f.forward(h).MoveToOuterDisposeScope();
        }

        /// <summary>The checks of <see cref="Forward"/> (layout, ids, batch, mask) without running anything.</summary>
        internal void CheckStep(Tensor inputIds, InferenceCache cache, Tensor? attentionMask)
        {
            ArgumentNullException.ThrowIfNull(cache);
            Caches.CacheLayout.Check(cache, layers.Count, _ => typeof(MambaCacheSlot));
            cache.CheckStep(inputIds, attentionMask, VocabSize, "embeddings");
        }
    }
}
