using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>A token mixer value (<c>pool(3)</c>, <c>sepconv()</c>): makes a mixer layer for a channel count.</summary>
/// <param name="dim">Channels (the mixer's implicit <c>dim</c>).</param>
public delegate nn.Module<Tensor, Tensor> MixerFactory(long dim);

/// <summary>A norm value (<c>layernorm</c>, <c>groupnorm1</c>): makes a norm layer for a channel count.</summary>
/// <param name="dim">Channels.</param>
public delegate nn.Module<Tensor, Tensor> NormFactory(long dim);

/// <summary>An activation value (<c>gelu</c>, <c>starrelu(scale_value = 0.8)</c>): makes an activation layer.</summary>
public delegate nn.Module<Tensor, Tensor> ActFactory();

/// <summary>A block value: makes a block layer for a channel count.</summary>
/// <param name="dim">Channels.</param>
public delegate nn.Module<Tensor, Tensor> BlockFactory(long dim);
