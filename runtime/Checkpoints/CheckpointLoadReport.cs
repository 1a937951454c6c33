using System.Collections.Generic;
using System.Text;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// How a checkpoint compared with a model's state dict, and what was loaded. A strict load that finds any problem
/// throws <see cref="CheckpointMismatchException"/> carrying this report before anything is copied; a non-strict load
/// returns it after loading every tensor that matched.
/// </summary>
public sealed class CheckpointLoadReport
{
    internal CheckpointLoadReport(string path, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected,
        IReadOnlyList<CheckpointTensorMismatch> shapeMismatches, IReadOnlyList<CheckpointTensorMismatch> dtypeMismatches,
        IReadOnlyList<string> converted, IReadOnlyList<string> loaded,
        IReadOnlyList<string>? tiedKeys = null, IReadOnlyList<CheckpointTiedConflict>? tiedConflicts = null)
    {
        TiedKeys = tiedKeys ?? System.Array.Empty<string>();
        TiedConflicts = tiedConflicts ?? System.Array.Empty<CheckpointTiedConflict>();
        Path = path;
        MissingKeys = missing;
        UnexpectedKeys = unexpected;
        ShapeMismatches = shapeMismatches;
        DTypeMismatches = dtypeMismatches;
        ConvertedKeys = converted;
        LoadedKeys = loaded;
    }

    /// <summary>The checkpoint that was compared.</summary>
    public string Path { get; }

    /// <summary>State-dict keys of the model that the checkpoint lacks (left unchanged), sorted.</summary>
    public IReadOnlyList<string> MissingKeys { get; }

    /// <summary>Checkpoint keys the model has no parameter or buffer for (ignored), sorted.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; }

    /// <summary>Keys whose shapes differ (not loaded), sorted.</summary>
    public IReadOnlyList<CheckpointTensorMismatch> ShapeMismatches { get; }

    /// <summary>Keys whose dtypes differ and were not converted (not loaded), sorted.</summary>
    public IReadOnlyList<CheckpointTensorMismatch> DTypeMismatches { get; }

    /// <summary>Keys loaded with a floating-point dtype conversion (only when conversion was asked for), sorted.</summary>
    public IReadOnlyList<string> ConvertedKeys { get; }

    /// <summary>Keys whose values were copied into the model, sorted. Empty when a strict load threw.</summary>
    public IReadOnlyList<string> LoadedKeys { get; }

    /// <summary>Keys of tied weights (one tensor under several keys, <c>@tied</c>) that the checkpoint omits and that
    /// were filled through the key they share, as Hugging Face does for <c>lm_head.weight</c>; not missing. Sorted.</summary>
    public IReadOnlyList<string> TiedKeys { get; }

    /// <summary>Tied keys that the checkpoint holds with different values: the model has one tensor, so it takes the
    /// value of the key registered first (the layer that owns the parameter). A problem: a strict load throws.</summary>
    public IReadOnlyList<CheckpointTiedConflict> TiedConflicts { get; }

    /// <summary>True when nothing is missing, unexpected or mismatched.</summary>
    public bool IsExactMatch =>
        MissingKeys.Count == 0 && UnexpectedKeys.Count == 0 && ShapeMismatches.Count == 0 && DTypeMismatches.Count == 0
        && TiedConflicts.Count == 0;

    /// <summary>Number of problems: missing + unexpected + shape mismatches + dtype mismatches + tied conflicts.</summary>
    public int ProblemCount => MissingKeys.Count + UnexpectedKeys.Count + ShapeMismatches.Count + DTypeMismatches.Count + TiedConflicts.Count;

    /// <summary>One line per problem, in the order missing, unexpected, shape, dtype:
    /// <c>missing key: K</c>, <c>unexpected key: K</c>, <c>shape mismatch: K: model [..], checkpoint [..]</c>,
    /// <c>dtype mismatch: K: model F32, checkpoint F16</c>, <c>tied keys differ: K and O hold different values; ...</c>.</summary>
    public IReadOnlyList<string> ProblemLines()
    {
        var lines = new List<string>();
        foreach (var k in MissingKeys) lines.Add($"missing key: {k}");
        foreach (var k in UnexpectedKeys) lines.Add($"unexpected key: {k}");
        foreach (var m in ShapeMismatches) lines.Add($"shape mismatch: {m}");
        foreach (var m in DTypeMismatches) lines.Add($"dtype mismatch: {m}");
        foreach (var c in TiedConflicts) lines.Add($"tied keys differ: {c}");
        return lines;
    }

    /// <inheritdoc />
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append($"Checkpoint '{Path}': {LoadedKeys.Count} loaded");
        if (ConvertedKeys.Count > 0) text.Append($" ({ConvertedKeys.Count} converted)");
        text.Append($", {MissingKeys.Count} missing, {UnexpectedKeys.Count} unexpected, ");
        text.Append($"{ShapeMismatches.Count} shape mismatches, {DTypeMismatches.Count} dtype mismatches");
        if (TiedKeys.Count > 0) text.Append($", {TiedKeys.Count} tied (filled through the key they share)");
        if (TiedConflicts.Count > 0) text.Append($", {TiedConflicts.Count} tied conflicts");
        foreach (var line in ProblemLines()) text.Append('\n').Append("  ").Append(line);
        return text.ToString();
    }
}
