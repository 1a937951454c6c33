using System.Collections.Generic;
using System.Linq;

namespace Mix.Dsl.Semantics;

/// <summary>
/// One module in the tree a model builds: its state-dict name, what it is, its own weights and its children. The
/// keys of a model's state dict are the paths of its weights (<c>stages.0.blocks.1.token_mixer.pwconv1.weight</c>).
/// </summary>
public sealed class LayerNode
{
    readonly List<LayerNode> _children = new();
    readonly List<WeightInfo> _weights = new();

    internal LayerNode(string name, LayerNode? parent, string kind)
    {
        Name = name;
        Parent = parent;
        Kind = kind;
    }

    /// <summary>The local name (a state-dict key segment; "" for the root).</summary>
    public string Name { get; internal set; }
    /// <summary>The enclosing module.</summary>
    public LayerNode? Parent { get; }
    /// <summary>The definition or built-in it instantiates (<c>metaformer_block</c>, <c>conv2d</c>, <c>sequence</c>).</summary>
    public string Kind { get; }
    /// <summary>Child modules in registration order.</summary>
    public IReadOnlyList<LayerNode> Children => _children;
    /// <summary>Weights (parameters and buffers) owned directly.</summary>
    public IReadOnlyList<WeightInfo> Weights => _weights;
    /// <summary>Output shape of the first application, if applied.</summary>
    public Shape? OutputShape { get; internal set; }
    /// <summary>Whether the layer was applied at least once.</summary>
    public bool Used { get; internal set; }
    /// <summary>Whether the fused GPU path is turned off for this layer (<c>@fused(false)</c>).</summary>
    public bool FusedDisabled { get; internal set; }
    /// <summary>Whether the layer is declared only for its state-dict keys (<c>@unused("why")</c>): never applied, no MIX0109.</summary>
    public bool KeptUnused { get; internal set; }
    internal bool Expanded { get; set; }

    /// <summary>
    /// For a causal mixer, what its decoding cache holds per row, in elements: a KV cache grows per token, a
    /// recurrent (SSM + conv) state is fixed. Null for layers without a cache.
    /// </summary>
    public CacheFootprint? Cache { get; internal set; }

    /// <summary>Every cached layer below this node, with its path.</summary>
    public IEnumerable<(string Path, CacheFootprint Cache)> AllCaches()
    {
        if (Cache is { } c) yield return (Path, c);
        foreach (var child in _children)
            foreach (var x in child.AllCaches()) yield return x;
    }

    /// <summary>Dotted path from the root (the state-dict prefix).</summary>
    public string Path
    {
        get
        {
            var parts = new List<string>();
            for (var n = this; n is not null && n.Parent is not null; n = n.Parent)
                if (n.Name.Length > 0) parts.Add(n.Name);
            parts.Reverse();
            return string.Join(".", parts);
        }
    }

    internal LayerNode AddChild(string name, string kind)
    {
        var child = new LayerNode(name, this, kind);
        _children.Add(child);
        return child;
    }

    /// <summary>Gives this node a copy of <paramref name="source"/>'s weights, cache and subtree (not its name or
    /// place): a second instance of a checked block.</summary>
    internal void CopyContentsFrom(LayerNode source)
    {
        _weights.AddRange(source._weights);
        Cache = source.Cache;
        Expanded = source.Expanded;
        foreach (var child in source._children)
        {
            var copy = AddChild(child.Name, child.Kind);
            copy.OutputShape = child.OutputShape;
            copy.Used = child.Used;
            copy.FusedDisabled = child.FusedDisabled;
            copy.KeptUnused = child.KeptUnused;
            copy.CopyContentsFrom(child);
        }
    }

    internal void AddWeight(string name, IReadOnlyList<Dim> shape, bool isBuffer = false) =>
        _weights.Add(new WeightInfo(name, shape, isBuffer));

    /// <summary>Makes the weight <paramref name="name"/> share the one at <paramref name="key"/> (<c>@tied</c>).</summary>
    internal void Tie(string name, string key)
    {
        int i = _weights.FindIndex(w => w.Name == name);
        if (i >= 0) _weights[i] = _weights[i] with { TiedTo = key };
    }

    /// <summary>Every weight below this node with its full key, depth first in registration order.</summary>
    public IEnumerable<(string Key, WeightInfo Weight)> AllWeights()
    {
        var prefix = Path;
        foreach (var w in _weights) yield return (prefix.Length == 0 ? w.Name : prefix + "." + w.Name, w);
        foreach (var c in _children)
            foreach (var x in c.AllWeights()) yield return x;
    }

    /// <summary>Total number of parameter elements (buffers excluded, a tied weight counted once, as Hugging Face's
    /// <c>num_parameters</c> does), or null if some shape is symbolic.</summary>
    public long? ParameterCount()
    {
        long total = 0;
        foreach (var (_, w) in AllWeights())
        {
            if (w.IsBuffer || w.TiedTo is not null) continue;
            var n = w.ElementCount;
            if (n is null) return null;
            total += n.Value;
        }
        return total;
    }
}

/// <summary>A causal mixer's decoding cache, in elements per row: <see cref="PerToken"/> grows with the sequence
/// (keys and values), <see cref="Fixed"/> does not (recurrent and convolution state).</summary>
public sealed record CacheFootprint(string Kind, Dim PerToken, Dim Fixed)
{
    /// <summary>For a KV cache, features per head (quantized KV formats group along it); null otherwise.</summary>
    public Dim? HeadDim { get; init; }

    /// <summary>Bytes per row for <paramref name="tokens"/> tokens at <paramref name="bytesPerElement"/>, or null if symbolic.</summary>
    public long? Bytes(long tokens, int bytesPerElement = 4) =>
        PerToken.AsLong is long t && Fixed.AsLong is long f ? (t * tokens + f) * bytesPerElement : null;
}

/// <summary>A parameter or buffer: local name and shape.</summary>
public sealed record WeightInfo(string Name, IReadOnlyList<Dim> Shape, bool IsBuffer)
{
    /// <summary>The key of the weight this one shares (<c>@tied</c>), relative to the definition that declares the tie;
    /// null for a weight of its own. The state dict holds both keys.</summary>
    public string? TiedTo { get; init; }

    /// <summary>Number of elements, or null when symbolic.</summary>
    public long? ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape)
            {
                if (d.AsLong is not long l) return null;
                n *= l;
            }
            return n;
        }
    }

    /// <summary><c>[128, 64, 1, 1]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape.Select(d => d.ToString())) + "]";
}
