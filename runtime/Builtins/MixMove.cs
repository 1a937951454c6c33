using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// What a generated module's <c>_toEpilog</c> override calls. TorchSharp's <c>Module.to(device or dtype)</c> gives each
/// module new Parameter and buffer objects (disposing the old ones) one module at a time, through the module's own
/// registrations and the fields or properties of the same names. A weight reached any other way goes stale: an
/// alias model's registrations of the aliased module's weights, and a <c>@tied</c> Parameter, which the first of its
/// layers to move replaces and disposes under the others. PyTorch keeps the Parameter objects and swaps their data
/// instead, so in Python neither case arises.
/// </summary>
public static class MixMove
{
    /// <summary>Moves <paramref name="module"/> as <c>Module.to</c> would with the arguments TorchSharp gives
    /// <c>_toEpilog</c> (an alias model moves the module it aliases, whose forward reads its own fields).</summary>
    /// <param name="module">The module to move.</param>
    /// <param name="dtype">The element type, or null to keep it.</param>
    /// <param name="device">The device, or null to keep it.</param>
    /// <param name="nonBlocking">TorchSharp's <c>non_blocking</c>.</param>
    public static void To(nn.Module module, ScalarType? dtype, Device? device, bool nonBlocking)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (device is null) module.to(dtype ?? throw new ArgumentNullException(nameof(dtype), "neither a dtype nor a device"), nonBlocking);
        else if (dtype is null) module.to(device.type, device.index, nonBlocking);
        else module.to(device, dtype.Value, nonBlocking);
    }

    /// <summary>
    /// Before the move: each Parameter registered under several keys below <paramref name="root"/> stays with its
    /// first layer only; the others get an empty stand-in, so that the move copies the shared tensor once and no layer
    /// is left holding the one it disposed. <see cref="Retie"/> shares the moved Parameter again.
    /// </summary>
    /// <param name="root">The module whose body declares the ties (all their layers are below it).</param>
    /// <returns>The shared places, for <see cref="Retie"/>.</returns>
    public static TiedWeights Untie(nn.Module root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var places = new Dictionary<Parameter, List<(nn.Module Owner, string Name)>>(ReferenceEqualityComparer.Instance);
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        foreach (var module in new[] { root }.Concat(root.named_modules().Select(m => m.module)))
        {
            if (!seen.Add(module)) continue;   // one module at two keys is one place
            foreach (var (name, p) in module.named_parameters(recurse: false))
            {
                if (!places.TryGetValue(p, out var list)) places[p] = list = new();
                list.Add((module, name));
            }
        }
        var groups = places.Values.Where(l => l.Count > 1).Select(l => l.ToArray()).ToList();
        foreach (var group in groups)
        {
            var shared = group[0].Owner.named_parameters(recurse: false).First(p => p.name == group[0].Name).parameter;
            foreach (var (owner, name) in group.Skip(1))
                MixWeights.Install(owner, name, new Parameter(torch.empty(0, dtype: shared.dtype, device: shared.device), requires_grad: false));
        }
        return new TiedWeights(groups);
    }

    /// <summary>After the move: the first layer's moved Parameter becomes the others' again (their stand-ins are
    /// disposed).</summary>
    /// <param name="tied">What <see cref="Untie"/> returned.</param>
    public static void Retie(TiedWeights tied)
    {
        ArgumentNullException.ThrowIfNull(tied);
        foreach (var group in tied.Groups)
        {
            var shared = group[0].Owner.named_parameters(recurse: false).First(p => p.name == group[0].Name).parameter;
            foreach (var (owner, name) in group.Skip(1))
            {
                var standIn = owner.named_parameters(recurse: false).First(p => p.name == name).parameter;
                MixWeights.Install(owner, name, shared);
                if (!ReferenceEquals(standIn, shared)) standIn.Dispose();
            }
        }
    }
}

/// <summary>The layers that share each tied Parameter, first the one that keeps it while a module moves
/// (<see cref="MixMove.Untie"/>).</summary>
public sealed class TiedWeights
{
    internal TiedWeights(IReadOnlyList<(nn.Module Owner, string Name)[]> groups) => Groups = groups;

    internal IReadOnlyList<(nn.Module Owner, string Name)[]> Groups { get; }
}
