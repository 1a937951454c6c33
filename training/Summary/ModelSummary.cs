using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Mix.Dsl;
using Mix.Dsl.Semantics;

namespace Mix.Training.Summary;

/// <summary>One row of a <see cref="ModelSummary"/>: a layer, its inferred output shape, parameters and FLOPs, and the
/// decoding cache of the causal mixers inside it (null when there are none) in float32 and in the summary's KV format.</summary>
public sealed record SummaryRow(string Name, string Kind, int Depth, string Output, long? Parameters, double? Flops,
    CacheCost? Cache = null, CacheCost? FormattedCache = null);

/// <summary>Decoding-cache bytes of one row (sequence): <see cref="PerToken"/> more for every token, plus
/// <see cref="Fixed"/> independent of the length (recurrent and conv state, a quantized cache's full-precision tail).
/// Null parts are sizes the front end could not resolve.</summary>
/// <param name="PerToken">Bytes per token.</param>
/// <param name="Fixed">Length-independent bytes.</param>
public sealed record CacheCost(double? PerToken, double? Fixed)
{
    /// <summary>No cache.</summary>
    public static CacheCost Zero { get; } = new(0, 0);

    /// <summary>The sum of two costs.</summary>
    public static CacheCost operator +(CacheCost a, CacheCost b) =>
        new(a.PerToken + b.PerToken, a.Fixed + b.Fixed);

