using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Mix.Dsl;
using Mix.Dsl.Semantics;

namespace Mix.Examples.Summary;

/// <summary>One row of a <see cref="ModelSummary"/>: a layer, its inferred output shape, parameters and FLOPs.</summary>
public sealed record SummaryRow(string Name, string Kind, int Depth, string Output, long? Parameters, double? Flops);

/// <summary>
/// A model's layer table computed from the <c>.mix</c> front end alone (the checked <see cref="LayerNode"/> tree:
/// weights and inferred output shapes), with a FLOPs estimate from simple per-op formulas: multiply-adds count 2
/// (2 × positions × weights of every matrix or kernel), norms 5 and activations 1 per element, attention adds
/// 4·N²·C, spectral mixers 10·log2(N) per element. Module lists and inline blocks are transparent; rows go
/// <c>maxDepth</c> levels deep.
/// </summary>
public sealed class ModelSummary
{
    static readonly HashSet<string> s_channelsFirst = new(StringComparer.Ordinal)
    {
        "conv2d", "conv1d", "conv_mlp", "pool", "sepconv", "random_mixing", "adaptive_avg_pool",
        "layernorm2d", "layernorm2d_nobias", "groupnorm1", "groupnorm1_nobias", "batchnorm2d",
    };
    static readonly HashSet<string> s_norms = new(StringComparer.Ordinal)
    {
        "layernorm", "layernorm_nobias", "layernorm2d", "layernorm2d_nobias", "groupnorm1", "groupnorm1_nobias",
        "rmsnorm", "batchnorm2d", "layernorm_nd",
    };
    static readonly HashSet<string> s_spectral = new(StringComparer.Ordinal) { "global_filter", "afno", "aff" };

    ModelSummary(string model, string inputs, string output, List<SummaryRow> rows, long? parameters, double? flops, bool concrete)
    {
        Model = model;
        Inputs = inputs;
        Output = output;
        Rows = rows;
        TotalParameters = parameters;
        TotalFlops = flops;
        IsConcrete = concrete;
    }

    /// <summary>The model's name.</summary>
    public string Model { get; }
    /// <summary>Its input shapes.</summary>
    public string Inputs { get; }
    /// <summary>Its inferred output shape.</summary>
    public string Output { get; }
    /// <summary>The layers.</summary>
    public IReadOnlyList<SummaryRow> Rows { get; }
    /// <summary>All parameters (buffers excluded), or null if some shape is symbolic.</summary>
    public long? TotalParameters { get; }
    /// <summary>FLOPs of one forward pass for one sample, or null when a size is symbolic.</summary>
    public double? TotalFlops { get; }
    /// <summary>Whether every size other than the batch is known (so FLOPs are numbers).</summary>
    public bool IsConcrete { get; }

    /// <summary>Summarizes <paramref name="definition"/>.</summary>
    /// <param name="definition">A checked model (or block).</param>
    /// <param name="sizes">Values for shape symbols other than <c>B</c> (for example H=224, W=224), for FLOPs.</param>
    /// <param name="maxDepth">How many levels of layers to list.</param>
    public static ModelSummary Create(CheckedDefinition definition, IReadOnlyDictionary<string, long>? sizes = null, int maxDepth = 1)
    {
        var display = (sizes ?? new Dictionary<string, long>()).ToDictionary(kv => kv.Key, kv => Dim.Const(kv.Value));
        var perSample = new Dictionary<string, Dim>(display) { ["B"] = Dim.Const(1) };
        var rows = new List<SummaryRow>();
        var root = definition.Root;
        bool concrete = true;
        double? total = null;
        if (root is not null)
        {
            Collect(root, 0, maxDepth, display, perSample, rows);
            total = Flops(root, perSample);
            concrete = total is not null;
        }
        string Show(Shape? s) => s is null ? "?" : Substitute(s, display).ToString();
        return new ModelSummary(definition.Name, string.Join(", ", definition.Inputs.Select(Show)), Show(definition.Output), rows,
            root?.ParameterCount(), total, concrete);
    }

    static void Collect(LayerNode node, int depth, int maxDepth, Dictionary<string, Dim> display, Dictionary<string, Dim> perSample, List<SummaryRow> rows)
    {
        foreach (var child in node.Children)
        {
            if (child.Kind == "sequence") { Collect(child, depth, maxDepth, display, perSample, rows); continue; }
            if (child.Kind == "identity" && !child.AllWeights().Any()) continue;
            var output = OutputOf(child);
            rows.Add(new SummaryRow(child.Path, child.Kind, depth, output is null ? "-" : Substitute(output, display).ToString(),
                child.ParameterCount(), Flops(child, perSample)));
            if (depth + 1 < maxDepth && BuiltinCatalog.Find(child.Kind) is null) Collect(child, depth + 1, maxDepth, display, perSample, rows);
        }
    }

