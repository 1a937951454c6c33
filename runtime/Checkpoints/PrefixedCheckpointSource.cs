using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>The tensors of <paramref name="inner"/> whose names start with a prefix, under their names without it (a
/// task model's checkpoint, <c>model.encoder...</c> + <c>head...</c>, read as its base model's <c>encoder...</c>).</summary>
internal sealed class PrefixedCheckpointSource(ICheckpointSource inner, string prefix) : ICheckpointSource
{
    private readonly IReadOnlyList<string> _names = inner.Names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
        .Select(n => n.Substring(prefix.Length)).OrderBy(n => n, StringComparer.Ordinal).ToList();

    public string Path => inner.Path;

    public IReadOnlyList<string> Names => _names;

    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info) => inner.TryGetInfo(prefix + name, out info);

    public torch.Tensor Read(string name, torch.Device? device = null) => inner.Read(prefix + name, device);

    public void Dispose() => inner.Dispose();
}
