using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// KV slot with KIVI / VidKV quantization (<see cref="KvCacheOptions.Quantization"/>): tokens are appended to a
/// full-precision tail; whenever the tail holds R + G tokens, its oldest G tokens become a <see cref="QuantizedKvBlock"/>
/// (keys per channel over the G tokens, values per token over groups of G channels, float16 scale and minimum).
/// Attention runs on the dequantized blocks followed by the tail (CPU reference: dequantized block by block on every
/// update). Sliding windows are not supported with quantization.
/// </summary>
public sealed class QuantizedKvCacheSlot : AttentionCacheSlot
{
    private readonly List<QuantizedKvBlock> blocks = new();
    private readonly ScalarType dtype;
    private readonly Device? device;
    private Tensor? tailK;
    private Tensor? tailV;

    /// <summary>Creates an empty slot.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="numHeads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="options">Options (with <see cref="KvCacheOptions.Quantization"/> set).</param>
    /// <param name="dtype">Model dtype (tail and dequantized blocks).</param>
    /// <param name="device">Device.</param>
    public QuantizedKvCacheSlot(int layerIndex, long batch, long numHeads, long headDim, KvCacheOptions options,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch, numHeads, headDim, options)
    {
        Quant = options?.Quantization ?? throw new ArgumentException("options.Quantization must be set", nameof(options));
        if (options.SlidingWindow is not null) throw new NotSupportedException("sliding windows are not supported with a quantized KV cache");
        if (Quant.GroupSize <= 0 || Quant.ResidualLength < 0) throw new ArgumentOutOfRangeException(nameof(options));
        if (headDim % Math.Min(Quant.GroupSize, headDim) != 0) throw new ArgumentException("the value group must divide the head dimension", nameof(headDim));
        if (Quant.Mode != KvQuantMode.VidKv && Quant.GroupSize % 4 != 0) throw new ArgumentException("KIVI group size must be a multiple of 4", nameof(options));
        this.dtype = dtype;
        this.device = device;
    }

    /// <summary>Quantization options.</summary>
    public KvQuantizationOptions Quant { get; }

    /// <summary>Quantized blocks held.</summary>
    public int BlockCount => blocks.Count;

    /// <summary>Tokens in the full-precision tail.</summary>
    public long TailLength => tailK is null ? 0 : tailK.shape[2];

    /// <inheritdoc/>
    public override double BytesPerToken
    {
        get
        {
            var (kb, vb) = Quant.BitsPerElement(HeadDim);
            return NumHeads * HeadDim * (kb + vb) / 8.0;
        }
    }

    /// <summary>Full-precision tail at its largest (R + G − 1 tokens), per row.</summary>
    public override long FixedBytesPerRow => (Quant.ResidualLength + Quant.GroupSize - 1) * 2 * NumHeads * HeadDim * ElementBytes(dtype);

    /// <inheritdoc/>
    public override long AllocatedBytes => blocks.Sum(b => b.Bytes)
        + (tailK is null ? 0 : 2 * tailK.numel() * ElementBytes(dtype));

    /// <inheritdoc/>
    protected override (Tensor keys, Tensor values) Store(Tensor keys, Tensor values)
    {
        var k = keys.to_type(dtype);
        var v = values.to_type(dtype);
        var newK = tailK is null ? k.clone() : torch.cat(new[] { tailK, k }, 2);
        var newV = tailV is null ? v.clone() : torch.cat(new[] { tailV, v }, 2);
        int g = Quant.GroupSize;
        while (newK.shape[2] >= Quant.ResidualLength + g)
        {
            blocks.Add(KvQuantizer.Quantize(newK.narrow(2, 0, g), newV.narrow(2, 0, g), Quant));
            newK = newK.narrow(2, g, newK.shape[2] - g).contiguous();
            newV = newV.narrow(2, g, newV.shape[2] - g).contiguous();
        }
        tailK?.Dispose();
        tailV?.Dispose();
        tailK = newK.DetachFromDisposeScope();
        tailV = newV.DetachFromDisposeScope();
        var ks = new List<Tensor>();
        var vs = new List<Tensor>();
        foreach (var b in blocks)
        {
            var (dk, dv) = KvQuantizer.Dequantize(b, Quant, g, HeadDim, dtype);
            ks.Add(dk);
            vs.Add(dv);
        }
        ks.Add(tailK);
        vs.Add(tailV);
        return ks.Count == 1 ? (tailK.alias(), tailV.alias()) : (torch.cat(ks, 2), torch.cat(vs, 2));
    }

    /// <inheritdoc/>
    protected override void Compact(Tensor keep) => throw new NotSupportedException("quantized KV slots do not evict");

    /// <inheritdoc/>
    public override void Reset()
    {
        base.Reset();
        foreach (var b in blocks) b.Dispose();
        blocks.Clear();
        tailK?.Dispose(); tailK = null;
        tailV?.Dispose(); tailV = null;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing) return;
        foreach (var b in blocks) b.Dispose();
        tailK?.Dispose();
        tailV?.Dispose();
    }
}
