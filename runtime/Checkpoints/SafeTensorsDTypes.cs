using System;
using System.Collections.Generic;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// The safetensors dtype names and how they map onto TorchSharp's <see cref="torch.ScalarType"/>.
/// </summary>
public static class SafeTensorsDTypes
{
    private static readonly Dictionary<string, torch.ScalarType> ToScalar = new(StringComparer.Ordinal)
    {
        ["F64"] = torch.ScalarType.Float64,
        ["F32"] = torch.ScalarType.Float32,
        ["F16"] = torch.ScalarType.Float16,
        ["BF16"] = torch.ScalarType.BFloat16,
        ["I64"] = torch.ScalarType.Int64,
        ["I32"] = torch.ScalarType.Int32,
        ["I16"] = torch.ScalarType.Int16,
        ["I8"] = torch.ScalarType.Int8,
        ["U8"] = torch.ScalarType.Byte,
        ["BOOL"] = torch.ScalarType.Bool,
        ["C64"] = torch.ScalarType.ComplexFloat32,
    };

    // Bits per element of every dtype the format defines, also those TorchSharp cannot hold (kept as raw bytes).
    private static readonly Dictionary<string, int> Bits = new(StringComparer.Ordinal)
    {
        ["F64"] = 64, ["F32"] = 32, ["F16"] = 16, ["BF16"] = 16,
        ["I64"] = 64, ["I32"] = 32, ["I16"] = 16, ["I8"] = 8,
        ["U64"] = 64, ["U32"] = 32, ["U16"] = 16, ["U8"] = 8,
        ["BOOL"] = 8, ["C64"] = 64,
        ["F8_E4M3"] = 8, ["F8_E5M2"] = 8, ["F8_E8M0"] = 8,
        ["F6_E2M3"] = 6, ["F6_E3M2"] = 6, ["F4"] = 4,
    };

    /// <summary>The TorchSharp scalar type for a safetensors dtype name, or null when TorchSharp has none
    /// (FP8, FP6, FP4, unsigned 16/32/64-bit, and any name this library does not know).</summary>
    /// <param name="dtype">A safetensors dtype name such as <c>F32</c> or <c>BF16</c>.</param>
    public static torch.ScalarType? ToScalarType(string dtype) =>
        ToScalar.TryGetValue(dtype, out var st) ? st : null;

    /// <summary>The safetensors dtype name for a TorchSharp scalar type.</summary>
    /// <param name="type">The scalar type.</param>
    /// <exception cref="NotSupportedException">The type has no safetensors name (complex128, quantized types).</exception>
    public static string FromScalarType(torch.ScalarType type) => TryFromScalarType(type)
        ?? throw new NotSupportedException($"TorchSharp dtype {type} has no safetensors equivalent.");

    /// <summary>The safetensors dtype name for a TorchSharp scalar type, or null when it has none.</summary>
    /// <param name="type">The scalar type.</param>
    public static string? TryFromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 => "F64",
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Bool => "BOOL",
        torch.ScalarType.ComplexFloat32 => "C64",
        _ => null,
    };

    /// <summary>A readable name for a TorchSharp scalar type: its safetensors name where it has one, else the enum name.</summary>
    /// <param name="type">The scalar type.</param>
    public static string Describe(torch.ScalarType type) => TryFromScalarType(type) ?? type.ToString();

    /// <summary>Bits per element of a safetensors dtype, or null for a name this library does not know.</summary>
    /// <param name="dtype">A safetensors dtype name.</param>
    public static int? BitsPerElement(string dtype) => Bits.TryGetValue(dtype, out var b) ? b : null;

    /// <summary>Whether a scalar type is a real floating-point type (F16, BF16, F32, F64).</summary>
    internal static bool IsFloat(torch.ScalarType t) =>
        t is torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float32 or torch.ScalarType.Float64;

    /// <summary>Bytes for <paramref name="elements"/> elements of a dtype of known size, or null when the dtype is
    /// unknown or the element count does not fill whole bytes.</summary>
    internal static long? ByteLength(string dtype, long elements)
    {
        if (BitsPerElement(dtype) is not int bits) return null;
        var totalBits = checked(elements * bits);
        return totalBits % 8 == 0 ? totalBits / 8 : null;
    }

    /// <summary>Elements in a tensor of this shape (1 for a scalar), with overflow checked.</summary>
    internal static long ElementCount(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        return n;
    }

    /// <summary>A shape as <c>[2, 3]</c>.</summary>
    internal static string FormatShape(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";
}
