using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Checkpoints;

namespace Mix.Pretrained;

/// <summary>
/// A local checkpoint as timm and Hugging Face lay it out: the weights (<c>model.safetensors</c> or a sharded
/// <c>model.safetensors.index.json</c>), the folder's <c>config.json</c> if any, and the hub-cache snapshot it came from.
/// </summary>
internal sealed record PretrainedSource(string Weights, string? ConfigPath, string? Snapshot, JsonElement? Config)
{
    const string SafeTensorsName = "model.safetensors";

    public static PretrainedSource Resolve(string path, string revision, string? cacheDir)
    {
        var tried = new List<string>();
        string? snapshot = null;
        if (File.Exists(path)) return FromFile(Path.GetFullPath(path), null);
        if (Directory.Exists(path))
        {
            var folder = Path.GetFullPath(path);
            if (Directory.Exists(Path.Combine(folder, "snapshots"))) folder = snapshot = HubCache.Snapshot(folder, revision);
            return FromFolder(folder, snapshot);
        }
        tried.Add(Path.GetFullPath(path));
        if (HubCache.IsRepoId(path))
        {
            var root = HubCache.Root(cacheDir);
            var repo = Path.Combine(root, HubCache.FolderName(path));
            if (Directory.Exists(repo))
            {
                snapshot = HubCache.Snapshot(repo, revision);
                return FromFolder(snapshot, snapshot);
            }
            tried.Add(repo);
        }
        throw new FileNotFoundException(
            $"no checkpoint at '{path}': looked for {string.Join(" and ", tried.Select(t => $"'{t}'"))}. FromPretrained reads local " +
            "files only (a folder, a .safetensors or .index.json file, a hub-cache models--org--name folder, or an org/name id " +
            "already in the hub cache); nothing is downloaded.", path);
    }

    static PretrainedSource FromFolder(string folder, string? snapshot)
    {
        var index = Path.Combine(folder, ShardedSafeTensors.DefaultIndexFileName);
        var single = Path.Combine(folder, SafeTensorsName);
        string weights = File.Exists(index) ? index : File.Exists(single) ? single
            : throw new FileNotFoundException(
                $"'{folder}' holds neither {ShardedSafeTensors.DefaultIndexFileName} nor {SafeTensorsName}" +
                (File.Exists(Path.Combine(folder, "pytorch_model.bin")) || File.Exists(Path.Combine(folder, "pytorch_model.bin.index.json"))
                    ? " (pytorch_model.bin is a Python pickle, which is not read; convert it to safetensors)" : ""),
                single);
        return FromFile(weights, snapshot);
    }

    static PretrainedSource FromFile(string weights, string? snapshot)
    {
        var configPath = Path.Combine(Path.GetDirectoryName(weights)!, "config.json");
        if (!File.Exists(configPath)) return new PretrainedSource(weights, null, snapshot, null);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{configPath} is not a JSON object");
            return new PretrainedSource(weights, configPath, snapshot, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{configPath} is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>The zoo model a config names: timm's <c>architecture</c> (or <c>pretrained_cfg.architecture</c>), else
    /// Hugging Face's <c>model_type</c>.</summary>
    public static ModelInfo Select(JsonElement? config, PretrainedSource source, IEnumerable<ModelInfo> models)
    {
        var all = models.ToList();
        if (config is not { } c)
            throw new ArgumentException($"'{source.Weights}' has no config.json next to it to say which model it is; pass PretrainedOptions.Model");
        var architecture = Str(c, "architecture") ?? (c.TryGetProperty("pretrained_cfg", out var pc) && pc.ValueKind == JsonValueKind.Object ? Str(pc, "architecture") : null);
        if (architecture is not null)
            return all.FirstOrDefault(m => m.TimmArchitecture == architecture) ?? all.FirstOrDefault(m => m.Name == architecture)
                ?? throw new ArgumentException($"{source.ConfigPath}: timm architecture '{architecture}' is not in the zoo (models with timm keys: " +
                    $"{string.Join(", ", all.Where(m => m.TimmArchitecture is not null).Select(m => m.TimmArchitecture))}); pass PretrainedOptions.Model");
        var modelType = Str(c, "model_type");
        if (modelType is not null)
            return all.FirstOrDefault(m => m.HfModelType == modelType)
                ?? throw new ArgumentException($"{source.ConfigPath}: Hugging Face model_type '{modelType}' is not in the zoo (known: " +
                    $"{string.Join(", ", all.Where(m => m.HfModelType is not null).Select(m => m.HfModelType))}); pass PretrainedOptions.Model");
        throw new ArgumentException($"{source.ConfigPath} has neither 'architecture' (timm) nor 'model_type' (Hugging Face); pass PretrainedOptions.Model");
    }

    /// <summary>The <c>.mix</c> parameter values a config sets (by the model's <see cref="ModelInfo.ConfigKeys"/>), and
    /// the config's other keys.</summary>
    public static (IReadOnlyDictionary<string, object?> Values, IReadOnlyList<string> Unused) MapConfig(ModelInfo info, JsonElement? config)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        var unused = new List<string>();
        if (config is not { } c) return (values, unused);
        foreach (var p in c.EnumerateObject())
        {
            if (info.ConfigKeys.TryGetValue(p.Name, out var parameter)) values[parameter] = Plain(p.Value);
            else unused.Add(p.Name);
        }
        return (values, unused);
    }

    /// <summary>
    /// The prefix under which a checkpoint holds the model's keys when it holds none of them as they are: a task model's
    /// checkpoint (transformers' <c>PatchTSMixerForPrediction</c>: <c>model.encoder.…</c> and <c>head.…</c>) read as its
    /// base model. Null when the keys match as they are or no prefix covers most of them.
    /// </summary>
    public static string? KeyPrefix(IReadOnlyCollection<string> modelKeys, IReadOnlyCollection<string> checkpointKeys)
    {
        var names = new HashSet<string>(checkpointKeys, StringComparer.Ordinal);
        if (modelKeys.Count == 0 || modelKeys.Any(names.Contains)) return null;
        var candidates = modelKeys.SelectMany(k => checkpointKeys.Where(n => n.Length > k.Length && n.EndsWith("." + k, StringComparison.Ordinal))
            .Select(n => n.Substring(0, n.Length - k.Length))).Distinct(StringComparer.Ordinal);
        var best = candidates.Select(p => (Prefix: p, Count: modelKeys.Count(k => names.Contains(p + k))))
            .OrderByDescending(c => c.Count).ThenBy(c => c.Prefix.Length).FirstOrDefault();
        return best.Prefix is not null && best.Count * 2 > modelKeys.Count ? best.Prefix : null;
    }

    static object? Plain(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Number => v.TryGetInt64(out var l) ? (object)l : v.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Array => v.EnumerateArray().Select(Plain).ToArray(),
        JsonValueKind.Null => null,
        _ => v.GetRawText(),
    };

    static string? Str(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