    static Shape? OutputOf(LayerNode node)
    {
        if (node.OutputShape is not null) return node.OutputShape;
        for (int i = node.Children.Count - 1; i >= 0; i--)
            if (OutputOf(node.Children[i]) is { } s) return s;
        return null;
    }

    static Shape Substitute(Shape s, IReadOnlyDictionary<string, Dim> map) =>
        map.Count == 0 ? s : new Shape(s.Dims.Select(d => d.Substitute(map)).ToList(), s.ElementType);

    /// <summary>FLOPs of one sample through <paramref name="node"/>: a built-in by formula, anything else as the sum
    /// of its children. Null when a size is symbolic.</summary>
    static double? Flops(LayerNode node, Dictionary<string, Dim> perSample)
    {
        if (BuiltinCatalog.Find(node.Kind) is null || node.OutputShape is null)
        {
            double sum = 0;
            foreach (var c in node.Children)
            {
                if (Flops(c, perSample) is not double f) return null;
                sum += f;
            }
            return sum;
        }
        var dims = node.OutputShape.Dims.Select(d => d.Substitute(perSample).AsLong).ToList();
        if (dims.Any(d => d is null) || dims.Count == 0) return null;
        double elements = dims.Aggregate(1.0, (a, d) => a * d!.Value);
        int channelAxis = s_channelsFirst.Contains(node.Kind) && dims.Count > 1 ? 1 : dims.Count - 1;
        double channels = Math.Max(1, dims[channelAxis]!.Value);
        double positions = elements / channels;
        if (node.Kind == "embedding") return 0;

        double matrixWeights = 0;
        foreach (var (_, w) in node.AllWeights())
        {
            if (w.Shape.Count < 2) continue;
            if (w.ElementCount is not long n) return null;
            matrixWeights += n;
        }
        double flops = 2 * positions * matrixWeights;
        if (s_norms.Contains(node.Kind)) flops += 5 * elements;
        else if (node.Kind == "pool") flops += 9 * elements;
        else if (node.Kind == "attention") flops += 4 * positions * positions * channels + 5 * positions * positions;
        else if (s_spectral.Contains(node.Kind)) flops += 10 * elements * Math.Log2(Math.Max(2, positions));
        else if (matrixWeights == 0) flops += elements; // activations, scales, dropout, pooling heads
        return flops;
    }

    /// <summary>"1.23 M", "4.5 G".</summary>
    public static string Human(double? value, string unit = "")
    {
        if (value is not double v) return "?";
        string[] prefixes = { "", " K", " M", " G", " T" };
        int i = 0;
        while (Math.Abs(v) >= 1000 && i < prefixes.Length - 1) { v /= 1000; i++; }
        return (i == 0 ? v.ToString("0", CultureInfo.InvariantCulture) : v.ToString("0.##", CultureInfo.InvariantCulture)) + prefixes[i] + unit;
    }

    /// <summary>A plain-text table: layer, kind, output shape, parameters, FLOPs, then the totals.</summary>
    public string ToText()
    {
        var header = new[] { "layer", "kind", "output", "params", IsConcrete ? "FLOPs" : "FLOPs (needs sizes)" };
        var table = Rows.Select(r => new[]
        {
            new string(' ', 2 * r.Depth) + r.Name, r.Kind, r.Output,
            r.Parameters is long p ? p.ToString("N0", CultureInfo.InvariantCulture) : "?", Human(r.Flops),
        }).ToList();
        var widths = Enumerable.Range(0, header.Length).Select(i => table.Select(r => r[i].Length).Append(header[i].Length).Max()).ToArray();
        var sb = new StringBuilder();
        sb.Append("model ").Append(Model).Append(": (").Append(Inputs).Append(") -> ").Append(Output).AppendLine();
        void Line(string[] cells)
        {
            for (int i = 0; i < cells.Length; i++)
            {
                bool right = i >= 3;
                var cell = right ? cells[i].PadLeft(widths[i]) : cells[i].PadRight(widths[i]);
                sb.Append(i == 0 ? "  " : "  ").Append(cell);
            }
            sb.AppendLine();
        }
        Line(header);
        Line(widths.Select(w => new string('-', w)).ToArray());
        foreach (var r in table) Line(r);
        sb.Append("  total: ").Append(TotalParameters is long t ? t.ToString("N0", CultureInfo.InvariantCulture) : "?").Append(" parameters");
        sb.Append(", ").Append(TotalFlops is double f ? Human(f, "FLOPs") + " per sample" : "FLOPs need concrete sizes").AppendLine();
        return sb.ToString();
    }
}
