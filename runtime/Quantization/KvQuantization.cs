using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>KV-cache quantization schemes.</summary>
public enum KvQuantMode
{
    /// <summary>KIVI 4-bit: keys per channel (over groups of tokens), values per token (groups of channels).</summary>
    Kivi4,

    /// <summary>KIVI 2-bit.</summary>
    Kivi2,

    /// <summary>VidKV-style 1.x-bit: 1-bit keys per channel with 2-bit outlier channels (largest range), ternary
    /// (1.58-bit) values per token group.</summary>
    VidKv,
}

/// <summary>Options of a quantized KV cache.</summary>
public sealed record KvQuantizationOptions
{
    /// <summary>Scheme.</summary>
    public KvQuantMode Mode { get; init; } = KvQuantMode.Kivi2;

    /// <summary>Group size G: keys are quantized per channel over G tokens, values per token over G channels (default 32;
    /// must divide the head dimension for values).</summary>
    public int GroupSize { get; init; } = 32;

    /// <summary>The most recent R tokens stay in full precision (default 32). Tokens are quantized G at a time once the
    /// full-precision tail holds R + G.</summary>
    public int ResidualLength { get; init; } = 32;

    /// <summary>VidKV: fraction of key channels (per head and block) kept at 2 bits, chosen by range (default 1/8).</summary>
    public double OutlierFraction { get; init; } = 0.125;

    /// <summary>Bits per key and value element (amortised, scales included) for head dimension <paramref name="headDim"/>.</summary>
    /// <param name="headDim">Features per head.</param>
    public (double keyBits, double valueBits) BitsPerElement(long headDim)
    {
        const double half = 16;
        int g = GroupSize;
        // values are grouped over min(G, headDim) channels (a head narrower than G is one group)
        long gv = Math.Min(g, headDim);
        switch (Mode)
        {
            case KvQuantMode.Kivi4: return (4 + 2 * half / g, 4 + 2 * half / gv);
            case KvQuantMode.Kivi2: return (2 + 2 * half / g, 2 + 2 * half / gv);
            default:
                long nOut = KvQuantizer.OutlierChannels(headDim, OutlierFraction);
                double key = 1 + (double)nOut / headDim + 2 * half / g + 16.0 * nOut / (headDim * (double)g);
                double value = 8.0 * TritBytes(gv) / gv + 2 * half / gv;
                return (key, value);
        }
    }

    internal static long TritBytes(long n) => (n + 4) / 5;
}

/// <summary>A quantized block of G tokens of one layer's keys and values (packed codes + float16 scale/minimum).</summary>
public sealed class QuantizedKvBlock : IDisposable
{
    internal Tensor KeyCodes = null!;      // KIVI: uint8 [B,H,D,G·bits/8] (packed along tokens); VidKV: bit plane 0
    internal Tensor KeyScale = null!;      // [B,H,D] float16
    internal Tensor KeyMin = null!;        // [B,H,D] float16
    internal Tensor? KeyPlane1;            // VidKV: uint8 [B,H,nOut,G/8], high bit of outlier channels
    internal Tensor? OutlierIdx;           // VidKV: int16 [B,H,nOut]
    internal Tensor ValueCodes = null!;    // KIVI: uint8 [B,H,G,D·bits/8]; VidKV: trits uint8 [B,H,G,D/Gv,ceil(Gv/5)]
    internal Tensor ValueScale = null!;    // [B,H,G,D/Gv] float16
    internal Tensor ValueMin = null!;      // [B,H,G,D/Gv] float16 (VidKV: the group mean)

    /// <summary>Bytes of the block's storage.</summary>
    public long Bytes
    {
        get
        {
            long b = 0;
            foreach (var t in new[] { KeyCodes, KeyScale, KeyMin, KeyPlane1, OutlierIdx, ValueCodes, ValueScale, ValueMin })
                if (t is not null) b += t.numel() * (long)t.element_size();
            return b;
        }
    }

    /// <summary>Releases the tensors.</summary>
    public void Dispose()
    {
        foreach (var t in new[] { KeyCodes, KeyScale, KeyMin, KeyPlane1, OutlierIdx, ValueCodes, ValueScale, ValueMin }) t?.Dispose();
    }
}

