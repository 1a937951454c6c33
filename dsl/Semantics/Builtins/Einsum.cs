using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

/// <summary>
/// <c>einsum("b l d, d n -> b l n", x, w)</c>: each operand names its axes (space-separated words, or single letters
/// written together as in PyTorch: <c>"bld,dn->bln"</c>); a name binds to one size across all operands.
/// </summary>
internal static class Einsum
{
    static readonly string[] s_operands = { "a", "b", "c", "d" };

    /// <summary>The axis names of each input term and of the output, or an error message.</summary>
    public static (List<List<string>> Inputs, List<string> Output)? Parse(string spec, out string? error)
    {
        error = null;
        var arrow = spec.IndexOf("->", System.StringComparison.Ordinal);
        if (arrow < 0) { error = "it needs '->' and the output's axes, e.g. \"b l d, d n -> b l n\""; return null; }
        if (spec.IndexOf("->", arrow + 2, System.StringComparison.Ordinal) >= 0) { error = "it has more than one '->'"; return null; }
        var inputs = spec.Substring(0, arrow).Split(',').Select(Words).ToList();
        var output = Words(spec.Substring(arrow + 2));
        if (inputs.Append(output).All(t => t.Count <= 1))
        {
            // No spaces inside a term: PyTorch's one letter per axis.
            inputs = inputs.Select(Letters).ToList();
            output = Letters(output);
        }
        if (spec.Substring(arrow + 2).Contains(',')) { error = "the output is one term (no ',' after '->')"; return null; }
        foreach (var name in inputs.SelectMany(t => t).Concat(output))
        {
            if (name.Length == 0 || !name.All(ch => char.IsLetterOrDigit(ch) || ch == '_') || !char.IsLetter(name[0]))
            {
                error = name.Contains('.') ? "'...' is not supported; name every axis" : $"'{name}' is not an axis name (letters, digits, _)";
                return null;
            }
        }
        if (inputs.Any(t => t.Count == 0) && inputs.Count > 1) { error = "an operand term is empty"; return null; }
        var dup = output.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) { error = $"the output names '{dup.Key}' twice"; return null; }
        var missing = output.FirstOrDefault(o => !inputs.Any(t => t.Contains(o)));
        if (missing is not null) { error = $"the output axis '{missing}' is in no operand"; return null; }
        return (inputs, output);
    }

    static List<string> Words(string term) => term.Split(new[] { ' ', '\t' }, System.StringSplitOptions.RemoveEmptyEntries).ToList();

    static List<string> Letters(List<string> term) => term.Count == 0 ? term : term[0].Select(ch => ch.ToString()).ToList();

    public static Value Apply(BuiltinCall c)
    {
        if (c.Arg("spec") is not StringValue { Value: string spec }) return UnknownValue.Instance;
        var operands = new List<(string Param, Shape Shape)>();
        foreach (var p in s_operands)
        {
            var v = c.Arg(p);
            if (v is NoneValue) continue;
            if (v is not TensorValue t) return UnknownValue.Instance;
            operands.Add((p, t.Shape));
        }
        if (Parse(spec, out var error) is not { } parsed)
        {
            c.Report(DiagnosticIds.BadEinsumSpec, $"einsum spec \"{spec}\": {error}");
            return UnknownValue.Instance;
        }
        if (parsed.Inputs.Count != operands.Count)
        {
            c.Report(DiagnosticIds.BadEinsumSpec, $"einsum spec \"{spec}\" has {parsed.Inputs.Count} operand term(s) but {operands.Count} tensor(s) are given");
            return UnknownValue.Instance;
        }
        var sizes = new Dictionary<string, (Dim Size, int Operand, Shape Shape)>();
        for (int i = 0; i < operands.Count; i++)
        {
            var term = parsed.Inputs[i];
            var shape = operands[i].Shape;
            if (term.Count != shape.Rank)
            {
                c.Report(DiagnosticIds.BadEinsumSpec,
                    $"einsum term {i + 1} \"{string.Join(" ", term)}\" names {term.Count} axes but operand {i + 1} is {shape} (rank {shape.Rank})");
                return UnknownValue.Instance;
            }
            for (int k = 0; k < term.Count; k++)
            {
                var size = shape[k];
                if (sizes.TryGetValue(term[k], out var seen))
                {
                    if (!Shape.Compatible(seen.Size, size))
                    {
                        c.Report(DiagnosticIds.EinsumSizeMismatch,
                            $"einsum axis '{term[k]}' is {seen.Size} in operand {seen.Operand + 1} {seen.Shape} but {size} in operand {i + 1} {shape}");
                        return UnknownValue.Instance;
                    }
                    if (Shape.IsUnknown(seen.Size)) sizes[term[k]] = (size, i, shape);
                }
                else sizes[term[k]] = (size, i, shape);
            }
        }
        var et = operands.Select(o => o.Shape.ElementType).Aggregate(Broadcasting.Promote);
        if (et is "long" or "int" or "bool") et = "float";
        return new TensorValue(new Shape(parsed.Output.Select(o => sizes[o].Size).ToList(), et));
    }
}
