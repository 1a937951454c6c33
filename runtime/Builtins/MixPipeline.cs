using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// An anonymous <c>{ a = ...; b = ... }</c> block of .mix: named layers (their names are the state-dict key
/// segments) applied in declaration order.
/// </summary>
public sealed class MixPipeline : nn.Module<Tensor, Tensor>
{
    readonly List<nn.Module<Tensor, Tensor>> _layers = new();

    /// <summary>Creates a pipeline of named layers.</summary>
    public MixPipeline(params (string Name, nn.Module<Tensor, Tensor> Layer)[] layers) : base("Pipeline")
    {
        foreach (var (name, layer) in layers)
        {
            if (name.Contains('.')) MixKeys.Register(this, name, layer); // @key("a.b") inside the block
            else register_module(name, layer);
            _layers.Add(layer);
        }
    }

    /// <summary>The layers in order.</summary>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> Layers => _layers;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        foreach (var layer in _layers) x = layer.call(x);
        return x;
    }
}

/// <summary>A sequence of layers (<c>blocks = depth x block(...)</c>) keyed <c>0</c>, <c>1</c>, … and applied in order.</summary>
public sealed class MixSequence : nn.Module<Tensor, Tensor>
{
    readonly List<nn.Module<Tensor, Tensor>> _layers = new();

    /// <summary>Creates a sequence.</summary>
    public MixSequence(IEnumerable<nn.Module<Tensor, Tensor>> layers) : base("Sequence")
    {
        foreach (var layer in layers)
        {
            register_module(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
            _layers.Add(layer);
        }
    }

    /// <summary>The layers in order.</summary>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> Layers => _layers;

    /// <summary>The i-th layer.</summary>
    public nn.Module<Tensor, Tensor> this[long i] => _layers[(int)i];

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        // Decoding under a cache: the fused runtime may replay a stack of fused steps as one CUDA graph.
        if (Caches.CacheScope.Current is not null && MixDispatch.FusedEnabled && MixDispatch.FusedCachedSequence is { } stack
            && x.is_cuda && stack(this, x) is Tensor y) return y;
        foreach (var layer in _layers) x = layer.call(x);
        return x;
    }
}
