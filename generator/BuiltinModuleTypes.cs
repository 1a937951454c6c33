using System.Collections.Generic;

namespace Mix.Generator;

/// <summary>
/// The module type each built-in layer's factory (<c>Mix.Runtime.Builtins.Builtin</c>) returns, where it is always one
/// type: a generated field holding such a layer is declared with it, so <c>model.head.weight</c> needs no cast. Built-ins
/// whose factory returns different types (<c>scale</c> is an Identity without a value, <c>adaptive_avg_pool</c> adds a
/// Flatten, weightless functions) and activations stay <c>nn.Module&lt;Tensor, Tensor&gt;</c>. Qualified names: a user's
/// block may be named like one of these classes. Generator tests hold every entry to the factory's return type.
/// </summary>
public static class BuiltinModuleTypes
{
    static readonly Dictionary<string, string> s_types = new()
    {
        ["linear"] = "Mix.Runtime.QuantizableLinear",
        ["conv1d"] = "TorchSharp.Modules.Conv1d",
        ["conv2d"] = "TorchSharp.Modules.Conv2d",
        ["conv_transpose2d"] = "TorchSharp.Modules.ConvTranspose2d",
        ["embedding"] = "TorchSharp.Modules.Embedding",
        ["layernorm"] = "TorchSharp.Modules.LayerNorm",
        ["layernorm_nd"] = "TorchSharp.Modules.LayerNorm",
        ["batchnorm2d"] = "TorchSharp.Modules.BatchNorm2d",
        ["dropout"] = "TorchSharp.Modules.Dropout",
        ["layernorm_nobias"] = "Mix.Runtime.LayerNormNoBias",
        ["layernorm2d"] = "Mix.Runtime.LayerNorm2d",
        ["layernorm2d_nobias"] = "Mix.Runtime.LayerNorm2dNoBias",
        ["groupnorm1"] = "Mix.Runtime.GroupNorm1",
        ["groupnorm1_nobias"] = "Mix.Runtime.GroupNorm1NoBias",
        ["rmsnorm"] = "Mix.Runtime.RMSNorm",
        ["mlp"] = "Mix.Runtime.Mlp",
        ["conv_mlp"] = "Mix.Runtime.Mlp",
        ["swiglu"] = "Mix.Runtime.SwiGLU",
        ["mlp_head"] = "Mix.Runtime.MlpHead",
        ["pool"] = "Mix.Runtime.Pooling",
        ["sepconv"] = "Mix.Runtime.SepConv",
        ["attention"] = "Mix.Runtime.Attention",
        ["random_mixing"] = "Mix.Runtime.RandomMixing",
        ["global_filter"] = "Mix.Runtime.GlobalFilter",
        ["afno"] = "Mix.Runtime.AFNO2D",
        ["aff"] = "Mix.Runtime.AdaptiveFrequencyFilter",
        ["mamba"] = "Mix.Runtime.MambaMixer",
    };

    /// <summary>Every built-in with a fixed module type, and that type.</summary>
    public static IReadOnlyDictionary<string, string> All => s_types;

    /// <summary>The module type of <paramref name="builtin"/>'s layers, or null when it is not always one type.</summary>
    public static string? Of(string builtin) => s_types.TryGetValue(builtin, out var t) ? t : null;
}
