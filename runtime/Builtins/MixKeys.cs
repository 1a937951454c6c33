using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Registration under a dotted state-dict key (<c>@key("embeddings.word_embeddings")</c>, Hugging Face style
/// prefixes). TorchSharp refuses dots in a module name, so the key becomes nested modules: every segment but the
/// last is an existing child of that name or a new weightless <see cref="MixKeyPrefix"/>, and the layer is registered
/// under the last segment. The state dict then has exactly the dotted key.
/// </summary>
public static class MixKeys
{
    /// <summary>Registers <paramref name="child"/> in <paramref name="parent"/> under <paramref name="path"/>.</summary>
    /// <param name="parent">The module that owns the key.</param>
    /// <param name="path">A key such as <c>a.b.c</c> (no empty segment).</param>
    /// <param name="child">The layer.</param>
    public static void Register(nn.Module parent, string path, nn.Module child)
    {
        var segments = path.Split('.');
        if (segments.Any(s => s.Length == 0)) throw new ArgumentException($"key '{path}' has an empty segment", nameof(path));
        var owner = parent;
        for (int i = 0; i < segments.Length - 1; i++)
        {
            var name = segments[i];
            var existing = owner.named_children().FirstOrDefault(c => c.name == name).module;
            if (existing is null)
            {
                existing = new MixKeyPrefix();
                owner.register_module(name, existing);
            }
            owner = existing;
        }
        owner.register_module(segments[^1], child);
    }
}

/// <summary>A weightless module that only holds children: one segment of a dotted key.</summary>
public sealed class MixKeyPrefix : nn.Module
{
    /// <summary>Creates an empty prefix.</summary>
    public MixKeyPrefix() : base("KeyPrefix") { }
}
