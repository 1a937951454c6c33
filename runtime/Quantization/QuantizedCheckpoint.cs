using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;
using TorchSharp;
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
            if (m is not QuantizedLinear q) continue;
            var sd = q.state_dict();
            table[name] = new LayerEntry(q.Mode == WeightQuantMode.Int8PerChannel ? "int8" : "int4", q.GroupSize, q.InFeatures,
                q.OutFeatures, sd.ContainsKey("bias"), q.HasInputScale);
        }
        var meta = new Dictionary<string, string> { [MetadataKey] = JsonSerializer.Serialize(table) };
        SafeTensors.Save(path, model.state_dict().Select(kv => (kv.Key, kv.Value)), meta);
    }

    /// <summary>
    /// Loads a file written by <see cref="Save"/> into a freshly built full-precision model of the same architecture:
    /// the listed Linear layers are replaced by quantized shells, then every tensor is copied in (strict: names and
    /// shapes must match exactly).
    /// </summary>
    /// <param name="model">The model (full precision, same architecture as when saved).</param>
    /// <param name="path">The file.</param>
    public static void Load(nn.Module model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue(MetadataKey, out var json))
            throw new CheckpointFormatException(path, null, $"no '{MetadataKey}' metadata: not a quantized Mix checkpoint");
        var table = JsonSerializer.Deserialize<Dictionary<string, LayerEntry>>(json)
            ?? throw new CheckpointFormatException(path, null, "empty quantization table");
        var linears = Quantizer.Linears(model).ToDictionary(l => l.name);
        foreach (var (name, e) in table)
        {
            if (!linears.TryGetValue(name, out var l)) throw new CheckpointFormatException(path, null, $"quantized layer '{name}' is not a Linear of the model");
            var field = Quantizer.FindField(l.parent, l.linear)
                ?? throw new CheckpointFormatException(path, null, $"layer '{name}' cannot be replaced (its field is typed Linear)");
            var shell = QuantizedLinear.Empty(e.@in, e.@out, e.mode == "int8" ? WeightQuantMode.Int8PerChannel : WeightQuantMode.Int4Grouped,
                e.group, e.bias, e.input_scale);
            Quantizer.Swap(l.parent, l.childName, field, shell);
            l.linear.Dispose();
        }
        var sd = model.state_dict();
        var missing = sd.Keys.Where(k => !file.Contains(k)).ToList();
        var extra = file.Names.Where(k => !sd.ContainsKey(k)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new CheckpointFormatException(path, null, $"state dict mismatch: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}]");
        using var noGrad = torch.no_grad();
        foreach (var (key, target) in sd)
        {
            using var t = file.Read(key);
            if (!t.shape.SequenceEqual(target.shape) || t.dtype != target.dtype)
                throw new CheckpointFormatException(path, null, string.Create(CultureInfo.InvariantCulture,
                    $"'{key}': file has {t.dtype} [{string.Join(",", t.shape)}], model {target.dtype} [{string.Join(",", target.shape)}]"));
            target.copy_(t);
        }
    }
}
