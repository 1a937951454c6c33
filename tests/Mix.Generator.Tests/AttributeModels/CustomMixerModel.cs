using Mix;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Generator.Tests.AttributeModels;

/// <summary>A C# mixer with a weight and a .mix parameter: x · gate · w (per channel).</summary>
[Mixer("gated_channels", "gate: float = 0.5", "(x: [B, dim, H, W]) -> [B, dim, H, W]")]
public sealed class GatedChannels : nn.Module<Tensor, Tensor>
{
    /// <summary>The gate it was built with.</summary>
    public double Gate { get; }

    /// <summary>The per-channel weight (key <c>weight</c>).</summary>
    public readonly TorchSharp.Modules.Parameter weight;

    public GatedChannels(long dim, double gate = 0.5) : base(nameof(GatedChannels))
    {
        Gate = gate;
        weight = nn.Parameter(torch.ones(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * weight.view(1, -1, 1, 1) * Gate;
}

/// <summary>A small MetaFormer whose first stage uses the C# mixer above.</summary>
[MetaFormerModel(NumClasses = 10)]
[MetaFormerStage(1, 16, Mixer = "gated_channels(gate = 0.25)")]
[MetaFormerStage(1, 32)]
public partial class TinyGatedFormer { }
