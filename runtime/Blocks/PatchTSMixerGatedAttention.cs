using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime
{
    /// <summary>
    /// HF <c>PatchTSMixerGatedAttention</c>: <c>x ⊙ softmax(attn_layer(x), dim=-1)</c>.
    /// State-dict keys: <c>attn_layer.{weight,bias}</c>. Shape contract: <c>[..., inSize]</c> → <c>[..., inSize]</c>
    /// (requires <c>outSize = inSize</c>, as every HF use does).
    /// </summary>
    public sealed class PatchTSMixerGatedAttention : torch.nn.Module<Tensor, Tensor>
    {
        private readonly Linear attn_layer;

        /// <summary>Creates the gate.</summary>
        /// <param name="inSize">Input width.</param>
        /// <param name="outSize">Output width of the gate logits (equal to <paramref name="inSize"/>).</param>
        public PatchTSMixerGatedAttention(long inSize, long outSize) : base(nameof(PatchTSMixerGatedAttention))
        {
            attn_layer = torch.nn.Linear(inSize, outSize);
            RegisterComponents();
        }

        /// <summary>Gates the input.</summary>
        /// <param name="inputs">Input <c>[..., inSize]</c>.</param>
        public override Tensor forward(Tensor inputs)
        {
            using var scope = torch.NewDisposeScope();
            var w = torch.nn.functional.softmax(attn_layer.forward(inputs), -1);
            return (inputs * w).MoveToOuterDisposeScope();
        }
    }
}
