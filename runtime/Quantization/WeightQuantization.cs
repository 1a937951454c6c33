using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>Weight-only quantization formats.</summary>
public enum WeightQuantMode
{
    /// <summary>int8, one symmetric scale per output channel: <c>w ≈ q · scale[o]</c>, q ∈ [−127, 127].</summary>
    Int8PerChannel,

    /// <summary>int4, asymmetric groups along the input dim: <c>w ≈ (q − zero[o,g]) · scale[o,g]</c>, q ∈ [0, 15],
    /// two codes per byte (low nibble = even input index).</summary>
    Int4Grouped,
}

/// <summary>Reference (de)quantization kernels for weights <c>[out, in]</c> (any device, computed in float32).</summary>
public static class WeightQuantizer
{
    /// <summary>int8 per-output-channel symmetric quantization: returns codes <c>int8 [out, in]</c> and scales <c>float32 [out]</c>.</summary>
    /// <param name="weight">Weights <c>[out, in]</c>.</param>
    public static (Tensor qweight, Tensor scales) QuantizeInt8(Tensor weight)
    {
        using var scope = torch.NewDisposeScope();
        var w = weight.detach().to_type(ScalarType.Float32);
        var scales = w.abs().amax(new long[] { 1 }).clamp_min(1e-12) / 127.0;
        var q = (w / scales.unsqueeze(1)).round().clamp(-127, 127).to_type(ScalarType.Int8);
        return (q.MoveToOuterDisposeScope(), scales.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="QuantizeInt8"/>: float32 <c>[out, in]</c>.</summary>
    /// <param name="qweight">Codes.</param>
    /// <param name="scales">Scales.</param>
    public static Tensor DequantizeInt8(Tensor qweight, Tensor scales)
    {
        using var scope = torch.NewDisposeScope();
        return (qweight.to_type(ScalarType.Float32) * scales.to_type(ScalarType.Float32).unsqueeze(1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// int4 group-wise asymmetric quantization along the input dim: returns packed codes <c>uint8 [out, in/2]</c>,
    /// scales <c>float32 [out, in/group]</c> and zero points <c>uint8 [out, in/group]</c> (0..15).
    /// </summary>
    /// <param name="weight">Weights <c>[out, in]</c>; <c>in</c> must be a multiple of <paramref name="groupSize"/>.</param>
    /// <param name="groupSize">Input features per group (32, 64 or 128 typically; any even divisor works).</param>
    public static (Tensor packed, Tensor scales, Tensor zeros) QuantizeInt4(Tensor weight, int groupSize)
    {
        long o = weight.shape[0], i = weight.shape[1];
        CheckGroup(i, groupSize);
        using var scope = torch.NewDisposeScope();
        var w = weight.detach().to_type(ScalarType.Float32).reshape(o, i / groupSize, groupSize);
        var min = w.amin(new long[] { 2 }).clamp_max(0);
        var max = w.amax(new long[] { 2 }).clamp_min(0);
        var scales = ((max - min) / 15.0).clamp_min(1e-12);
        var zeros = (-min / scales).round().clamp(0, 15);
        var q = (w / scales.unsqueeze(2) + zeros.unsqueeze(2)).round().clamp(0, 15).reshape(o, i).to_type(ScalarType.Int32);
        var packed = PackNibbles(q);
        return (packed.MoveToOuterDisposeScope(), scales.MoveToOuterDisposeScope(), zeros.to_type(ScalarType.Byte).MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="QuantizeInt4"/>: float32 <c>[out, in]</c>.</summary>
    /// <param name="packed">Packed codes <c>[out, in/2]</c>.</param>
    /// <param name="scales">Scales <c>[out, in/group]</c>.</param>
    /// <param name="zeros">Zero points <c>[out, in/group]</c>.</param>
    public static Tensor DequantizeInt4(Tensor packed, Tensor scales, Tensor zeros)
    {
        using var scope = torch.NewDisposeScope();
        long o = packed.shape[0], i = packed.shape[1] * 2, groups = scales.shape[1];
        var q = UnpackNibbles(packed).to_type(ScalarType.Float32).reshape(o, groups, i / groups);
        var w = (q - zeros.to_type(ScalarType.Float32).unsqueeze(2)) * scales.to_type(ScalarType.Float32).unsqueeze(2);
        return w.reshape(o, i).MoveToOuterDisposeScope();
    }

    /// <summary>Quantize then dequantize (the weight the quantized layer will effectively use).</summary>
    /// <param name="weight">Weights <c>[out, in]</c>.</param>
    /// <param name="mode">Format.</param>
    /// <param name="groupSize">int4 group size.</param>
    public static Tensor FakeQuantize(Tensor weight, WeightQuantMode mode, int groupSize)
    {
        using var scope = torch.NewDisposeScope();
        Tensor r;
        if (mode == WeightQuantMode.Int8PerChannel)
        {
            var (q, s) = QuantizeInt8(weight);
            r = DequantizeInt8(q, s);
        }
        else
        {
            var (p, s, z) = QuantizeInt4(weight, groupSize);
            r = DequantizeInt4(p, s, z);
        }
        return r.MoveToOuterDisposeScope();
    }

    /// <summary>Packs codes 0..15 along the last axis, two per byte (even index in the low nibble).</summary>
    /// <param name="codes">Integer codes <c>[..., 2k]</c>.</param>
    public static Tensor PackNibbles(Tensor codes)
    {
        using var scope = torch.NewDisposeScope();
        var c = codes.to_type(ScalarType.Int32);
        var shape = c.shape;
        var pairs = c.reshape(-1, shape[^1] / 2, 2);
        var lo = pairs.select(2, 0);
        var hi = pairs.select(2, 1);
        var packed = (lo + hi * 16).to_type(ScalarType.Byte);
        var outShape = (long[])shape.Clone();
        outShape[^1] /= 2;
        return packed.reshape(outShape).MoveToOuterDisposeScope();
    }

    /// <summary>Inverse of <see cref="PackNibbles"/>: int32 codes <c>[..., 2k]</c>.</summary>
    /// <param name="packed">Packed bytes <c>[..., k]</c>.</param>
    public static Tensor UnpackNibbles(Tensor packed)
    {
        using var scope = torch.NewDisposeScope();
        var p = packed.to_type(ScalarType.Int32);
        var lo = p.bitwise_and(15);
        var hi = p.bitwise_right_shift(4).bitwise_and(15);
        var outShape = (long[])packed.shape.Clone();
        outShape[^1] *= 2;
        return torch.stack(new[] { lo, hi }, -1).reshape(outShape).MoveToOuterDisposeScope();
    }

    internal static void CheckGroup(long inFeatures, int groupSize)
    {
        if (groupSize <= 0 || groupSize % 2 != 0 || inFeatures % groupSize != 0)
            throw new ArgumentException($"group size {groupSize} must be even and divide the input features ({inFeatures})", nameof(groupSize));
    }
}
