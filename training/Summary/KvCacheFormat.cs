using System;
using System.Globalization;

namespace Mix.Training.Summary;

/// <summary>The storage schemes a KV cache can use.</summary>
public enum KvCacheScheme
{
    /// <summary>Keys and values at <see cref="KvCacheFormat.ElementBytes"/> each.</summary>
    FullPrecision,
    /// <summary>KIVI 4-bit.</summary>
    Kivi4,
    /// <summary>KIVI 2-bit.</summary>
    Kivi2,
    /// <summary>VidKV 1.x-bit (1-bit keys with 2-bit outlier channels, ternary values).</summary>
    VidKv,
}

/// <summary>
/// How a model's KV cache is stored, for the cache columns of a <see cref="ModelSummary"/>: full precision, or a
/// quantized scheme with group <see cref="GroupSize"/> whose most recent R…R+G−1 tokens stay in a full-precision tail
/// (a fixed cost per sequence). The bit counts are those of <c>Mix.Runtime.Quantization.KvQuantizationOptions</c>;
/// they are restated here because the summary, like the <c>mix</c> CLI, depends on the front end only (a test keeps
/// the two equal).
/// </summary>
/// <param name="Scheme">Storage scheme.</param>
/// <param name="GroupSize">G: keys quantized per channel over G tokens, values per token over min(G, head_dim) channels.</param>
/// <param name="ResidualLength">R: recent tokens kept in full precision.</param>
/// <param name="ElementBytes">Bytes of a full-precision element (4 = float32).</param>
/// <param name="OutlierFraction">VidKV: share of key channels kept at 2 bits.</param>
public sealed record KvCacheFormat(KvCacheScheme Scheme, int GroupSize = 32, int ResidualLength = 32, int ElementBytes = 4,
    double OutlierFraction = 0.125)
{
    /// <summary>float32 keys and values.</summary>
    public static KvCacheFormat Float32 { get; } = new(KvCacheScheme.FullPrecision);

    /// <summary>"fp32", "kivi4".</summary>
    public string ShortName => Scheme == KvCacheScheme.FullPrecision
        ? "fp" + (8 * ElementBytes).ToString(CultureInfo.InvariantCulture)
        : Scheme.ToString().ToLowerInvariant();

    /// <summary>"fp32", "kivi4, G=32, R=32".</summary>
    public string Name => Scheme == KvCacheScheme.FullPrecision
        ? ShortName
        : string.Create(CultureInfo.InvariantCulture, $"{ShortName}, G={GroupSize}, R={ResidualLength}");

    /// <summary>Parses <c>fp32</c>, <c>fp16</c>, <c>kivi4</c>, <c>kivi2</c> or <c>vidkv</c>.</summary>
    /// <param name="text">The name.</param>
    /// <param name="groupSize">G for the quantized schemes.</param>
    /// <param name="residualLength">R for the quantized schemes.</param>
    public static KvCacheFormat Parse(string text, int groupSize = 32, int residualLength = 32)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (groupSize <= 0) throw new ArgumentOutOfRangeException(nameof(groupSize), "the KV group size must be positive");
        if (residualLength < 0) throw new ArgumentOutOfRangeException(nameof(residualLength), "the residual length must be ≥ 0");
        return text.Trim().ToLowerInvariant() switch
        {
            "fp32" => Float32,
            "fp16" or "bf16" => new KvCacheFormat(KvCacheScheme.FullPrecision, ElementBytes: 2),
            "kivi4" => new KvCacheFormat(KvCacheScheme.Kivi4, groupSize, residualLength),
            "kivi2" => new KvCacheFormat(KvCacheScheme.Kivi2, groupSize, residualLength),
            "vidkv" => new KvCacheFormat(KvCacheScheme.VidKv, groupSize, residualLength),
            _ => throw new FormatException($"unknown KV cache format '{text}'; expected fp32, fp16, kivi4, kivi2 or vidkv"),
        };
    }

    /// <summary>Bytes one more token costs one row of a KV layer with <paramref name="heads"/> heads of
    /// <paramref name="headDim"/> features (amortised: scales and minimums included).</summary>
    /// <param name="heads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    public double BytesPerToken(long heads, long headDim)
    {
        if (Scheme == KvCacheScheme.FullPrecision) return 2.0 * heads * headDim * ElementBytes;
        var (keyBits, valueBits) = BitsPerElement(headDim);
        return heads * headDim * (keyBits + valueBits) / 8.0;
    }

    /// <summary>Length-independent bytes per row of a KV layer: the full-precision tail at its largest (R + G − 1 tokens).</summary>
    /// <param name="heads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    public long FixedBytes(long heads, long headDim) =>
        Scheme == KvCacheScheme.FullPrecision ? 0 : (long)(ResidualLength + GroupSize - 1) * 2 * heads * headDim * ElementBytes;

    /// <summary>Bits per key and per value element, float16 scales and minimums included.</summary>
    /// <param name="headDim">Features per head.</param>
    public (double Key, double Value) BitsPerElement(long headDim)
    {
        const double scaleAndMin = 2 * 16;
        double g = GroupSize, gv = Math.Min(GroupSize, headDim);
        switch (Scheme)
        {
            case KvCacheScheme.Kivi4: return (4 + scaleAndMin / g, 4 + scaleAndMin / gv);
            case KvCacheScheme.Kivi2: return (2 + scaleAndMin / g, 2 + scaleAndMin / gv);
            case KvCacheScheme.VidKv:
                long outliers = Math.Clamp((long)Math.Round(headDim * OutlierFraction), 0, headDim);
                double key = 1 + (double)outliers / headDim + scaleAndMin / g + 16.0 * outliers / (headDim * g);
                double value = 8.0 * Math.Ceiling(gv / 5) / gv + scaleAndMin / gv;
                return (key, value);
            default: return (8 * ElementBytes, 8 * ElementBytes);
        }
    }
}
