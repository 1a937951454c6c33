using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Mix.Runtime.Checkpoints;

namespace Mix;

/// <summary>What <see cref="Models.FromPretrained(string, out PretrainedReport, PretrainedOptions?)"/> found and did:
/// the model it built and with which parameters, the files it read, the <c>config.json</c> keys it mapped and those it
/// did not use, and the checkpoint comparison (loaded, tied, converted, missing, unexpected keys).</summary>
public sealed class PretrainedReport
{
    internal PretrainedReport(string model, string weights, string? config, string? snapshot, IReadOnlyDictionary<string, object?> parameters,
        IReadOnlyList<string> configKeysUsed, IReadOnlyList<string> configKeysUnused, string? keyPrefix, IReadOnlyList<string> ignoredKeys,
        CheckpointLoadReport checkpoint)
    {
        KeyPrefix = keyPrefix;
        IgnoredKeys = ignoredKeys;
        Model = model;
        Weights = weights;
        Config = config;
        Snapshot = snapshot;
        Parameters = parameters;
        ConfigKeysUsed = configKeysUsed;
        ConfigKeysUnused = configKeysUnused;
        Checkpoint = checkpoint;
    }

    /// <summary>The zoo model built (<c>mamba_130m</c>).</summary>
    public string Model { get; }

    /// <summary>The weights file read: a <c>.safetensors</c> file or a sharded index.</summary>
    public string Weights { get; }

    /// <summary>The <c>config.json</c> read, or null when there was none.</summary>
    public string? Config { get; }

    /// <summary>The hub-cache snapshot folder the path resolved to, or null outside a hub cache.</summary>
    public string? Snapshot { get; }

    /// <summary>The <c>.mix</c> parameters the model was built with (from the config and the options), by name.</summary>
    public IReadOnlyDictionary<string, object?> Parameters { get; }

    /// <summary>The <c>config.json</c> keys that set a parameter.</summary>
    public IReadOnlyList<string> ConfigKeysUsed { get; }

    /// <summary>The <c>config.json</c> keys this model does not read (informational; the weights' shapes still decide).</summary>
    public IReadOnlyList<string> ConfigKeysUnused { get; }

    /// <summary>The prefix the model's keys were read under (<c>model.</c> for a transformers task model's checkpoint
    /// such as <c>PatchTSMixerForPrediction</c>), or null when the checkpoint has the model's keys as they are.</summary>
    public string? KeyPrefix { get; }

    /// <summary>Checkpoint tensors outside <see cref="KeyPrefix"/> (a task head), not loaded.</summary>
    public IReadOnlyList<string> IgnoredKeys { get; }

    /// <summary>The key-by-key comparison and load (<see cref="CheckpointLoadReport.LoadedKeys"/>,
    /// <see cref="CheckpointLoadReport.TiedKeys"/>, <see cref="CheckpointLoadReport.ConvertedKeys"/>, missing, unexpected).</summary>
    public CheckpointLoadReport Checkpoint { get; }

    /// <inheritdoc />
    public override string ToString()
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"{Model} from {Weights}");
        if (Config is not null) s.Append(CultureInfo.InvariantCulture, $" (config {Config}: {ConfigKeysUsed.Count} keys mapped, {ConfigKeysUnused.Count} not used)");
        if (KeyPrefix is not null) s.Append('\n').Append(CultureInfo.InvariantCulture, $"  keys read under '{KeyPrefix}'; {IgnoredKeys.Count} other tensors not loaded: {string.Join(", ", IgnoredKeys)}");
        s.Append('\n').Append("  parameters: ").Append(string.Join(", ", Parameters.Select(p => $"{p.Key}={Show(p.Value)}")));
        s.Append('\n').Append("  ").Append(Checkpoint.ToString().Replace("\n", "\n  "));
        return s.ToString();
    }

    static string Show(object? v) => v switch
    {
        null => "none",
        string t => t,
        System.Collections.IEnumerable e => "[" + string.Join(", ", e.Cast<object?>().Select(Show)) + "]",
        _ => System.Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };
}
