using System;
using System.Collections.Generic;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A tensor kept as its stored bytes because TorchSharp has no type for it (FP8 E4M3/E5M2 and any dtype this
/// library does not know): a uint8 tensor plus the dtype name and logical shape, so it can be written back unchanged.
/// Owns <see cref="Data"/>; dispose it when done.
/// </summary>
public sealed class RawTensor : IDisposable
{
    private readonly long[] _shape;

    /// <summary>Wraps bytes already in a uint8 tensor.</summary>
    /// <param name="dtype">The safetensors dtype name the bytes encode.</param>
    /// <param name="shape">The logical shape of the tensor the bytes encode.</param>
    /// <param name="data">A uint8 tensor holding exactly the stored bytes, in order; this object takes ownership.</param>
    public RawTensor(string dtype, IReadOnlyList<long> shape, torch.Tensor data)
    {
        ArgumentException.ThrowIfNullOrEmpty(dtype);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (data.dtype != torch.ScalarType.Byte)
            throw new ArgumentException($"Raw tensor data must be uint8, not {data.dtype}.", nameof(data));
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"Shape {SafeTensorsDTypes.FormatShape(shape)} has a negative dimension.", nameof(shape));
        _shape = new long[shape.Count];
        for (var i = 0; i < _shape.Length; i++) _shape[i] = shape[i];
        var expected = SafeTensorsDTypes.ByteLength(dtype, SafeTensorsDTypes.ElementCount(_shape));
        if (expected is long bytes && bytes != data.numel())
            throw new ArgumentException(
                $"dtype {dtype} with shape {SafeTensorsDTypes.FormatShape(_shape)} needs {bytes} bytes, but the data has {data.numel()}.",
                nameof(data));
        DType = dtype;
        Data = data;
    }

    /// <summary>The safetensors dtype name the bytes encode.</summary>
    public string DType { get; }

    /// <summary>The logical shape of the encoded tensor.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>The stored bytes as a uint8 tensor: shaped like <see cref="Shape"/> when each element is one byte
    /// (FP8), otherwise one-dimensional.</summary>
    public torch.Tensor Data { get; }

    /// <summary>Disposes <see cref="Data"/>.</summary>
    public void Dispose() => Data.Dispose();
}
