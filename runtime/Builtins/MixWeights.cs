using System;
using System.Linq;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// Weight tying (<c>@tied(weight = "backbone.embeddings.weight") lm_head = linear(...)</c>): a layer's parameter
/// becomes the very Parameter object of another layer, as Hugging Face's <c>tie_weights</c> does. The state dict then
/// holds both keys for one tensor; an optimizer sees it once; a checkpoint load fills it from either key.
/// </summary>
public static class MixWeights
{
    /// <summary>The layer's own parameter (or buffer) <paramref name="name"/> (<c>conv1d.weight</c> in .mix).</summary>
    /// <param name="layer">A layer of the calling module.</param>
    /// <param name="name">The parameter's name in the layer.</param>
    /// <exception cref="ArgumentException">The layer has no such parameter.</exception>
    public static Tensor Get(nn.Module layer, string name) =>
        GetOptional(layer, name) ?? throw new ArgumentException($"{layer.GetType().Name} has no parameter '{name}'", nameof(name));

    /// <summary>The layer's own parameter <paramref name="name"/>, or null when it has none (<c>conv1d.bias</c> of a
    /// convolution without bias reads as <c>none</c>, as in PyTorch).</summary>
    /// <param name="layer">A layer of the calling module.</param>
    /// <param name="name">The parameter's name in the layer.</param>
    public static Tensor? GetOptional(nn.Module layer, string name)
    {
        ArgumentNullException.ThrowIfNull(layer);
        foreach (var (n, p) in layer.named_parameters(recurse: false))
            if (n == name) return p;
        // A generated block's buffer (`hyena_positional_embedding`'s t) reads the same way.
        foreach (var (n, b) in layer.named_buffers(recurse: false))
            if (n == name) return b;
        return null;
    }

    /// <summary>Makes the parameter at <paramref name="key"/> the same Parameter as the one at <paramref name="source"/>.</summary>
    /// <param name="root">The module both keys are relative to (registered children).</param>
    /// <param name="key">The tied parameter, e.g. <c>lm_head.weight</c>.</param>
    /// <param name="source">The parameter it shares, e.g. <c>backbone.embeddings.weight</c>.</param>
    /// <exception cref="ArgumentException">A key names no parameter, the shapes differ, or the layer cannot take a
    /// shared parameter (its module type has no settable property of that name).</exception>
    public static void Tie(nn.Module root, string key, string source)
    {
        ArgumentNullException.ThrowIfNull(root);
        var shared = root.named_parameters().FirstOrDefault(p => p.name == source).parameter
                     ?? throw new ArgumentException($"no parameter '{source}' to tie '{key}' to", nameof(source));
        int dot = key.LastIndexOf('.');
        var ownerPath = dot < 0 ? "" : key.Substring(0, dot);
        var name = key.Substring(dot + 1);
        var owner = ownerPath.Length == 0 ? root : root.named_modules().FirstOrDefault(m => m.name == ownerPath).module
                    ?? throw new ArgumentException($"no module '{ownerPath}' holds '{key}'", nameof(key));
        // A conditional layer that this configuration leaves out (`if bidirectional then ... else identity`) ties nothing.
        if (owner is TorchSharp.Modules.Identity) return;
        var own = owner.named_parameters(recurse: false).FirstOrDefault(p => p.name == name).parameter
                  ?? throw new ArgumentException($"no parameter '{key}' to tie", nameof(key));
        if (!own.shape.SequenceEqual(shared.shape))
            throw new ArgumentException($"'{key}' is [{string.Join(", ", own.shape)}] but '{source}' is [{string.Join(", ", shared.shape)}]", nameof(key));
        Install(owner, name, shared);
    }

    /// <summary>Makes <paramref name="parameter"/> the layer's parameter <paramref name="name"/>: its registration and
    /// whatever its forward reads (the layer's property, or a generated block's field).</summary>
    internal static void Install(nn.Module owner, string name, Parameter parameter)
    {
        // TorchSharp's layers read their own fields in forward, so the parameter goes through the layer's property
        // (Linear.weight, Embedding.weight, ...), which also re-registers it under the same name.
        var property = owner.GetType().GetProperty(name, BindingFlags.Public | BindingFlags.Instance);
        if (property is not null && property.CanWrite && property.PropertyType.IsAssignableFrom(typeof(Parameter)))
        {
            property.SetValue(owner, parameter);
            return;
        }
        // A generated .mix block keeps its param() weights in public readonly fields that its forward reads: the field
        // takes the shared Parameter and the registration follows it (hyena's one Sin module at several keys).
        // Its registered name is the field's, or its [ComponentName] where a @key renames it.
        var field = owner.GetType().GetFields(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(f => (f.GetCustomAttribute<TorchSharp.Utils.ComponentNameAttribute>()?.Name ?? f.Name) == name);
        if (field is null || field.FieldType != typeof(Parameter))
            throw new ArgumentException($"{owner.GetType().Name} has no settable parameter '{name}' to share", nameof(name));
        field.SetValue(owner, parameter);
        var register = typeof(nn.Module).GetMethods(BindingFlags.NonPublic | BindingFlags.Instance)
                           .FirstOrDefault(m => m.Name == "ConditionallyRegisterParameter" && m.GetParameters().Length == 2
                                                && m.GetParameters()[1].ParameterType == typeof(Parameter))
                       ?? throw new MissingMethodException("TorchSharp's nn.Module has no ConditionallyRegisterParameter(name, Parameter)");
        // Protected in TorchSharp: it replaces a registered parameter of the same name, as its layers' property setters do.
        register.Invoke(owner, new object[] { name, parameter });
    }
}