/// <summary>Reference KIVI / VidKV quantizers for KV blocks <c>[B, H, G, D]</c> (keys per channel, values per token).</summary>
public static class KvQuantizer
{
    /// <summary>Outlier channels kept at 2 bits by VidKV for head dimension <paramref name="headDim"/>.</summary>
    /// <param name="headDim">Features per head.</param>
    /// <param name="fraction">Fraction.</param>
    public static long OutlierChannels(long headDim, double fraction) => Math.Clamp((long)Math.Round(headDim * fraction), 0, headDim);

    /// <summary>Quantizes one block of G tokens.</summary>
    /// <param name="keys">Keys <c>[B, H, G, D]</c>.</param>
    /// <param name="values">Values <c>[B, H, G, D]</c>.</param>
    /// <param name="o">Options.</param>
    public static QuantizedKvBlock Quantize(Tensor keys, Tensor values, KvQuantizationOptions o)
    {
        using var scope = torch.NewDisposeScope();
        var blk = new QuantizedKvBlock();
        var k = keys.to_type(ScalarType.Float32).transpose(2, 3);   // [B,H,D,G]: per channel over tokens
        var v = values.to_type(ScalarType.Float32);                  // [B,H,G,D]
        long d = v.shape[3];
        int gv = (int)Math.Min(o.GroupSize, d);
        if (d % gv != 0) throw new ArgumentException($"value group {gv} must divide the head dimension {d}");
        var vg = v.reshape(v.shape[0], v.shape[1], v.shape[2], d / gv, gv);   // [B,H,G,D/gv,gv]
        if (o.Mode != KvQuantMode.VidKv)
        {
            int bits = o.Mode == KvQuantMode.Kivi4 ? 4 : 2;
            var (kc, ks, km) = Uniform(k, bits);
            blk.KeyCodes = Pack(kc, bits); blk.KeyScale = ks.squeeze(-1).to_type(ScalarType.Float16); blk.KeyMin = km.squeeze(-1).to_type(ScalarType.Float16);
            var (vc, vs, vm) = Uniform(vg, bits);
            blk.ValueCodes = Pack(vc.reshape(v.shape), bits); blk.ValueScale = vs.squeeze(-1).to_type(ScalarType.Float16); blk.ValueMin = vm.squeeze(-1).to_type(ScalarType.Float16);
        }
        else
        {
            // keys: 1-bit per channel (two levels = means of the halves split at the midpoint), outliers 2-bit uniform
            var kmin = k.amin(new long[] { -1 }, keepdim: true);
            var kmax = k.amax(new long[] { -1 }, keepdim: true);
            var mid = (kmin + kmax) / 2;
            var hiMask = k.gt(mid);
            var hiF = hiMask.to_type(ScalarType.Float32);
            var nHi = hiF.sum(-1, keepdim: true);
            var nLo = k.shape[3] - nHi;
            var hi = torch.where(nHi.gt(0), (k * hiF).sum(-1, keepdim: true) / nHi.clamp_min(1), mid);
            var lo = torch.where(nLo.gt(0), (k * (1 - hiF)).sum(-1, keepdim: true) / nLo.clamp_min(1), mid);
            var scale = hi - lo;
            var minv = lo;
            var codes = hiMask.to_type(ScalarType.Int32);
            long nOut = OutlierChannels(d, o.OutlierFraction);
            if (nOut > 0)
            {
                var range = (kmax - kmin).squeeze(-1);                       // [B,H,D]
                var idx = range.topk((int)nOut, -1).indexes;                 // [B,H,nOut]
                var gidx = idx.unsqueeze(-1).expand(-1, -1, -1, k.shape[3]);
                var kOut = k.gather(2, gidx);
                var (oc, os, om) = Uniform(kOut, 2);                         // codes 0..3
                codes = codes.scatter(2, gidx, oc.bitwise_and(1));
                scale = scale.scatter(2, idx.unsqueeze(-1), os);
                minv = minv.scatter(2, idx.unsqueeze(-1), om);
                blk.KeyPlane1 = PackBits(oc.bitwise_right_shift(1));
                blk.OutlierIdx = idx.to_type(ScalarType.Int16);
            }
            blk.KeyCodes = PackBits(codes);
            blk.KeyScale = scale.squeeze(-1).to_type(ScalarType.Float16);
            blk.KeyMin = minv.squeeze(-1).to_type(ScalarType.Float16);
            // values: ternary per token group: x ≈ mean + α·t, t ∈ {−1, 0, 1}, Δ = 0.7·mean|x − mean| (TWN)
            var mean = vg.mean(new long[] { -1 }, keepdim: true);
            var c = vg - mean;
            var delta = c.abs().mean(new long[] { -1 }, keepdim: true) * 0.7;
            var big = c.abs().gt(delta);
            var bigF = big.to_type(ScalarType.Float32);
            var alpha = torch.where(bigF.sum(-1, keepdim: true).gt(0),
                (c.abs() * bigF).sum(-1, keepdim: true) / bigF.sum(-1, keepdim: true).clamp_min(1), delta);
            var t = c.sign().to_type(ScalarType.Int32) * big.to_type(ScalarType.Int32);   // −1, 0, 1
            blk.ValueCodes = PackTrits(t + 1);
            blk.ValueScale = alpha.squeeze(-1).to_type(ScalarType.Float16);
            blk.ValueMin = mean.squeeze(-1).to_type(ScalarType.Float16);
        }
        foreach (var x in new[] { blk.KeyCodes, blk.KeyScale, blk.KeyMin, blk.KeyPlane1, blk.OutlierIdx, blk.ValueCodes, blk.ValueScale, blk.ValueMin })
            x?.DetachFromDisposeScope();
        return blk;
    }

