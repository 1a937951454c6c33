using System;
using System.Collections.Generic;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The split-K quantized-cache attention (<see cref="QuantizedKvAttention"/>: the staged kernel, default for every cache,
/// and the second generation) on the GPU: against float64 softmax attention over the slot's own dequantized cache (relative L2 ≤ 1e-4 float32, 3e-3 float16, 2e-2 bfloat16 — the
/// bounds of the first-generation kernel's tests), against the first-generation kernel, forced split counts, and a
/// decode through the slot (in-place tail, no mask tensor) against the reference slot. Every case asserts that the
/// split kernel itself ran (not a fallback).
/// </summary>
[Trait("Category", "Gpu")]
// switches QuantizedKvCacheSlot.UseFusedKernels, which the other class asserts on: never in parallel with it
[Collection(nameof(FusedSwitchCollection))]
public sealed class QuantizedKvAttentionGpuTests : IDisposable
{
    // VidKV's staged kernel is opt-in until measured on a GPU: these tests check it, as they check KIVI's default one
    private readonly bool _savedStagedVidKv = QuantizedKvAttention.StagedVidKv;

    public QuantizedKvAttentionGpuTests() => QuantizedKvAttention.StagedVidKv = true;

    public void Dispose() => QuantizedKvAttention.StagedVidKv = _savedStagedVidKv;

    private static Tensor F64Cpu(Tensor t) => t.detach().to(ScalarType.Float64, torch.CPU);

    public static TheoryData<string, string, int, int, int, int, int, int, int> Cases => new()
    {
        // mode, dtype, batch, heads, headDim, group, prefill, decode steps, queries per step
        { "Kivi4", "f32", 1, 2, 64, 32, 200, 3, 1 },
        { "Kivi2", "f32", 2, 3, 128, 32, 130, 2, 1 },
        { "VidKv", "f32", 1, 2, 64, 32, 300, 2, 1 },
        { "Kivi4", "f16", 2, 2, 128, 32, 1100, 2, 3 },
        { "Kivi2", "bf16", 1, 4, 64, 32, 520, 2, 8 },
        { "VidKv", "f16", 1, 2, 128, 32, 700, 2, 16 },
        { "VidKv", "bf16", 2, 1, 256, 32, 96, 3, 1 },
        { "Kivi4", "f32", 1, 1, 32, 32, 70, 2, 5 },
        { "Kivi2", "f16", 2, 2, 96, 32, 333, 3, 2 },
        { "Kivi4", "f16", 1, 2, 128, 64, 517, 2, 1 },
        { "Kivi2", "f32", 2, 2, 256, 128, 900, 2, 4 },
        { "VidKv", "f32", 2, 2, 96, 32, 250, 2, 3 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void SplitKernelMatchesFloat64Reference(string mode, string dtype, int batch, int heads, int headDim, int group, int prefill,
        int steps, int queries)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(prefill * 17 + headDim + batch + group);
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = Enum.Parse<KvQuantMode>(mode), GroupSize = group } };
        using var slot = new QuantizedKvCacheSlot(0, batch, heads, headDim, opts, dt, Gpu.Device);
        using var twin = new KvCacheSlot(0, batch, heads, headDim, new KvCacheOptions(), dt, Gpu.Device);
        double scale = 1.0 / Math.Sqrt(headDim);
        // row 0 of a batch is left-padded by 5 tokens, and in batch 2 row 1 has a padded token in a later step
        Tensor? Mask(long n, bool first, int step)
        {
            if (batch == 1) return null;
            var m = torch.ones(batch, n, dtype: ScalarType.Int64, device: Gpu.Device);
            if (first) m[0, TensorIndex.Slice(0, 5)] = torch.tensor(0L);
            if (step == 1 && n > 1) m[1, 0] = torch.tensor(0L);
            return m;
        }
        Tensor Rand(long n)
        {
            var t = torch.randn(batch, heads, n, headDim, device: Gpu.Device);
            t[TensorIndex.Ellipsis, 3] = t[TensorIndex.Ellipsis, 3] * 6;   // an outlier channel
            return t.to_type(dt);
        }
        var k0 = Rand(prefill);
        var v0 = Rand(prefill);
        var m0 = Mask(prefill, true, -1);
        slot.Prefill(k0, v0, m0);
        twin.Update(k0, v0, m0);
        double tol = Gpu.Tol(dt, 1e-4, 3e-3, 2e-2);
        for (int s = 0; s < steps; s++)
        {
            var q = Rand(queries);
            var k = Rand(queries);
            var v = Rand(queries);
            var m = Mask(queries, false, s);
            var o = slot.Attend(q, k, v, m, scale);
            Assert.Equal("split", slot.LastAttendPath);
            Assert.Equal("staged", QuantizedKvAttention.LastKernel);
            Assert.Equal(dt, o.dtype);
            var (_, _, allowed) = twin.Update(k, v, m);
            // float64 dequantization: the kernel's own numbers (a cache rounded to float16 or bfloat16 would add its own
            // rounding, amplified by the outlier channel of both keys and queries; see QuantizedKvAttentionMatchesReference)
            var (dk, dv) = slot.DequantizedKeysValues(ScalarType.Float64);
            var reference = CachedAttention.Attend(F64Cpu(q), F64Cpu(dk), F64Cpu(dv), allowed.cpu(), scale);
            Assert.InRange(Gpu.RelErr(o, reference), 0, tol);
            // the same cache through the explicit-mask entry, one split and an uneven split count, and the first generation
            foreach (int? splits in new int?[] { null, 1, 3 })
            {
                var viaMask = slot.TrySplitAttention(q, allowed, scale, splits);
                Assert.NotNull(viaMask);
                Assert.InRange(Gpu.RelErr(viaMask, reference), 0, tol);
            }
            var causal = slot.TrySplitAttention(q, null, scale, 5);
            Assert.NotNull(causal);
            Assert.InRange(Gpu.RelErr(causal, reference), 0, tol);
            // the second-generation kernel on the same cache (the staged kernel replaced it for every cache; it stays
            // selectable: QuantizedKvAttention.StagedKivi / StagedVidKv)
            var second = slot.TrySplitAttention(q, null, scale, staged: false);
            Assert.NotNull(second);
            Assert.Equal("split", QuantizedKvAttention.LastKernel);
            Assert.InRange(Gpu.RelErr(second, reference), 0, tol);
            if (queries <= QuantizedOps.MaxFusedQueries)
            {
                var first = slot.TryFirstGenerationAttention(q, allowed, scale);
                if (first is not null) Assert.InRange(Gpu.RelErr(o, first.to_type(ScalarType.Float64)), 0, 2 * tol);
            }
        }
        Assert.True(slot.BlockCount > 0);
    }

    /// <summary>
    /// The staged kernel at decode-sized contexts (one query, many blocks per split: the cp.async pipeline runs for many
    /// chunks per warp), VidKV first: against float64 attention over the slot's dequantized cache (relative L2 ≤ 3e-3
    /// float16, 2e-2 bfloat16, 1e-4 float32 — the bounds above) and against the second-generation kernel on the same
    /// cache (the same bound: both are float32 inside and read the same codes), and with the transposing sum's old code
    /// generation (<see cref="QuantizedKvAttention.RolledTransposeSum"/>: the same additions, so within the same bound);
/// VidKV's trit bytes decoded by arithmetic (<see cref="QuantizedKvAttention.VidKvTritArithmetic"/>) give the same codes,
/// so exactly the default's output.
    /// Contexts with an odd tail; batch 2 with a left-padded row.
    /// </summary>
    [Theory]
    [InlineData("VidKv", "f16", 1, 8, 4133)]
    [InlineData("VidKv", "bf16", 2, 4, 2085)]
    [InlineData("VidKv", "f32", 1, 2, 1061)]
    [InlineData("Kivi2", "f16", 1, 8, 4133)]
    public void StagedKernelMatchesReferenceAtDecodeContexts(string mode, string dtype, int batch, int heads, int prefill)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(prefill + heads);
        const int headDim = 128;
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = Enum.Parse<KvQuantMode>(mode) } };
        using var slot = new QuantizedKvCacheSlot(0, batch, heads, headDim, opts, dt, Gpu.Device);
        using var twin = new KvCacheSlot(0, batch, heads, headDim, new KvCacheOptions(), dt, Gpu.Device);
        double scale = 1.0 / Math.Sqrt(headDim);
        Tensor Rand(long n)
        {
            var t = torch.randn(batch, heads, n, headDim, device: Gpu.Device);
            t[TensorIndex.Ellipsis, 3] = t[TensorIndex.Ellipsis, 3] * 6;   // an outlier channel
            return t.to_type(dt);
        }
        Tensor? mask = null;
        if (batch > 1)
        {
            mask = torch.ones(batch, prefill, dtype: ScalarType.Int64, device: Gpu.Device);
            mask[0, TensorIndex.Slice(0, 37)] = torch.tensor(0L);
        }
        var k0 = Rand(prefill);
        var v0 = Rand(prefill);
        slot.Prefill(k0, v0, mask);
        twin.Update(k0, v0, mask);
        var q = Rand(1);
        var k = Rand(1);
        var v = Rand(1);
        var stepMask = batch > 1 ? torch.ones(batch, 1, dtype: ScalarType.Int64, device: Gpu.Device) : null;
        var o = slot.Attend(q, k, v, stepMask, scale);
        Assert.Equal("split", slot.LastAttendPath);
        Assert.Equal("staged", QuantizedKvAttention.LastKernel);
        var (_, _, allowed) = twin.Update(k, v, stepMask);
        var (dk, dv) = slot.DequantizedKeysValues(ScalarType.Float64);
        var reference = CachedAttention.Attend(F64Cpu(q), F64Cpu(dk), F64Cpu(dv), allowed.cpu(), scale);
        double tol = Gpu.Tol(dt, 1e-4, 3e-3, 2e-2);
        double errStaged = Gpu.RelErr(o, reference);
        Assert.InRange(errStaged, 0, tol);
        var second = slot.TrySplitAttention(q, null, scale, staged: false);
        Assert.NotNull(second);
        Assert.Equal("split", QuantizedKvAttention.LastKernel);
        Assert.InRange(Gpu.RelErr(second, reference), 0, tol);
        Assert.InRange(Gpu.RelErr(o, second.to_type(ScalarType.Float64)), 0, tol);
        QuantizedKvAttention.RolledTransposeSum = true;
        try
        {
            var rolled = slot.TrySplitAttention(q, null, scale);
            Assert.NotNull(rolled);
            Assert.Equal("staged", QuantizedKvAttention.LastKernel);
            Assert.InRange(Gpu.RelErr(rolled, reference), 0, tol);
        }
        finally
        {
            QuantizedKvAttention.RolledTransposeSum = false;
        }
        if (mode == "VidKv")
        {
            // the trit bytes decoded by arithmetic instead of the table: the same codes, so the same output
            var table = slot.TrySplitAttention(q, null, scale);
            Assert.NotNull(table);
            QuantizedKvAttention.VidKvTritArithmetic = true;
            try
            {
                var alu = slot.TrySplitAttention(q, null, scale);
                Assert.NotNull(alu);
                Assert.Equal("staged", QuantizedKvAttention.LastKernel);
                Assert.InRange(Gpu.RelErr(alu, reference), 0, tol);
                Assert.Equal(0.0, (F64Cpu(alu) - F64Cpu(table)).abs().max().item<double>());
            }
            finally
            {
                QuantizedKvAttention.VidKvTritArithmetic = false;
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{mode} {dtype} B{batch} H{heads} T{prefill + 1}: staged rel. L2 {errStaged:E2} (bound {tol:E0})");
    }

    /// <summary>A causal attention layer decoding through a quantized slot: a prefill, then one token at a time, with the
    /// fused path (split kernel, in-place tail, append kernel) and with the reference path.</summary>
    private static (double err, string? path, Tensor fusedK, Tensor refK) DecodeBothWays(KvQuantMode mode, ScalarType dt, int tokens, int prefill, int seed)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(seed);
        var attn = new CausalSelfAttention(128, 2);
        attn.to(dt).to(Gpu.Device);
        var x = torch.randn(1, tokens, 128, device: Gpu.Device).to_type(dt);
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode } };
        string? path = null;
        (Tensor, Tensor) Run(bool fused)
        {
            QuantizedKvCacheSlot.UseFusedKernels = fused;
            using var slot = new QuantizedKvCacheSlot(0, 1, 2, 64, opts, dt, Gpu.Device);
            var outs = new List<Tensor> { attn.Forward(x.narrow(1, 0, prefill), slot) };
            for (int t = prefill; t < tokens; t++) outs.Add(attn.Forward(x.narrow(1, t, 1), slot));
            if (fused) path = slot.LastAttendPath;
            var (k, _) = slot.DequantizedKeysValues();
            return (torch.cat(outs, 1), k);
        }
        try
        {
            var (fo, fk) = Run(true);
            var (ro, rk) = Run(false);
            return (Gpu.RelErr(fo, ro.to_type(ScalarType.Float64)), path, fk, rk);
        }
        finally
        {
            QuantizedKvCacheSlot.UseFusedKernels = true;
        }
    }

    [Theory]
    [InlineData("Kivi4", "f32", 1e-4)]
    [InlineData("Kivi2", "f16", 3e-3)]
    [InlineData("VidKv", "bf16", 2e-2)]
    public void DecodeThroughTheSlotMatchesTheReferenceSlot(string mode, string dtype, double tol)
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        var (err, path, fk, rk) = DecodeBothWays(Enum.Parse<KvQuantMode>(mode), Gpu.Dtype(dtype), 170, 45, 11);
        Assert.Equal("split", path);
        Assert.InRange(err, 0, tol);
        // the in-place tail (append kernel) and the blocks quantized from it hold exactly what the reference slot holds
        Assert.Equal(rk.shape, fk.shape);
        Assert.Equal(0.0, (F64Cpu(fk) - F64Cpu(rk)).abs().max().item<double>());
    }
}
