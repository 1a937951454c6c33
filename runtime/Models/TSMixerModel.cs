using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// TSMixer forecaster (google-research <c>tsmixer</c> <c>build_model</c>): <c>nBlock</c> <see cref="TSMixerBlock"/>s,
    /// then the temporal projection — a dense layer over the time axis on the transposed activations mapping
    /// <c>L → predLen</c>. Optional target slice selects output channels before the projection (reference
    /// <c>target_slice</c>).
    /// State-dict keys: <c>blocks.N.*</c> (see <see cref="TSMixerBlock"/>), <c>temporal_projection.{weight,bias}</c>
    /// <c>[predLen, L]</c>.
    /// Shape contract: <c>[batch, seqLen, numFeatures]</c> → <c>[batch, predLen, numTargets]</c> (numTargets =
    /// numFeatures without a target slice).
    /// </summary>
    public sealed class TSMixerModel : torch.nn.Module<Tensor, Tensor>
    {
        private readonly ModuleList<TSMixerBlock> blocks;
        private readonly Linear temporal_projection;

        private readonly long targetStart;
        private readonly long targetLength;

        /// <summary>Forecast horizon.</summary>
        public long PredLen { get; }

        /// <summary>Creates the model.</summary>
        /// <param name="seqLen">Input length L.</param>
        /// <param name="numFeatures">Number of input features C.</param>
        /// <param name="predLen">Forecast horizon.</param>
        /// <param name="nBlock">Number of mixer blocks (reference default 2).</param>
        /// <param name="ffDim">Feature MLP width (reference default 2048).</param>
        /// <param name="normType">"B" (batch norm, default) or "L" (layer norm).</param>
        /// <param name="activation">"relu" (default), "gelu" or "silu".</param>
        /// <param name="dropout">Dropout rate (reference default 0.05).</param>
        /// <param name="targetSliceStart">First output channel kept (reference <c>target_slice</c>); 0 by default.</param>
        /// <param name="targetSliceLength">Number of output channels kept; ≤ 0 keeps all from the start.</param>
        public TSMixerModel(long seqLen, long numFeatures, long predLen, int nBlock = 2, long ffDim = 2048,
            string normType = "B", string activation = "relu", double dropout = 0.05, long targetSliceStart = 0,
            long targetSliceLength = -1)
            : base(nameof(TSMixerModel))
        {
            if (predLen <= 0) throw new ArgumentOutOfRangeException(nameof(predLen));
            if (nBlock < 0) throw new ArgumentOutOfRangeException(nameof(nBlock));
            if (targetSliceStart < 0 || targetSliceStart >= numFeatures) throw new ArgumentOutOfRangeException(nameof(targetSliceStart));
            PredLen = predLen;
            targetStart = targetSliceStart;
            targetLength = targetSliceLength > 0 ? targetSliceLength : numFeatures - targetSliceStart;
            if (targetStart + targetLength > numFeatures) throw new ArgumentOutOfRangeException(nameof(targetSliceLength));
            blocks = new ModuleList<TSMixerBlock>(Enumerable.Range(0, nBlock)
                .Select(_ => new TSMixerBlock(seqLen, numFeatures, ffDim, normType, activation, dropout)).ToArray());
            temporal_projection = torch.nn.Linear(seqLen, predLen);
            RegisterComponents();
        }

        /// <summary>Forecasts <c>predLen</c> steps.</summary>
        /// <param name="x">History <c>[batch, seqLen, numFeatures]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            foreach (var block in blocks) x = block.forward(x);
            if (targetStart != 0 || targetLength != x.shape[2]) x = x.narrow(2, targetStart, targetLength);
            var y = temporal_projection.forward(x.transpose(1, 2)).transpose(1, 2);
            return y.MoveToOuterDisposeScope();
        }
    }
}
