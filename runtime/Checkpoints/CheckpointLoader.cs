using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// Loads checkpoints into TorchSharp modules by state-dict key (parameters and persistent buffers) and saves a
/// module's state dict. The format follows the path: <c>.safetensors</c>, <c>*.index.json</c> (sharded safetensors),
/// <c>.dat</c>/<c>.bin</c> (TorchSharp's <c>Module.save</c> format), or a folder holding
/// <c>model.safetensors.index.json</c> or <c>model.safetensors</c>. Every format gets the same checks.
/// </summary>
/// <remarks>
/// Values are copied into the module's existing tensors with <c>copy_</c> under <c>no_grad</c>, so the Parameter
/// objects an optimizer already holds stay the ones the module uses; nothing is replaced. The whole comparison is done
/// from headers before any data is read or copied.
/// </remarks>
public static class CheckpointLoader
{
    /// <summary>Which format <paramref name="path"/> is read or written as, from its extension (or, for a folder,
    /// from the files in it).</summary>
    /// <param name="path">A checkpoint file, index or folder.</param>
    /// <exception cref="ArgumentException">The extension is not one this loader knows.</exception>
    public static CheckpointFormat DetectFormat(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, ShardedSafeTensors.DefaultIndexFileName))) return CheckpointFormat.ShardedSafeTensors;
            if (File.Exists(Path.Combine(path, "model.safetensors"))) return CheckpointFormat.SafeTensors;
            throw new ArgumentException($"Folder '{path}' has neither {ShardedSafeTensors.DefaultIndexFileName} nor model.safetensors.", nameof(path));
        }
        var extension = Path.GetExtension(path).ToLowerInvariant();
        return extension switch
        {
            ".safetensors" => CheckpointFormat.SafeTensors,
            ".json" => CheckpointFormat.ShardedSafeTensors,
            ".dat" or ".bin" => CheckpointFormat.TorchSharp,
            _ => throw new ArgumentException(
                $"Cannot tell the checkpoint format of '{path}': expected .safetensors, .index.json, .dat or .bin.", nameof(path)),
        };
    }

    /// <summary>
    /// Loads <paramref name="path"/> into <paramref name="module"/>. Strict (the default): if any key is missing or
    /// unexpected, or any shape or dtype differs, throws one <see cref="CheckpointMismatchException"/> listing every
    /// problem and copies nothing. Not strict: copies every tensor whose key, shape and dtype match and returns the
    /// problems in the report.
    /// </summary>
    /// <param name="module">The module whose <c>state_dict()</c> tensors receive the values.</param>
    /// <param name="path">The checkpoint (see <see cref="DetectFormat"/>).</param>
    /// <param name="strict">Throw on any difference instead of loading what matches.</param>
    /// <param name="convertDtypes">Allow floating-point dtype conversion (for example a BF16 or F16 checkpoint into
    /// an F32 model). Integer, bool and raw (FP8) dtypes never convert. Off by default.</param>
    /// <returns>The comparison and the keys loaded.</returns>
    /// <exception cref="CheckpointMismatchException">Strict, and the checkpoint does not match.</exception>
    /// <exception cref="CheckpointFormatException">The checkpoint file is malformed.</exception>
    public static CheckpointLoadReport Load(torch.nn.Module module, string path, bool strict = true, bool convertDtypes = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var source = OpenSource(path);
        return Load(module, source, strict, convertDtypes);
    }

    /// <summary>
    /// As <see cref="Load(torch.nn.Module, string, bool, bool)"/>, reading only the checkpoint's tensors whose names
    /// start with <paramref name="keyPrefix"/>, under their names without it: a task model's checkpoint
    /// (<c>model.encoder.…</c>, <c>head.…</c>) loads into its base model (<c>encoder.…</c>). Tensors outside the prefix
    /// are neither loaded nor reported.
    /// </summary>
    /// <param name="module">The module whose <c>state_dict()</c> tensors receive the values.</param>
    /// <param name="path">The checkpoint (see <see cref="DetectFormat"/>).</param>
    /// <param name="keyPrefix">The prefix to read under (for example <c>model.</c>).</param>
    /// <param name="strict">Throw on any difference instead of loading what matches.</param>
    /// <param name="convertDtypes">Allow floating-point dtype conversion.</param>
    public static CheckpointLoadReport Load(torch.nn.Module module, string path, string keyPrefix, bool strict = true, bool convertDtypes = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(keyPrefix);
        using var source = new PrefixedCheckpointSource(OpenSource(path), keyPrefix);
        return Load(module, source, strict, convertDtypes);
    }

    /// <summary>Every tensor name of a checkpoint (sorted), from its headers.</summary>
    /// <param name="path">The checkpoint (see <see cref="DetectFormat"/>).</param>
    public static IReadOnlyList<string> Keys(string path)
    {
        using var source = OpenSource(path);
        return source.Names.ToList();
    }

    internal static CheckpointLoadReport Load(torch.nn.Module module, ICheckpointSource source, bool strict, bool convertDtypes)
    {
        var stateDict = module.state_dict();
        var (report, plan) = Compare(stateDict, source, convertDtypes);
        if (strict && !report.IsExactMatch) throw new CheckpointMismatchException(report);

        // Read everything before touching the module: a file that turns out unreadable halfway (truncated by another
        // process) leaves the module as it was. Values are staged on the target's device, so the commit below is
        // same-shape, same-device copies only.
        var staged = new List<(torch.Tensor Target, torch.Tensor Value)>(plan.Count);
        try
        {
            foreach (var key in plan)
            {
                var target = stateDict[key];
                var value = source.Read(key, target.device);
                staged.Add((target, value));
                if (value.dtype != target.dtype)
                {
                    var converted = value.to_type(target.dtype);
                    value.Dispose();
                    staged[^1] = (target, converted);
                }
            }
            using (torch.no_grad())
                foreach (var (target, value) in staged)
                    target.copy_(value);
        }
        finally
        {
            foreach (var (_, value) in staged) value.Dispose();
        }
        var loaded = plan;
        return new CheckpointLoadReport(report.Path, report.MissingKeys, report.UnexpectedKeys, report.ShapeMismatches,
            report.DTypeMismatches, report.ConvertedKeys, loaded, report.TiedKeys, report.TiedConflicts);
    }

    /// <summary>Compares <paramref name="path"/> with <paramref name="module"/>'s state dict from headers alone and
    /// changes nothing. <see cref="CheckpointLoadReport.LoadedKeys"/> is empty.</summary>
    /// <param name="module">The module to compare against.</param>
    /// <param name="path">The checkpoint (see <see cref="DetectFormat"/>).</param>
    /// <param name="convertDtypes">Whether floating-point dtype differences count as convertible rather than mismatches.</param>
    public static CheckpointLoadReport Compare(torch.nn.Module module, string path, bool convertDtypes = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var source = OpenSource(path);
        return Compare(module.state_dict(), source, convertDtypes).Report;
    }

    /// <summary>Saves <paramref name="module"/>'s state dict (parameters and persistent buffers) to
    /// <paramref name="path"/>, atomically, as safetensors (<c>.safetensors</c>) or TorchSharp's format
    /// (<c>.dat</c>/<c>.bin</c>, loadable by <c>Module.load</c> too).</summary>
    /// <param name="module">The module to save.</param>
    /// <param name="path">The file to write.</param>
    /// <param name="metadata">Safetensors <c>__metadata__</c>; not supported by TorchSharp's format.</param>
    /// <exception cref="NotSupportedException">Metadata for a TorchSharp-format file, or a sharded target.</exception>
    public static void Save(torch.nn.Module module, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var entries = module.state_dict().Select(kv => (kv.Key, kv.Value)).ToList();
        switch (DetectFormat(path))
        {
            case CheckpointFormat.SafeTensors:
                if (Directory.Exists(path)) path = Path.Combine(path, "model.safetensors");
                SafeTensors.Save(path, entries, metadata);
                break;
            case CheckpointFormat.TorchSharp:
                if (metadata is { Count: > 0 })
                    throw new NotSupportedException("TorchSharp's .dat format has no place for metadata; save as .safetensors.");
                TorchSharpCheckpointFile.Save(path, entries);
                break;
            default:
                throw new NotSupportedException($"Saving sharded checkpoints is not supported ('{path}').");
        }
    }

    internal static ICheckpointSource OpenSource(string path) => DetectFormat(path) switch
    {
        CheckpointFormat.SafeTensors => SafeTensorsFile.Open(Directory.Exists(path) ? Path.Combine(path, "model.safetensors") : path),
        CheckpointFormat.ShardedSafeTensors => ShardedSafeTensors.Open(
            Directory.Exists(path) ? Path.Combine(path, ShardedSafeTensors.DefaultIndexFileName) : path),
        _ => TorchSharpCheckpointFile.Open(path),
    };

    private static (CheckpointLoadReport Report, List<string> Plan) Compare(
        Dictionary<string, torch.Tensor> stateDict, ICheckpointSource source, bool convertDtypes)
    {
        var missing = new List<string>();
        var shapes = new List<CheckpointTensorMismatch>();
        var dtypes = new List<CheckpointTensorMismatch>();
        var converted = new List<string>();
        var plan = new List<string>();

        foreach (var key in stateDict.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            if (!source.TryGetInfo(key, out var info))
            {
                missing.Add(key);
                continue;
            }
            var target = stateDict[key];
            var ok = true;
            var modelShape = target.shape;
            if (!modelShape.SequenceEqual(info.Shape))
            {
                shapes.Add(new CheckpointTensorMismatch(key, SafeTensorsDTypes.FormatShape(modelShape), SafeTensorsDTypes.FormatShape(info.Shape)));
                ok = false;
            }
            var modelType = target.dtype;
            if (info.ScalarType != modelType)
            {
                var convertible = convertDtypes && info.ScalarType is torch.ScalarType stored
                    && SafeTensorsDTypes.IsFloat(stored) && SafeTensorsDTypes.IsFloat(modelType);
                if (convertible)
                {
                    if (ok) converted.Add(key);
                }
                else
                {
                    var found = info.IsRaw ? $"{info.DType} (no TorchSharp type)" : info.DType;
                    dtypes.Add(new CheckpointTensorMismatch(key, SafeTensorsDTypes.Describe(modelType), found));
                    ok = false;
                }
            }
            if (ok) plan.Add(key);
        }
        var unexpected = source.Names.Where(n => !stateDict.ContainsKey(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        var (tied, conflicts) = ResolveTied(stateDict, source, missing, plan);
        var report = new CheckpointLoadReport(source.Path, missing, unexpected, shapes, dtypes, converted, Array.Empty<string>(), tied, conflicts);
        return (report, plan);
    }

    /// <summary>
    /// Tied weights (<c>@tied</c>: one tensor under several keys) take one value: a key the checkpoint omits is not
    /// missing when another key of its tensor is present (Hugging Face writes and expects <c>lm_head.weight</c>
    /// optionally), and of several present keys the one registered first (the owner) is copied last, so its value is
    /// the one that stays. Present keys with different values are a conflict, reported; reading them is the only data
    /// this comparison reads.
    /// </summary>
    private static (List<string> Tied, List<CheckpointTiedConflict> Conflicts) ResolveTied(
        Dictionary<string, torch.Tensor> stateDict, ICheckpointSource source, List<string> missing, List<string> plan)
    {
        var tied = new List<string>();
        var conflicts = new List<CheckpointTiedConflict>();
        var groups = stateDict
            .Where(kv => kv.Value.numel() > 0)
            .GroupBy(kv => kv.Value.Handle) // one Parameter object under several keys
            .Where(g => g.Count() > 1)
            .Select(g => g.Select(kv => kv.Key).ToList()); // state-dict order: the owner first
        foreach (var keys in groups)
        {
            var present = keys.Where(k => !missing.Contains(k)).ToList();
            if (present.Count == 0) continue; // all missing: reported as missing
            foreach (var k in keys.Where(missing.Contains))
            {
                missing.Remove(k);
                tied.Add(k);
            }
            var owner = present[0];
            if (!plan.Contains(owner)) continue; // its shape or dtype is already a problem
            // Every present key is copied into the one tensor; the owner last, so its value is the one that stays.
            plan.Remove(owner);
            plan.Add(owner);
            if (present.Count == 1) continue;
            using var ownerValue = source.Read(owner);
            foreach (var other in present.Skip(1).Where(plan.Contains))
            {
                using var scope = torch.NewDisposeScope();
                var otherValue = source.Read(other);
                if (!otherValue.shape.SequenceEqual(ownerValue.shape) || !otherValue.to(ownerValue.dtype).eq(ownerValue).all().item<bool>())
                    conflicts.Add(new CheckpointTiedConflict(other, owner));
            }
        }
        tied.Sort(StringComparer.Ordinal);
        conflicts.Sort((a, b) => StringComparer.Ordinal.Compare(a.Key, b.Key));
        return (tied, conflicts);
    }
}
