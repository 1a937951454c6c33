using System;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>A hand-built model decoded through <see cref="Mix.Runtime.Caches.CausalModel"/> as generated code is: an
/// embedding, a causal attention and a Mamba mixer reached through <see cref="MixDispatch.TokenMixer"/>, a head.
/// <see cref="FailAfterMixers"/> makes the next forward throw after both mixers updated their slots.</summary>
internal sealed class TinyMixLM : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed = nn.Embedding(30, 16);
    private readonly Attention attn = new(16, headDim: 8, causal: true);
    private readonly MambaMixer mamba = new(16, stateSize: 4, convKernel: 3);
    private readonly Linear head = nn.Linear(16, 30);

    public TinyMixLM() : base(nameof(TinyMixLM)) => RegisterComponents();

    public bool FailAfterMixers { get; set; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var h = embed.forward(ids);
        h = h + MixDispatch.TokenMixer(attn, h);
        h = h + MixDispatch.TokenMixer(mamba, h);
        if (FailAfterMixers) throw new InvalidOperationException("injected failure after the mixers ran");
        return head.forward(h).MoveToOuterDisposeScope();
    }
}
