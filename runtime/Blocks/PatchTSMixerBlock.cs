using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerBlock</c>: <c>num_layers</c> <see cref="PatchTSMixerLayer"/>s in sequence.
    /// State-dict keys: <c>mixers.N.*</c>. Shape contract: <c>[batch, channels, num_patches, d_model]</c> → same shape.
    /// </summary>
    public sealed class PatchTSMixerBlock : torch.nn.Module<Tensor, Tensor>
    {
        private readonly ModuleList<PatchTSMixerLayer> mixers;

        /// <summary>Creates the stack.</summary>
        /// <param name="config">Configuration (<c>num_layers</c>, ...).</param>
        public PatchTSMixerBlock(PatchTSMixerConfig config) : base(nameof(PatchTSMixerBlock))
        {
            mixers = new ModuleList<PatchTSMixerLayer>(Enumerable.Range(0, config.NumLayers)
                .Select(_ => new PatchTSMixerLayer(config)).ToArray());
            RegisterComponents();
        }

        /// <summary>Applies all layers.</summary>
        /// <param name="hiddenState">Input <c>[batch, channels, num_patches, d_model]</c>.</param>
        public override Tensor forward(Tensor hiddenState)
        {
            using var scope = torch.NewDisposeScope();
            foreach (var m in mixers) hiddenState = m.forward(hiddenState);
            return hiddenState.MoveToOuterDisposeScope();
        }
    }
}
