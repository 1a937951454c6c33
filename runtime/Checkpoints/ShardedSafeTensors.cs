using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Unicode;
using Mix.Runtime.IO;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A sharded safetensors checkpoint described by a Hugging Face index (<c>model.safetensors.index.json</c>):
/// <c>{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}</c>. Opens every shard named in the
/// weight map (paths relative to the index's folder, never outside it) and checks that each shard really holds the
/// tensors the map assigns to it. Only tensors listed in the weight map are visible.
/// </summary>
public sealed class ShardedSafeTensors : ICheckpointSource
{
    /// <summary>The usual file name of a Hugging Face safetensors index.</summary>
    public const string DefaultIndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsFile> _owner;
    private readonly List<SafeTensorsFile> _shards;
    private readonly string[] _names;

    private ShardedSafeTensors(string path, Dictionary<string, SafeTensorsFile> owner, List<SafeTensorsFile> shards,
        IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        _owner = owner;
        _shards = shards;
        _names = owner.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        Metadata = metadata;
    }

    /// <summary>The full path of the index file.</summary>
    public string Path { get; }

    /// <summary>Every tensor name in the weight map, sorted ordinally.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>The index's <c>metadata</c> object; string values as they are, other values as their JSON text
    /// (for example <c>total_size</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Full paths of the shard files, in the order first named by the weight map.</summary>
    public IReadOnlyList<string> ShardPaths => _shards.Select(s => s.Path).ToArray();

    /// <summary>Opens an index file and all its shards.</summary>
    /// <param name="indexPath">The <c>*.safetensors.index.json</c> file.</param>
    /// <exception cref="CheckpointFormatException">The index or a shard is malformed or not a regular file (a FIFO or
    /// device), a shard is missing, or a shard lacks a tensor that the weight map assigns to it.</exception>
    public static ShardedSafeTensors Open(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        var full = System.IO.Path.GetFullPath(indexPath);
        var directory = System.IO.Path.GetDirectoryName(full) ?? ".";
        CheckpointFormatException Bad(string? tensor, string problem) => new(full, tensor, problem);

        var problem = RegularFile.Problem(full, out var indexLength);
        if (problem == "missing") throw new FileNotFoundException($"Checkpoint index '{full}' does not exist.", full);
        if (problem is not null) throw Bad(null, $"it is {problem}, not a regular file; a checkpoint index must be a regular file");
        if (indexLength > SafeTensorsFile.MaxHeaderBytes)
            throw Bad(null, $"the index is {indexLength} bytes, more than the {SafeTensorsFile.MaxHeaderBytes}-byte limit");
        var bytes = File.ReadAllBytes(full);
        if (!Utf8.IsValid(bytes)) throw Bad(null, "the index is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw Bad(null, $"the index is not valid JSON: {e.Message}");
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var map = new List<(string Tensor, string Shard)>();
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad(null, $"the index is a JSON {root.ValueKind}, not an object");
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
                foreach (var p in meta.EnumerateObject())
                    metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
            if (!root.TryGetProperty("weight_map", out var weightMap) || weightMap.ValueKind != JsonValueKind.Object)
                throw Bad(null, "the index has no 'weight_map' object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in weightMap.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(p.Value.GetString()))
                    throw Bad(p.Name, "the weight_map value is not a shard file name");
                if (!seen.Add(p.Name)) throw Bad(p.Name, "the name appears twice in weight_map");
                map.Add((p.Name, p.Value.GetString()!));
            }
        }

        var shardsByFile = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        var shards = new List<SafeTensorsFile>();
        var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shardName) in map)
            {
                if (!shardsByFile.TryGetValue(shardName, out var shard))
                {
                    var shardPath = ResolveShard(directory, shardName)
                        ?? throw Bad(tensor, $"shard '{shardName}' is not a file name inside the index's folder");
                    if (!File.Exists(shardPath)) throw Bad(tensor, $"shard '{shardName}' does not exist ({shardPath})");
                    shard = SafeTensorsFile.Open(shardPath);
                    shardsByFile.Add(shardName, shard);
                    shards.Add(shard);
                }
                if (!shard.Contains(tensor))
                    throw Bad(tensor, $"weight_map puts it in shard '{shardName}', but that shard has no such tensor");
                owner.Add(tensor, shard);
            }
            return new ShardedSafeTensors(full, owner, shards, metadata);
        }
        catch
        {
            foreach (var s in shards) s.Dispose();
            throw;
        }
    }

    private static string? ResolveShard(string directory, string shardName)
    {
        if (System.IO.Path.IsPathRooted(shardName)) return null;
        var resolved = System.IO.Path.GetFullPath(System.IO.Path.Combine(directory, shardName));
        var root = System.IO.Path.TrimEndingDirectorySeparator(directory) + System.IO.Path.DirectorySeparatorChar;
        return resolved.StartsWith(root, StringComparison.Ordinal) ? resolved : null;
    }

    /// <summary>Whether the weight map lists <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The full path of the shard that holds <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">The weight map does not list it.</exception>
    public string ShardOf(string name) => Shard(name).Path;

    /// <summary>The header entry of <paramref name="name"/> in its shard.</summary>
    /// <param name="name">The tensor name.</param>
    /// <exception cref="KeyNotFoundException">The weight map does not list it.</exception>
    public TensorInfo Info(string name) => Shard(name).Info(name);

    /// <summary>The header entry of <paramref name="name"/>, if the weight map lists it.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="info">The entry, when found.</param>
    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info)
    {
        info = null;
        return _owner.TryGetValue(name, out var shard) && shard.TryGetInfo(name, out info);
    }

    /// <summary>Reads <paramref name="name"/> from its shard into a new tensor (see <see cref="SafeTensorsFile.Read"/>).</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="device">Where the result should live; CPU when null.</param>
    public torch.Tensor Read(string name, torch.Device? device = null) => Shard(name).Read(name, device);

    /// <summary>Reads <paramref name="name"/>'s stored bytes unchanged (see <see cref="SafeTensorsFile.ReadRaw"/>).</summary>
    /// <param name="name">The tensor name.</param>
    public RawTensor ReadRaw(string name) => Shard(name).ReadRaw(name);

    private SafeTensorsFile Shard(string name) => _owner.TryGetValue(name, out var shard)
        ? shard
        : throw new KeyNotFoundException($"No tensor '{name}' in the weight map of '{Path}'.");

    /// <summary>Closes every shard. Tensors already read stay valid.</summary>
    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}