    /// <summary>"512 B/token + 12 KiB fixed", "12 KiB fixed", "-" for nothing.</summary>
    public string ToText()
    {
        if (PerToken is not double t || Fixed is not double f) return "?";
        if (t == 0 && f == 0) return "-";
        var parts = new System.Collections.Generic.List<string>(2);
        if (t != 0) parts.Add(ModelSummary.Bytes(t) + "/token");
        if (f != 0) parts.Add(ModelSummary.Bytes(f) + " fixed");
        return string.Join(" + ", parts);
    }
}

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
        "conv2d", "conv_transpose2d", "conv1d", "conv_mlp", "pool", "sepconv", "random_mixing", "adaptive_avg_pool",
        "layernorm2d", "layernorm2d_nobias", "groupnorm1", "groupnorm1_nobias", "batchnorm2d",
    };
    static readonly HashSet<string> s_norms = new(StringComparer.Ordinal)
    {
        "layernorm", "layernorm_nobias", "layernorm2d", "layernorm2d_nobias", "groupnorm1", "groupnorm1_nobias",
        "rmsnorm", "batchnorm2d", "layernorm_nd",
    };
    static readonly HashSet<string> s_spectral = new(StringComparer.Ordinal) { "global_filter", "afno", "aff" };

    ModelSummary(string model, string inputs, string output, List<SummaryRow> rows, long? parameters, double? flops, bool concrete,
        CacheCost? cache, CacheCost? formattedCache, KvCacheFormat? kvFormat)
    {
        Model = model;
        Inputs = inputs;
        Output = output;
        Rows = rows;
        TotalParameters = parameters;
        TotalFlops = flops;
        IsConcrete = concrete;
        TotalCache = cache;
        TotalFormattedCache = formattedCache;
        KvFormat = kvFormat;
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
    /// <summary>Decoding cache of one sequence with float32 state, or null when the model has no causal mixer.</summary>
    public CacheCost? TotalCache { get; }
    /// <summary>The same with the KV layers stored as <see cref="KvFormat"/> (null without a format or a cache).</summary>
    public CacheCost? TotalFormattedCache { get; }
    /// <summary>The KV-cache format of the second cache column, if one was asked for.</summary>
    public KvCacheFormat? KvFormat { get; }

    /// <summary>Summarizes <paramref name="definition"/>.</summary>
    /// <param name="definition">A checked model (or block).</param>
    /// <param name="sizes">Values for shape symbols other than <c>B</c> (for example H=224, W=224), for FLOPs.</param>
    /// <param name="maxDepth">How many levels of layers to list.</param>
    /// <param name="kvFormat">A KV-cache format (e.g. KIVI 4-bit) for a second cache column next to float32; null: none.</param>
    public static ModelSummary Create(CheckedDefinition definition, IReadOnlyDictionary<string, long>? sizes = null, int maxDepth = 1,
        KvCacheFormat? kvFormat = null)
    {
        ArgumentNullException.ThrowIfNull(definition);
        if (kvFormat?.Scheme == KvCacheScheme.FullPrecision && kvFormat.ElementBytes == 4) kvFormat = null;
        var display = (sizes ?? new Dictionary<string, long>()).ToDictionary(kv => kv.Key, kv => Dim.Const(kv.Value));
        var perSample = new Dictionary<string, Dim>(display) { ["B"] = Dim.Const(1) };
        var rows = new List<SummaryRow>();
        var root = definition.Root;
        bool concrete = true;
        double? total = null;
        CacheCost? cache = null, formatted = null;
        if (root is not null)
        {
            Collect(root, 0, maxDepth, display, perSample, rows, kvFormat);
            total = Flops(root, perSample);
            concrete = total is not null;
            if (root.AllCaches().Any())
            {
                cache = Cache(root, display, KvCacheFormat.Float32);
                formatted = kvFormat is null ? null : Cache(root, display, kvFormat);
            }
        }
        string Show(Shape? s) => s is null ? "?" : Substitute(s, display).ToString();
        return new ModelSummary(definition.Name, string.Join(", ", definition.Inputs.Select(Show)), Show(definition.Output), rows,
            root?.ParameterCount(), total, concrete, cache, formatted, cache is null ? null : kvFormat);
    }

    /// <summary>The size symbols of <paramref name="definition"/>'s inputs (<c>B</c>, <c>H</c>, <c>W</c>, ...): the names
    /// <see cref="Create"/>'s <c>sizes</c> can set.</summary>
    public static IReadOnlyCollection<string> SizeNames(CheckedDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return definition.Inputs.SelectMany(s => s.Dims).SelectMany(d => d.Symbols).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// Sizes that do not fit the model: a layer output size that <paramref name="sizes"/> make a fraction (a stride or
    /// patch size that does not divide the input, e.g. H=225 through a stride-4 stem: <c>H/4</c> = 56.25), one message
    /// per offending size, at the first layer (in declaration order) where it happens. Empty when the sizes fit.
    /// </summary>
    public static IReadOnlyList<string> SizeWarnings(CheckedDefinition definition, IReadOnlyDictionary<string, long> sizes)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(sizes);
        var warnings = new List<string>();
        if (definition.Root is null || sizes.Count == 0) return warnings;
        var map = sizes.ToDictionary(kv => kv.Key, kv => Dim.Const(kv.Value));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Visit(LayerNode node)
        {
            // Children first: a container's output is its last child's, so the first layer to go wrong is the deepest.
            foreach (var child in node.Children) Visit(child);
            foreach (var dim in node.OutputShape?.Dims ?? (IReadOnlyList<Dim>)Array.Empty<Dim>())
            {
                var value = dim.Substitute(map);
                if (!value.IsConstant || value.ConstantValue.IsInteger) continue;
                var used = string.Join(", ", dim.Symbols.Where(sizes.ContainsKey).Distinct().OrderBy(s => s, StringComparer.Ordinal)
                    .Select(s => $"{s}={sizes[s].ToString(CultureInfo.InvariantCulture)}"));
                if (!seen.Add(used)) continue;
                var exact = (double)value.ConstantValue.Numerator / value.ConstantValue.Denominator;
                warnings.Add($"{used} does not divide evenly: {node.Path} makes {dim} = " +
                             $"{exact.ToString("0.###", CultureInfo.InvariantCulture)}, not a whole number (a stride or patch size does not divide the size)");
            }
        }
        Visit(definition.Root);
        return warnings;
    }

    /// <summary>The decoding cache of the causal mixers below <paramref name="node"/> for one sequence: a KV layer
    /// costs <see cref="KvCacheFormat.BytesPerToken"/> per token (+ its full-precision tail when quantized), a Mamba
    /// layer its conv and SSM state (float32) once. Null when nothing below is cached.</summary>
    static CacheCost? Cache(LayerNode node, Dictionary<string, Dim> sizes, KvCacheFormat format)
    {
        CacheCost? sum = null;
        foreach (var (_, c) in node.AllCaches())
        {
            long? perToken = c.PerToken.Substitute(sizes).AsLong, fixedElements = c.Fixed.Substitute(sizes).AsLong;
            long? headDim = c.HeadDim?.Substitute(sizes).AsLong;
            CacheCost cost;
            if (c.Kind == "kv" && headDim is long d && perToken is long e && d > 0)
            {
                long heads = e / (2 * d);
                cost = new CacheCost(format.BytesPerToken(heads, d), format.FixedBytes(heads, d) + 4.0 * (fixedElements ?? 0));
            }
            else cost = new CacheCost(4.0 * perToken, 4.0 * fixedElements);
            sum = sum is null ? cost : sum + cost;
        }
        return sum;
    }

    static void Collect(LayerNode node, int depth, int maxDepth, Dictionary<string, Dim> display, Dictionary<string, Dim> perSample, List<SummaryRow> rows,
        KvCacheFormat? kvFormat)
    {
        foreach (var child in node.Children)
        {
            if (child.Kind == "sequence") { Collect(child, depth, maxDepth, display, perSample, rows, kvFormat); continue; }
            if (child.Kind == "identity" && !child.AllWeights().Any()) continue;
            var output = OutputOf(child);
            // A @tied weight is counted where it is owned; the row says why its layer counts fewer.
            var kind = child.Weights.Any(w => w.TiedTo is not null) ? child.Kind + " (tied)" : child.Kind;
            rows.Add(new SummaryRow(child.Path, kind, depth, output is null ? "-" : Substitute(output, display).ToString(),
                child.ParameterCount(), Flops(child, perSample), Cache(child, display, KvCacheFormat.Float32),
                kvFormat is null ? null : Cache(child, display, kvFormat)));
            if (depth + 1 < maxDepth && BuiltinCatalog.Find(child.Kind) is null) Collect(child, depth + 1, maxDepth, display, perSample, rows, kvFormat);
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

    /// <summary>Bytes in binary units: "640 B", "1.5 KiB", "12 MiB".</summary>
    public static string Bytes(double bytes)
    {
        string[] units = { "B", "KiB", "MiB", "GiB", "TiB" };
        int i = 0;
        while (Math.Abs(bytes) >= 1024 && i < units.Length - 1) { bytes /= 1024; i++; }
        return bytes.ToString("0.##", CultureInfo.InvariantCulture) + " " + units[i];
    }

    /// <summary>Header of the float32 cache column.</summary>
    public const string CacheHeader = "cache (fp32)";

    /// <summary>Header of the formatted cache column ("cache (kivi4)"), or null without a format.</summary>
    public string? FormattedCacheHeader => KvFormat is null ? null : $"cache ({KvFormat.ShortName})";

    /// <summary>The totals' cache lines: "cache (fp32): 1 KiB/token + 24 KiB fixed per sequence", one per format.</summary>
    public IEnumerable<string> CacheLines()
    {
        if (TotalCache is { } c) yield return $"cache (fp32): {c.ToText()} per sequence";
        if (TotalFormattedCache is { } q && KvFormat is { } f) yield return $"cache (KV {f.Name}): {q.ToText()} per sequence";
    }

    /// <summary>A plain-text table: layer, kind, output shape, parameters, FLOPs, the decoding cache of models with causal
    /// mixers, then the totals.</summary>
    public string ToText()
    {
        var headers = new List<string> { "layer", "kind", "output", "params", IsConcrete ? "FLOPs" : "FLOPs (needs sizes)" };
        if (TotalCache is not null) headers.Add(CacheHeader);
        if (FormattedCacheHeader is { } fh) headers.Add(fh);
        var header = headers.ToArray();
        var table = Rows.Select(r => new[]
        {
            new string(' ', 2 * r.Depth) + r.Name, r.Kind, r.Output,
            r.Parameters is long p ? p.ToString("N0", CultureInfo.InvariantCulture) : "?", Human(r.Flops),
            (r.Cache ?? CacheCost.Zero).ToText(), (r.FormattedCache ?? CacheCost.Zero).ToText(),
        }.Take(header.Length).ToArray()).ToList();
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
        foreach (var line in CacheLines()) sb.Append("  ").Append(line).AppendLine();
        return sb.ToString();
    }
}
