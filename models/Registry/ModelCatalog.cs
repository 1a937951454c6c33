using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace Mix;

/// <summary>
/// Reads the metadata tables embedded from <c>models/*.json</c> (one per zoo file, keyed by model name) and pairs each
/// entry with the class the generator made from the <c>.mix</c> model of that name. An entry without a class is an
/// error here, and a test holds every <c>model</c> of the zoo to having an entry.
/// </summary>
internal static class ModelCatalog
{
    const string ResourcePrefix = "Mix.Models.Metadata.";
    const string ZooNamespace = "Mix.Zoo";

    static readonly Lazy<IReadOnlyDictionary<string, ModelInfo>> s_models = new(Load);

    public static IReadOnlyDictionary<string, ModelInfo> All => s_models.Value;

    static IReadOnlyDictionary<string, ModelInfo> Load()
    {
        var assembly = typeof(ModelCatalog).Assembly;
        var models = new Dictionary<string, ModelInfo>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)).OrderBy(n => n, StringComparer.Ordinal))
        {
            var file = Path.GetFileNameWithoutExtension(resource.Substring(ResourcePrefix.Length)) + ".mix";
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var json = JsonDocument.Parse(stream);
            foreach (var entry in json.RootElement.EnumerateObject())
            {
                var type = assembly.GetType(ZooNamespace + "." + ClassName(entry.Name))
                    ?? throw new InvalidOperationException($"{file}.json names '{entry.Name}', but {file} has no model of that name (no class {ZooNamespace}.{ClassName(entry.Name)})");
                models.Add(entry.Name, Read(entry.Name, file, type, entry.Value));
            }
        }
        return models;
    }

    static ModelInfo Read(string name, string file, Type type, JsonElement e) => new()
    {
        Name = name,
        File = file,
        Type = type,
        Task = String(e, "task") ?? throw new InvalidOperationException($"{file}.json: '{name}' has no task"),
        NumClasses = e.TryGetProperty("num_classes", out var n) ? n.GetInt64() : null,
        InputSize = e.TryGetProperty("input_size", out var s) ? s.EnumerateArray().Select(x => x.GetInt64()).ToArray() : null,
        CropPct = e.TryGetProperty("crop_pct", out var c) ? c.GetDouble() : null,
        Interpolation = String(e, "interpolation"),
        Mean = e.TryGetProperty("mean", out var m) ? m.EnumerateArray().Select(x => x.GetDouble()).ToArray() : null,
        Std = e.TryGetProperty("std", out var d) ? d.EnumerateArray().Select(x => x.GetDouble()).ToArray() : null,
        Paper = String(e, "paper"),
        Source = String(e, "source"),
        License = String(e, "license"),
        Timm = String(e, "timm"),
        HfClass = String(e, "hf"),
        HfModelType = String(e, "hf_model_type"),
        HfHubId = String(e, "hf_hub_id"),
        ConfigKeys = e.TryGetProperty("config", out var k)
            ? k.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal)
            : new Dictionary<string, string>(),
    };

    static string? String(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>The generator's class name of a <c>.mix</c> name: <c>poolformer_s12</c> → <c>PoolformerS12</c>.</summary>
    public static string ClassName(string name)
    {
        var parts = name.Split('_').Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1));
        var s = string.Concat(parts);
        return s.Length == 0 || char.IsDigit(s[0]) ? "M" + s : s;
    }
}
