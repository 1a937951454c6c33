using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>
/// Saves and loads quantized models as safetensors: every state-dict entry (packed <c>qweight</c>, <c>scales</c>,
/// <c>zeros</c>, optional <c>input_scale</c>, and all full-precision tensors) under its usual dotted name, plus the
/// metadata key <c>mix.quantization</c>: a JSON object mapping each quantized layer name to
/// <c>{"mode": "int8"|"int4", "group": g, "in": i, "out": o, "bias": b, "input_scale": s}</c>. See docs/quantization.md.
/// </summary>
public static class QuantizedCheckpoint
{
    /// <summary>Metadata key of the layer table.</summary>
    public const string MetadataKey = "mix.quantization";

    private sealed record LayerEntry(string mode, int group, long @in, long @out, bool bias, bool input_scale);

    /// <summary>Writes the (quantized) model's state dict and layer table.</summary>
    /// <param name="model">A model after <see cref="Quantizer.Quantize"/>.</param>
    /// <param name="path">Target file.</param>
    public static void Save(nn.Module model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        var table = new SortedDictionary<string, LayerEntry>(StringComparer.Ordinal);
        foreach (var (name, m) in model.named_modules())
        {
            if (m is QuantizedLinear q)
                table[name] = new LayerEntry(q.Mode == WeightQuantMode.Int8PerChannel ? "int8" : "int4", q.GroupSize, q.InFeatures,
                    q.OutFeatures, q.Bias is not null, q.HasInputScale);
            else if (m is QuantizableLinear { IsQuantized: true } ql)
                table[name] = new LayerEntry(ql.QuantMode == WeightQuantMode.Int8PerChannel ? "int8" : "int4", ql.GroupSize, ql.in_features,
                    ql.out_features, ql.QuantizedBias is not null, ql.HasInputScale);
        }
        var meta = new Dictionary<string, string> { [MetadataKey] = JsonSerializer.Serialize(table) };
        SafeTensors.Save(path, model.state_dict().Select(kv => (kv.Key, kv.Value)), meta);
    }

