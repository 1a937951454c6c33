using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerMLP</c>: <c>dropout2(fc2(dropout1(gelu(fc1(x)))))</c> with hidden width
    /// <c>in_features · expansion_factor</c>. State-dict keys: <c>fc1.{weight,bias}</c>, <c>fc2.{weight,bias}</c>.
    /// Shape contract: <c>[..., inFeatures]</c> → <c>[..., outFeatures]</c>.
    /// </summary>
    public sealed class PatchTSMixerMLP : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Linear fc1;
        private readonly Dropout dropout1;
        private readonly Linear fc2;
        private readonly Dropout dropout2;

        /// <summary>Creates the MLP.</summary>
        /// <param name="inFeatures">Input width.</param>
        /// <param name="outFeatures">Output width.</param>
        /// <param name="config">Configuration (<c>expansion_factor</c>, <c>dropout</c>).</param>
        public PatchTSMixerMLP(long inFeatures, long outFeatures, PatchTSMixerConfig config) : base(nameof(PatchTSMixerMLP))
        {
            long hidden = inFeatures * config.ExpansionFactor;
            fc1 = torch.nn.Linear(inFeatures, hidden);
            dropout1 = torch.nn.Dropout(config.Dropout);
            fc2 = torch.nn.Linear(hidden, outFeatures);
            dropout2 = torch.nn.Dropout(config.Dropout);
            RegisterComponents();
        }

        /// <summary>Applies the MLP on the last axis.</summary>
        /// <param name="inputs">Input <c>[..., inFeatures]</c>.</param>
        public override Tensor forward(Tensor inputs)
        {
            using var scope = torch.NewDisposeScope();
            var h = dropout1.forward(torch.nn.functional.gelu(fc1.forward(inputs)));
            return dropout2.forward(fc2.forward(h)).MoveToOuterDisposeScope();
        }
    }
}
