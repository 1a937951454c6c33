using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>One recorded value: <see cref="Key"/> is the module's state-dict path and the .mix name
/// (<c>stages.0.blocks.1.mlp.balance_loss</c>), <see cref="Name"/> the .mix name alone, <see cref="Value"/> the scalar.</summary>
/// <param name="Key">Dotted key: the recording module's path in the model, then the name.</param>
/// <param name="Name">The name the <c>.mix</c> body gave (<c>aux_loss("balance_loss", ...)</c>).</param>
/// <param name="Value">The scalar of the latest forward (a loss keeps its autograd graph; a statistic is detached).</param>
public sealed record AuxValue(string Key, string Name, Tensor Value);

/// <summary>
/// The auxiliary losses and statistics of a forward, recorded by <c>aux_loss(name, value)</c> and
/// <c>aux_stat(name, value)</c> in <c>.mix</c> (a mixture of experts' load-balancing loss, a router's sparsity losses,
/// dropped tokens). Each generated module keeps the values of its latest forward under their names; after a forward,
/// <see cref="Losses"/> / <see cref="Stats"/> list a model's values with their module paths and <see cref="TotalLoss"/>
/// sums the losses (optionally weighted by name), to add to the task loss before <c>backward()</c>.
/// </summary>
/// <remarks>
/// A value is replaced by the module's next forward; a module that did not run keeps its previous values (call
/// <see cref="Clear"/> to drop them). The tensors are the forward's own: read them in the dispose scope the forward ran
/// in. A module applied twice in one forward keeps its second call's values.
/// </remarks>
public static class MixAux
{
    sealed class Entry
    {
        public readonly Dictionary<string, Tensor> Losses = new(StringComparer.Ordinal);
        public readonly Dictionary<string, Tensor> Stats = new(StringComparer.Ordinal);
    }

    static readonly ConditionalWeakTable<nn.Module, Entry> s_entries = new();

    /// <summary><c>aux_loss(name, value)</c>: records <paramref name="value"/> as <paramref name="module"/>'s loss
    /// <paramref name="name"/> and returns it.</summary>
    /// <param name="module">The generated module whose forward records it (<c>this</c>).</param>
    /// <param name="name">The .mix name.</param>
    /// <param name="value">A scalar.</param>
    public static Tensor Loss(nn.Module module, string name, Tensor value)
    {
        s_entries.GetOrCreateValue(module).Losses[name] = value;
        return value;
    }

    /// <summary><c>aux_stat(name, value)</c>: records <paramref name="value"/>, detached, as a statistic and returns it.</summary>
    /// <param name="module">The generated module whose forward records it (<c>this</c>).</param>
    /// <param name="name">The .mix name.</param>
    /// <param name="value">A scalar.</param>
    public static Tensor Stat(nn.Module module, string name, Tensor value)
    {
        s_entries.GetOrCreateValue(module).Stats[name] = value.detach();
        return value;
    }

    /// <summary>The losses recorded in <paramref name="model"/> and its submodules, in module order.</summary>
    /// <param name="model">Any module (usually the whole model).</param>
    public static IReadOnlyList<AuxValue> Losses(nn.Module model) => Collect(model, e => e.Losses);

    /// <summary>The statistics recorded in <paramref name="model"/> and its submodules, in module order.</summary>
    /// <param name="model">Any module (usually the whole model).</param>
    public static IReadOnlyList<AuxValue> Stats(nn.Module model) => Collect(model, e => e.Stats);

    /// <summary>The sum of the recorded losses, each times <paramref name="weight"/>(its name) (1 when null), or null
    /// when none was recorded.</summary>
    /// <param name="model">Any module (usually the whole model).</param>
    /// <param name="weight">A coefficient per .mix name (e.g. 0.01 for <c>balance_loss</c>); 0 leaves a loss out.</param>
    public static Tensor? TotalLoss(nn.Module model, Func<string, double>? weight = null)
    {
        Tensor? total = null;
        foreach (var v in Losses(model))
        {
            double w = weight?.Invoke(v.Name) ?? 1.0;
            if (w == 0) continue;
            var term = w == 1 ? v.Value : v.Value * w;
            total = total is null ? term : total + term;
        }
        return total;
    }

    /// <summary>Forgets every value recorded in <paramref name="model"/> and its submodules.</summary>
    /// <param name="model">Any module.</param>
    public static void Clear(nn.Module model)
    {
        foreach (var (_, m) in Modules(model)) s_entries.Remove(m);
    }

    static IReadOnlyList<AuxValue> Collect(nn.Module model, Func<Entry, Dictionary<string, Tensor>> pick)
    {
        var result = new List<AuxValue>();
        foreach (var (path, m) in Modules(model))
        {
            if (!s_entries.TryGetValue(m, out var entry)) continue;
            foreach (var (name, value) in pick(entry).OrderBy(kv => kv.Key, StringComparer.Ordinal))
                result.Add(new AuxValue(path.Length == 0 ? name : path + "." + name, name, value));
        }
        return result;
    }

    static IEnumerable<(string Path, nn.Module Module)> Modules(nn.Module model)
    {
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        seen.Add(model);
        yield return ("", model);
        foreach (var (path, m) in model.named_modules())
            if (seen.Add(m)) yield return (path, m);
    }
}
