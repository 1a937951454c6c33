using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// Two-layer MLP with the layout of timm's <c>Mlp</c> (used by <see cref="MixerBlock"/>):
    /// <c>fc2(drop1(act(fc1(x))))</c> followed by <c>drop2</c>. State-dict keys: <c>fc1.weight</c>, <c>fc1.bias</c>,
    /// <c>fc2.weight</c>, <c>fc2.bias</c>. Shape contract: <c>[..., inFeatures]</c> → <c>[..., outFeatures]</c>.
    /// </summary>
    public sealed class MixerMlp : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Linear fc1;
        private readonly torch.nn.Module<Tensor, Tensor> act;
        private readonly Dropout drop1;
        private readonly Linear fc2;
        private readonly Dropout drop2;

        /// <summary>Creates the MLP (timm <c>Mlp</c> arguments).</summary>
        /// <param name="inFeatures">Input width.</param>
        /// <param name="hiddenFeatures">Hidden width; ≤ 0 means <paramref name="inFeatures"/>.</param>
        /// <param name="outFeatures">Output width; ≤ 0 means <paramref name="inFeatures"/>.</param>
        /// <param name="actLayer">Activation: "gelu" (exact, default), "gelu_tanh", "relu" or "silu".</param>
        /// <param name="drop">Dropout probability after the activation and after <c>fc2</c>.</param>
        /// <param name="bias">Whether the linear layers have biases.</param>
        public MixerMlp(long inFeatures, long hiddenFeatures = -1, long outFeatures = -1, string actLayer = "gelu",
            double drop = 0.0, bool bias = true) : base(nameof(MixerMlp))
        {
            if (inFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(inFeatures));
            long hidden = hiddenFeatures > 0 ? hiddenFeatures : inFeatures;
            long output = outFeatures > 0 ? outFeatures : inFeatures;
            fc1 = torch.nn.Linear(inFeatures, hidden, hasBias: bias);
            act = CreateActivation(actLayer);
            drop1 = torch.nn.Dropout(drop);
            fc2 = torch.nn.Linear(hidden, output, hasBias: bias);
            drop2 = torch.nn.Dropout(drop);
            RegisterComponents();
        }

        /// <summary>Applies the MLP on the last axis.</summary>
        /// <param name="x">Input <c>[..., inFeatures]</c>.</param>
        public override Tensor forward(Tensor x)
        {
            using var scope = torch.NewDisposeScope();
            var h = drop1.forward(act.forward(fc1.forward(x)));
            return drop2.forward(fc2.forward(h)).MoveToOuterDisposeScope();
        }

        internal static torch.nn.Module<Tensor, Tensor> CreateActivation(string name) => name switch
        {
            "gelu" => torch.nn.GELU(),
            "gelu_tanh" => torch.nn.GELU(GELU.Approximate.tanh),
            "relu" => torch.nn.ReLU(),
            "silu" or "swish" => torch.nn.SiLU(),
            _ => throw new ArgumentException($"unsupported activation '{name}'", nameof(name)),
        };
    }
}
