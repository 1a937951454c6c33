using System.Collections.Generic;
using TorchSharp;

namespace Mix;

/// <summary>How <see cref="Models.Create(string, ModelOptions?)"/> builds a zoo model.</summary>
public sealed record ModelOptions
{
    /// <summary>Sets the model's <c>num_classes</c> parameter (an error for a model without one).</summary>
    public long? NumClasses { get; init; }

    /// <summary>Converts the parameters and buffers to this floating-point type after building.</summary>
    public torch.ScalarType? DType { get; init; }

    /// <summary>Moves the model to this device after building.</summary>
    public torch.Device? Device { get; init; }

    /// <summary>Values for the model's <c>.mix</c> parameters by their <c>.mix</c> names (<c>["d_model"] = 256</c>,
    /// <c>["depths"] = new[] { 2, 2, 6, 2 }</c>, <c>["mode"] = "mix_channel"</c>). Numbers, bools, strings (enums) and
    /// arrays of them are accepted; mixer/norm/act values are not.</summary>
    public IReadOnlyDictionary<string, object?> Overrides { get; init; } = new Dictionary<string, object?>();
}
