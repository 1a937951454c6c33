using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerPatchify</c>: drops the first <c>context_length - (patch_length + patch_stride·(num_patches-1))</c>
    /// steps and cuts the rest into <c>num_patches</c> windows of <c>patch_length</c> every <c>patch_stride</c> steps.
    /// No parameters. Shape contract: <c>[batch, context_length, channels]</c> →
    /// <c>[batch, channels, num_patches, patch_length]</c>.
    /// </summary>
    public sealed class PatchTSMixerPatchify : torch.nn.Module<Tensor, Tensor>
    {
        private readonly long sequenceLength;
        private readonly long patchLength;
        private readonly long patchStride;
        private readonly long sequenceStart;

        /// <summary>Number of patches.</summary>
        public long NumPatches { get; }

        /// <summary>Creates the patcher.</summary>
        /// <param name="config">Configuration (<c>context_length</c>, <c>patch_length</c>, <c>patch_stride</c>).</param>
        public PatchTSMixerPatchify(PatchTSMixerConfig config) : base(nameof(PatchTSMixerPatchify))
        {
            sequenceLength = config.ContextLength;
            patchLength = config.PatchLength;
            patchStride = config.PatchStride;
            if (sequenceLength <= patchLength)
                throw new ArgumentException($"Sequence length ({sequenceLength}) has to be greater than the patch length ({patchLength})");
            NumPatches = (Math.Max(sequenceLength, patchLength) - patchLength) / patchStride + 1;
            sequenceStart = sequenceLength - (patchLength + patchStride * (NumPatches - 1));
        }

        /// <summary>Patchifies.</summary>
        /// <param name="pastValues">Input <c>[batch, context_length, channels]</c>.</param>
        public override Tensor forward(Tensor pastValues)
        {
            if (pastValues.dim() != 3 || pastValues.shape[1] != sequenceLength)
                throw new ArgumentException($"Input sequence length ({(pastValues.dim() > 1 ? pastValues.shape[1] : -1)}) doesn't match model configuration ({sequenceLength}).", nameof(pastValues));
            using var scope = torch.NewDisposeScope();
            var o = pastValues.narrow(1, sequenceStart, sequenceLength - sequenceStart);
            o = o.unfold(1, patchLength, patchStride);        // [batch, num_patches, channels, patch_length]
            return o.transpose(1, 2).contiguous().MoveToOuterDisposeScope();
        }
    }
}