    /// <summary>Dequantizes a block to keys and values <c>[B, H, G, D]</c> of <paramref name="dtype"/>.</summary>
    /// <param name="blk">The block.</param>
    /// <param name="o">Options.</param>
    /// <param name="groupTokens">Tokens in the block (G).</param>
    /// <param name="headDim">D.</param>
    /// <param name="dtype">Result dtype.</param>
    public static (Tensor keys, Tensor values) Dequantize(QuantizedKvBlock blk, KvQuantizationOptions o, long groupTokens, long headDim, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(blk);
        ArgumentNullException.ThrowIfNull(o);
        using var scope = torch.NewDisposeScope();
        int gv = (int)Math.Min(o.GroupSize, headDim);
        var ks = blk.KeyScale.to_type(ScalarType.Float32).unsqueeze(-1);
        var km = blk.KeyMin.to_type(ScalarType.Float32).unsqueeze(-1);
        var vs = blk.ValueScale.to_type(ScalarType.Float32).unsqueeze(-1);
        var vm = blk.ValueMin.to_type(ScalarType.Float32).unsqueeze(-1);
        Tensor k, v;
        if (o.Mode != KvQuantMode.VidKv)
        {
            int bits = o.Mode == KvQuantMode.Kivi4 ? 4 : 2;
            var kc = Unpack(blk.KeyCodes, bits, groupTokens).to_type(ScalarType.Float32);        // [B,H,D,G]
            k = kc * ks + km;
            var vc = Unpack(blk.ValueCodes, bits, headDim).to_type(ScalarType.Float32);         // [B,H,G,D]
            v = (vc.reshape(vc.shape[0], vc.shape[1], groupTokens, headDim / gv, gv) * vs + vm).reshape(vc.shape);
        }
        else
        {
            var codes = UnpackBits(blk.KeyCodes, groupTokens);                                  // [B,H,D,G]
            if (blk.OutlierIdx is not null)
            {
                var idx = blk.OutlierIdx.to_type(ScalarType.Int64).unsqueeze(-1).expand(-1, -1, -1, groupTokens);
                var high = UnpackBits(blk.KeyPlane1!, groupTokens);
                codes = codes.scatter(2, idx, codes.gather(2, idx) + 2 * high);
            }
            k = codes.to_type(ScalarType.Float32) * ks + km;
            var t = UnpackTrits(blk.ValueCodes, gv).to_type(ScalarType.Float32) - 1;              // [B,H,G,D/gv,gv]
            v = (t * vs + vm).reshape(t.shape[0], t.shape[1], groupTokens, headDim);
        }
        return (k.transpose(2, 3).to_type(dtype).MoveToOuterDisposeScope(), v.to_type(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Asymmetric uniform quantization over the last axis: codes, scale and minimum (keepdim).</summary>
    private static (Tensor codes, Tensor scale, Tensor min) Uniform(Tensor x, int bits)
    {
        int levels = (1 << bits) - 1;
        var min = x.amin(new long[] { -1 }, keepdim: true);
        var max = x.amax(new long[] { -1 }, keepdim: true);
        var scale = ((max - min) / levels).clamp_min(1e-8);
        var codes = ((x - min) / scale).round().clamp(0, levels).to_type(ScalarType.Int32);
        return (codes, scale, min);
    }

    /// <summary>Packs 2- or 4-bit codes along the last axis (first element in the lowest bits).</summary>
    private static Tensor Pack(Tensor codes, int bits)
    {
        int per = 8 / bits;
        var shape = codes.shape;
        long n = shape[^1];
        if (n % per != 0) throw new ArgumentException($"{n} codes cannot be packed {per} per byte");
        var c = codes.to_type(ScalarType.Int32).reshape(-1, n / per, per);
        var shifts = torch.arange(0, 8, bits, dtype: ScalarType.Int32, device: codes.device);
        var packed = c.bitwise_left_shift(shifts).sum(-1).to_type(ScalarType.Byte);
        var outShape = (long[])shape.Clone();
        outShape[^1] = n / per;
        return packed.reshape(outShape);
    }

    private static Tensor Unpack(Tensor packed, int bits, long n)
    {
        int per = 8 / bits;
        var shifts = torch.arange(0, 8, bits, dtype: ScalarType.Int32, device: packed.device);
        var codes = packed.to_type(ScalarType.Int32).unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and((1 << bits) - 1);
        var outShape = (long[])packed.shape.Clone();
        outShape[^1] = n;
        return codes.reshape(outShape);
    }

    private static Tensor PackBits(Tensor bits) => Pack8(bits);

    private static Tensor Pack8(Tensor bits)
    {
        var shape = bits.shape;
        long n = shape[^1];
        long padded = (n + 7) / 8 * 8;
        var b = bits.to_type(ScalarType.Int32);
        if (padded != n) b = torch.nn.functional.pad(b, new[] { 0L, padded - n });
        var c = b.reshape(-1, padded / 8, 8);
        var packed = c.bitwise_left_shift(torch.arange(8, dtype: ScalarType.Int32, device: bits.device)).sum(-1).to_type(ScalarType.Byte);
        var outShape = (long[])shape.Clone();
        outShape[^1] = padded / 8;
        return packed.reshape(outShape);
    }

    private static Tensor UnpackBits(Tensor packed, long n)
    {
        var bits = packed.to_type(ScalarType.Int32).unsqueeze(-1).bitwise_right_shift(torch.arange(8, dtype: ScalarType.Int32, device: packed.device)).bitwise_and(1);
        var outShape = (long[])packed.shape.Clone();
        outShape[^1] *= 8;
        return bits.reshape(outShape).narrow(-1, 0, n);
    }

    /// <summary>Packs trits 0..2 along the last axis, five per byte (base 3), padding the axis to a multiple of 5.</summary>
    private static Tensor PackTrits(Tensor trits)
    {
        var shape = trits.shape;
        long n = shape[^1];
        long bytes = KvQuantizationOptions.TritBytes(n);
        var t = trits.to_type(ScalarType.Int32);
        if (bytes * 5 != n) t = torch.nn.functional.pad(t, new[] { 0L, bytes * 5 - n });
        var pw = torch.tensor(new[] { 1, 3, 9, 27, 81 }, device: trits.device);
        var packed = (t.reshape(-1, bytes, 5) * pw).sum(-1).to_type(ScalarType.Byte);
        var outShape = (long[])shape.Clone();
        outShape[^1] = bytes;
        return packed.reshape(outShape);
    }

    private static Tensor UnpackTrits(Tensor packed, long n)
    {
        var p = packed.to_type(ScalarType.Int32).unsqueeze(-1);
        var pw = torch.tensor(new[] { 1, 3, 9, 27, 81 }, device: packed.device);
        var t = p.div(pw, rounding_mode: RoundingMode.floor).remainder(3);
        var outShape = (long[])packed.shape.Clone();
        outShape[^1] *= 5;
        return t.reshape(outShape).narrow(-1, 0, n);
    }
}