    /// <summary>
    /// Loads a file written by <see cref="Save"/> into a freshly built full-precision model of the same architecture:
    /// the listed Linear layers become quantized layers and every tensor is copied in (strict: names, shapes and dtypes
    /// must match exactly). Transactional: the layer table, the layers it names and every tensor's name, shape and
    /// dtype are checked against the model from the header first, then every tensor is read, and only then are layers
    /// swapped and values copied; a load that throws leaves the model exactly as it was.
    /// </summary>
    /// <param name="model">The model (full precision, same architecture as when saved).</param>
    /// <param name="path">The file.</param>
    /// <exception cref="CheckpointFormatException">The file is malformed or does not fit the model: no or a malformed
    /// layer table (unknown mode such as "int3", bad group size, features that differ from the layer's), a layer that is
    /// not a replaceable Linear of the model, missing or unexpected tensors, a shape or dtype that differs. The message
    /// names every problem found.</exception>
    public static void Load(nn.Module model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var file = SafeTensorsFile.Open(path);
        var table = ReadTable(file);
        var linears = Quantizer.Linears(model).ToDictionary(l => l.name);

        // 1. Every quantized layer: a replaceable Linear of the model whose shape the table repeats.
        var problems = new List<string>();
        var swaps = new List<(Quantizer.Target target, QuantizedLinear shell)>();
        var expected = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, e) in table)
            {
                if (!linears.TryGetValue(name, out var l)) { problems.Add($"layer '{name}' is not a Linear of the model"); continue; }
                if (Quantizer.Replaceable(name, l.parent, l.childName, l.linear) is not { } target)
                { problems.Add($"layer '{name}' cannot be replaced (its field is typed Linear)"); continue; }
                long outF = target.Weight.shape[0], inF = target.Weight.shape[1];
                if (e.In != inF || e.Out != outF)
                {
                    problems.Add($"layer '{name}' is [{e.Out}, {e.In}] in the table but [{outF}, {inF}] in the model");
                    continue;
                }
                if (e.Bias != (target.Bias is not null))
                {
                    problems.Add($"layer '{name}' has {(e.Bias ? "a" : "no")} bias in the table but {(e.Bias ? "none" : "one")} in the model");
                    continue;
                }
                var shell = QuantizedLinear.Empty(e.In, e.Out, e.Mode, e.Group, e.Bias, e.InputScale);
                swaps.Add((target, shell));
                if (target.Weight.device_type != DeviceType.CPU) shell.to(target.Weight.device);
                foreach (var (key, t) in shell.state_dict()) expected[name + "." + key] = t;
            }
            var replaced = swaps.Select(x => x.target.Name + ".").ToArray();
            foreach (var (key, t) in model.state_dict())
                if (!replaced.Any(prefix => key.StartsWith(prefix, StringComparison.Ordinal))) expected[key] = t;

            // 2. The file's tensors against the model as it will be, from the header alone.
            var missing = expected.Keys.Where(k => !file.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            var extra = file.Names.Where(k => !expected.ContainsKey(k)).ToList();
            if (missing.Count > 0) problems.Add($"missing tensors [{string.Join(", ", missing)}]");
            if (extra.Count > 0) problems.Add($"unexpected tensors [{string.Join(", ", extra)}]");
            foreach (var (key, target) in expected.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (!file.TryGetInfo(key, out var info)) continue;
                if (!info.Shape.SequenceEqual(target.shape) || info.ScalarType != target.dtype)
                    problems.Add(string.Create(CultureInfo.InvariantCulture,
                        $"'{key}' is {info.DType} [{string.Join(",", info.Shape)}] in the file but {target.dtype} [{string.Join(",", target.shape)}] in the model"));
            }
            if (problems.Count > 0)
                throw new CheckpointFormatException(file.Path, null, "the checkpoint does not fit the model: " + string.Join("; ", problems));

            // 3. Read everything (on each target's device), then commit: copies of matching shape, dtype and device,
            // then the swaps, which cannot fail.
            var staged = new List<(Tensor target, Tensor value)>(expected.Count);
            try
            {
                foreach (var (key, target) in expected) staged.Add((target, file.Read(key, target.device)));
                using (torch.no_grad())
                    foreach (var (target, value) in staged)
                    {
                        target.copy_(value);
                        Fused.QuantizedGemm.Forget(target); // a repacked copy of codes loaded in place is stale
                    }
            }
            finally
            {
                foreach (var (_, value) in staged) value.Dispose();
            }
            foreach (var x in swaps) x.target.Install(x.shell);
            swaps.Clear();
        }
        finally
        {
            foreach (var x in swaps) x.shell.Dispose();
        }
    }

    private sealed record TableEntry(WeightQuantMode Mode, int Group, long In, long Out, bool Bias, bool InputScale);

    /// <summary>The layer table, every field checked: a malformed table is a <see cref="CheckpointFormatException"/>
    /// naming the layer and the field, never a JSON or argument exception, and an unknown mode is never taken for int4.</summary>
    private static SortedDictionary<string, TableEntry> ReadTable(SafeTensorsFile file)
    {
        var path = file.Path;
        CheckpointFormatException Bad(string problem) => new(path, null, problem);
        if (!file.Metadata.TryGetValue(MetadataKey, out var json))
            throw Bad($"no '{MetadataKey}' metadata: not a quantized Mix checkpoint");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad($"the '{MetadataKey}' layer table is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Bad($"the '{MetadataKey}' layer table is a JSON {doc.RootElement.ValueKind}, not an object of layers");
            var table = new SortedDictionary<string, TableEntry>(StringComparer.Ordinal);
            foreach (var layer in doc.RootElement.EnumerateObject())
            {
                var name = layer.Name;
                CheckpointFormatException BadLayer(string problem) => Bad($"layer '{name}' in the '{MetadataKey}' table: {problem}");
                var e = layer.Value;
                if (e.ValueKind != JsonValueKind.Object) throw BadLayer($"the entry is a JSON {e.ValueKind}, not an object");
                string Str(string field) => e.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String
                    ? v.GetString()! : throw BadLayer($"'{field}' is missing or not a string");
                long Int(string field) => e.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var x)
                    ? x : throw BadLayer($"'{field}' is missing or not an integer");
                bool Bool(string field) => e.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False
                    ? v.GetBoolean() : throw BadLayer($"'{field}' is missing or not a boolean");
                var modeText = Str("mode");
                var mode = modeText switch
                {
                    "int8" => WeightQuantMode.Int8PerChannel,
                    "int4" => WeightQuantMode.Int4Grouped,
                    _ => throw BadLayer($"mode \"{modeText}\" is not one this library writes (\"int8\" or \"int4\")"),
                };
                long inF = Int("in"), outF = Int("out"), group = Int("group");
                if (inF <= 0 || outF <= 0) throw BadLayer($"features in = {inF}, out = {outF} must be positive");
                if (mode == WeightQuantMode.Int8PerChannel && group != 0)
                    throw BadLayer($"group {group} given for int8, which has no groups (0 expected)");
                if (mode == WeightQuantMode.Int4Grouped && (group <= 0 || group > int.MaxValue || group % 2 != 0 || inF % group != 0))
                    throw BadLayer($"int4 group size {group} must be positive, even and divide the {inF} input features");
                if (!table.TryAdd(name, new TableEntry(mode, (int)group, inF, outF, Bool("bias"), Bool("input_scale"))))
                    throw BadLayer("the layer appears twice");
            }
            return table;
        }
    }
}
