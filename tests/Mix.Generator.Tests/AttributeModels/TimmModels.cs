using Mix;

namespace Mix.Generator.Tests.AttributeModels;

// MetaFormer models declared in C# alone (no .mix file): the generator builds them from these attributes. Each is a
// timm model, so its state dict must be timm's (tests/Mix.Runtime.Tests/Expected/*.keys.txt).

/// <summary>timm poolformer_s12: pooling, GroupNorm, GELU MLPs with bias, layer scale 1e-5, no res scale, linear head.</summary>
[MetaFormerModel(Mixer = "pool", Norm = "groupnorm1", DownsampleNorm = "identity", MlpAct = "gelu", MlpBias = true,
    LayerScale = 1e-5, ResScale = 0, MlpHead = false)]
[MetaFormerStage(2, 64)]
[MetaFormerStage(2, 128)]
[MetaFormerStage(6, 320)]
[MetaFormerStage(2, 512)]
public partial class PoolFormerS12 { }

/// <summary>timm convformer_s18: separable convolutions everywhere, timm's MetaFormer defaults otherwise.</summary>
[MetaFormerModel(Mixer = "sepconv")]
[MetaFormerStage(3, 64)]
[MetaFormerStage(3, 128)]
[MetaFormerStage(9, 320)]
[MetaFormerStage(3, 512)]
public partial class ConvFormerS18 { }

/// <summary>timm caformer_s18: convolutions, then attention channels-last with a LayerNorm over channels.</summary>
[MetaFormerModel(Mixer = "sepconv")]
[MetaFormerStage(3, 64)]
[MetaFormerStage(3, 128)]
[MetaFormerStage(9, 320, Mixer = "attention", ChannelsLast = true, Norm = "layernorm_nobias(eps = 1e-6)")]
[MetaFormerStage(3, 512, Mixer = "attention", ChannelsLast = true, Norm = "layernorm_nobias(eps = 1e-6)")]
internal partial class CaFormerS18 { }
