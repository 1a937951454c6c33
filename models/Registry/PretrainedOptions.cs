using System.Collections.Generic;
using TorchSharp;

namespace Mix;

/// <summary>How <see cref="Models.FromPretrained(string, PretrainedOptions?)"/> finds, builds and loads a checkpoint.</summary>
public sealed record PretrainedOptions
{
    /// <summary>The zoo model to build; by default taken from <c>config.json</c> (timm's <c>architecture</c>, Hugging
    /// Face's <c>model_type</c>).</summary>
    public string? Model { get; init; }

    /// <summary>Sets <c>num_classes</c> (over the config's value).</summary>
    public long? NumClasses { get; init; }

    /// <summary>The model's floating-point type; the checkpoint's floating-point tensors are converted to it. Default:
    /// the type the model is built in (float32).</summary>
    public torch.ScalarType? DType { get; init; }

    /// <summary>Moves the loaded model to this device.</summary>
    public torch.Device? Device { get; init; }

    /// <summary><c>.mix</c> parameter values, applied over those read from <c>config.json</c>.</summary>
    public IReadOnlyDictionary<string, object?> Overrides { get; init; } = new Dictionary<string, object?>();

    /// <summary>Strict (the default): any missing, unexpected or mis-shaped key throws
    /// <see cref="Mix.Runtime.Checkpoints.CheckpointMismatchException"/> and nothing is loaded. Not strict: what matches
    /// is loaded and the rest is listed in the report.</summary>
    public bool Strict { get; init; } = true;

    /// <summary>The hub-cache revision: a branch or tag under <c>refs/</c> (default <c>main</c>) or a commit hash under
    /// <c>snapshots/</c>.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>The Hugging Face hub cache to look in for <c>org/name</c> ids. Default: <c>HF_HUB_CACHE</c>, else
    /// <c>HF_HOME</c>/hub, else <c>~/.cache/huggingface/hub</c>.</summary>
    public string? CacheDir { get; init; }
}
