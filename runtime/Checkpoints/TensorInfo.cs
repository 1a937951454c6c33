using System;
using System.Collections.Generic;
using TorchSharp;

namespace Mix.Runtime.Checkpoints;

/// <summary>What a checkpoint file says about one tensor, read from its header without touching the data.</summary>
public sealed class TensorInfo
{
    private readonly long[] _shape;

    internal TensorInfo(string name, string dtype, long[] shape, long byteOffset, long byteLength)
    {
        Name = name;
        DType = dtype;
        ScalarType = SafeTensorsDTypes.ToScalarType(dtype);
        _shape = shape;
        ElementCount = SafeTensorsDTypes.ElementCount(shape);
        ByteOffset = byteOffset;
        ByteLength = byteLength;
    }

    /// <summary>The tensor's name (key) in the file.</summary>
    public string Name { get; }

    /// <summary>The dtype as the file names it (<c>F32</c>, <c>BF16</c>, <c>F8_E4M3</c>, ...).</summary>
    public string DType { get; }

    /// <summary>The TorchSharp type the tensor reads as, or null when TorchSharp has none (FP8 and unknown dtypes:
    /// read those with <c>ReadRaw</c>).</summary>
    public torch.ScalarType? ScalarType { get; }

    /// <summary>True when TorchSharp cannot represent the dtype and the tensor is only available as raw bytes.</summary>
    public bool IsRaw => ScalarType is null;

    /// <summary>The shape; empty for a scalar.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>Where the tensor's bytes begin, counted from the start of the file.</summary>
    public long ByteOffset { get; }

    /// <summary>How many bytes the tensor's data takes.</summary>
    public long ByteLength { get; }

    internal long[] ShapeArray() => (long[])_shape.Clone();

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name}: {DType} {SafeTensorsDTypes.FormatShape(_shape)} bytes [{ByteOffset}, {ByteOffset + ByteLength})";
}
