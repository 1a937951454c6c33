using System;
using System.Collections.Generic;

namespace Mix;

/// <summary>
/// What the registry knows about one zoo model: its <c>.mix</c> definition and generated class, and the metadata table
/// next to its zoo file (<c>models/&lt;file&gt;.json</c>), in the spirit of timm's <c>pretrained_cfg</c>. Image settings
/// (input size, crop, interpolation, mean/std) describe the preprocessing the named timm weights expect.
/// </summary>
public sealed record ModelInfo
{
    /// <summary>The <c>.mix</c> model name (<c>poolformer_s12</c>).</summary>
    public required string Name { get; init; }

    /// <summary>The zoo file that defines it (<c>poolformer.mix</c>); importable as <c>mix/models/&lt;file&gt;</c>.</summary>
    public required string File { get; init; }

    /// <summary>The generated class (<c>Mix.Zoo.PoolformerS12</c>).</summary>
    public required Type Type { get; init; }

    /// <summary>What the model computes: <c>image-classification</c>, <c>causal-lm</c>, <c>time-series-forecasting</c>,
    /// <c>time-series-feature-extraction</c>, <c>feature-extraction</c> (an encoder's last hidden state), <c>audio-classification</c>.</summary>
    public required string Task { get; init; }

    /// <summary>Classes of the pretrained head, when the model classifies.</summary>
    public long? NumClasses { get; init; }

    /// <summary>Input size (channels, height, width) of the pretrained weights.</summary>
    public IReadOnlyList<long>? InputSize { get; init; }

    /// <summary>Center-crop fraction used at evaluation (timm's <c>crop_pct</c>).</summary>
    public double? CropPct { get; init; }

    /// <summary>Resize interpolation (<c>bicubic</c>, <c>bilinear</c>).</summary>
    public string? Interpolation { get; init; }

    /// <summary>Per-channel normalization mean.</summary>
    public IReadOnlyList<double>? Mean { get; init; }

    /// <summary>Per-channel normalization standard deviation.</summary>
    public IReadOnlyList<double>? Std { get; init; }

    /// <summary>The architecture's paper.</summary>
    public string? Paper { get; init; }

    /// <summary>The reference implementation whose layout (and state-dict keys) the zoo follows.</summary>
    public string? Source { get; init; }

    /// <summary>The license of that reference implementation (not of any weights).</summary>
    public string? License { get; init; }

    /// <summary>timm's name (with pretrained tag) whose state-dict keys the model has, or null.</summary>
    public string? Timm { get; init; }

    /// <summary>timm's architecture name (<see cref="Timm"/> before the tag), as timm's <c>config.json</c> writes it.</summary>
    public string? TimmArchitecture => Timm is null ? null : Timm.Split('.')[0];

    /// <summary>The Hugging Face transformers class whose state-dict keys the model has, or null.</summary>
    public string? HfClass { get; init; }

    /// <summary>The <c>model_type</c> of a Hugging Face <c>config.json</c> that selects this model, or null.</summary>
    public string? HfModelType { get; init; }

    /// <summary>A Hugging Face Hub repository holding weights with these keys (never downloaded by this library).</summary>
    public string? HfHubId { get; init; }

    /// <summary><c>config.json</c> key → <c>.mix</c> parameter, used by <see cref="Models.FromPretrained(string, PretrainedOptions?)"/>.</summary>
    public IReadOnlyDictionary<string, string> ConfigKeys { get; init; } = new Dictionary<string, string>();
}
