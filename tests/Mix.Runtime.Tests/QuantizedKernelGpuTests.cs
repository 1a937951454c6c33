using System;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// Fused quantized kernels against the reference paths (float64 on the CPU over the same quantized data, inputs rounded
/// to the I/O dtype first). Linear: relative L2 ≤ 1e-5 (float32), 2e-3 (float16), 1e-2 (bfloat16) — the output
/// rounding, plus for half-precision inputs (the tensor-core kernel) the int4 weight and x ⊙ input_scale rounded to
/// the input dtype once; otherwise only fp32 summation order. KV attention: relative L2 ≤ 1e-4 (float32),
/// 3e-3 (float16), 2e-2 (bfloat16) against softmax attention over the slot's own dequantized cache.
/// </summary>
[Trait("Category", "Gpu")]
// switches QuantizedKvCacheSlot.UseFusedKernels, which the other class asserts on: never in parallel with it
[Collection(nameof(FusedSwitchCollection))]
public class QuantizedKernelGpuTests
{
    private static Tensor F64Cpu(Tensor t) => t.detach().to(ScalarType.Float64, torch.CPU);

    [Theory]
    [InlineData("int8", 0, 1, 37, 29, "f32")]
    [InlineData("int8", 0, 3, 1000, 77, "f32")]
    [InlineData("int8", 0, 16, 515, 129, "f16")]
    [InlineData("int8", 0, 3, 4096, 33, "bf16")]
    [InlineData("int8", 0, 16, 1024, 256, "bf16")]
    [InlineData("int4", 32, 1, 96, 31, "f32")]
    [InlineData("int4", 32, 3, 4128, 45, "f16")]
    [InlineData("int4", 64, 16, 576, 129, "bf16")]
    [InlineData("int4", 64, 1, 192, 7, "f16")]
    [InlineData("int4", 128, 3, 1152, 65, "f32")]
    [InlineData("int4", 128, 16, 2048, 257, "f16")]
    [InlineData("int4", 128, 1, 384, 1, "bf16")]
    [InlineData("int4", 2, 3, 38, 11, "f32")]
    public void LinearMatchesReference(string mode, int group, int M, int K, int N, string dtype)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(M * 7919 + K * 31 + N);
        var lin = nn.Linear(K, N, hasBias: N % 2 == 1);
        var qm = mode == "int8" ? WeightQuantMode.Int8PerChannel : WeightQuantMode.Int4Grouped;
        var awq = K % 3 == 0 ? torch.rand(K) + 0.5 : null;
        var q = QuantizedLinear.FromLinear(lin, qm, group == 0 ? 128 : group, awq, keepInputScale: awq is not null);
        var x = torch.randn(M, K).to_type(dt);
        var xg = x.to(Gpu.Device);
        q.to(Gpu.Device);
        var fused = QuantizedOps.Linear(xg, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale);
        Assert.NotNull(fused);
        Assert.Equal(dt, fused.dtype);
        Assert.Equal(new long[] { M, N }, fused.shape);
        var viaForward = q.forward(xg);   // must take the fused path too (no grad, M ≤ 16)
        Assert.Equal(0.0, Gpu.RelErr(viaForward, fused));
        var w = F64Cpu(q.DequantizedWeight());
        var h = F64Cpu(x);
        if (q.InputScale is not null) h = h * F64Cpu(q.InputScale);
        var yRef = torch.matmul(h, w.t());
        if (q.Bias is not null) yRef = yRef + F64Cpu(q.Bias);
        double tol = Gpu.Tol(dt, 1e-5, 2e-3, 1e-2);
        Assert.InRange(Gpu.RelErr(fused, yRef), 0, tol);
        // 3-D input and the reference path on the GPU agree too
        var x3 = xg.view(1, M, K);
        var y3 = q.forward(x3);
        Assert.Equal(new long[] { 1, M, N }, y3.shape);
        Assert.InRange(Gpu.RelErr(y3.view(M, N), q.ReferenceForward(xg).to_type(ScalarType.Float64)), 0, Math.Max(tol, 1e-5));
    }

    [Fact]
    public void LinearFallsBackWhenGradientsAreNeededOrRowsAreMany()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        var q = QuantizedLinear.FromLinear(nn.Linear(64, 8), WeightQuantMode.Int4Grouped, 32);
        q.to(Gpu.Device);
        var x = torch.randn(new long[] { 2, 64 }, device: Gpu.Device, requires_grad: true);
        Assert.Null(QuantizedOps.Linear(x, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale));
        var y = q.forward(x);
        y.sum().backward();
        Assert.NotNull(x.grad);
        using var _ = torch.no_grad();
        var big = torch.randn(new long[] { 17, 64 }, device: Gpu.Device);
        Assert.Null(QuantizedOps.Linear(big, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale));
        var many = QuantizedOps.Linear(big, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, maxRows: 1 << 20);
        Assert.NotNull(many);
        Assert.InRange(Gpu.RelErr(many, q.ReferenceForward(big)), 0, 1e-5);
    }

    /// <summary>
    /// The tensor-core kernel (<see cref="QuantizedGemm"/>) against float64 over the same dequantized weight, with the
    /// plan's own split-K and forced to 1 and 3 splits: relative L2 ≤ 2e-3 (float16), 1e-2 (bfloat16) — output
    /// rounding plus the int4 weight rounded to the activation dtype once (scale applied in the dtype); int8 weights
    /// enter the mma exactly. Rows 1…64 (one to four m16 tiles), odd N, K not a multiple of the chunk.
    /// </summary>
    [Theory]
    [InlineData("int4", 128, 1, 4096, 4099, "bf16")]
    [InlineData("int4", 128, 2, 1024, 33, "f16")]
    [InlineData("int4", 64, 5, 576, 129, "bf16")]
    [InlineData("int4", 32, 16, 2080, 257, "f16")]
    [InlineData("int4", 128, 17, 1152, 65, "bf16")]
    [InlineData("int4", 256, 33, 2048, 300, "bf16")]
    [InlineData("int4", 128, 64, 4096, 1027, "f16")]
    [InlineData("int4", 32, 48, 96, 7, "bf16")]
    [InlineData("int8", 0, 1, 4096, 4097, "bf16")]
    [InlineData("int8", 0, 3, 1000, 77, "f16")]
    [InlineData("int8", 0, 16, 37, 29, "bf16")]
    [InlineData("int8", 0, 31, 515, 129, "f16")]
    [InlineData("int8", 0, 64, 2048, 513, "bf16")]
    public void TensorCoreLinearMatchesReference(string mode, int group, int M, int K, int N, string dtype)
    {
        Gpu.Require();
        Assert.SkipUnless(QuantizedGemm.HasTensorCores(0), "the GPU is older than sm_80");
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(M * 7919 + K * 31 + N);
        var lin = nn.Linear(K, N, hasBias: N % 2 == 1);
        var qm = mode == "int8" ? WeightQuantMode.Int8PerChannel : WeightQuantMode.Int4Grouped;
        var awq = K % 3 == 0 ? torch.rand(K) + 0.5 : null;
        var q = QuantizedLinear.FromLinear(lin, qm, group == 0 ? 128 : group, awq, keepInputScale: awq is not null);
        q.to(Gpu.Device);
        var x = torch.randn(M, K).to_type(dt);
        var xg = x.to(Gpu.Device);
        var w = F64Cpu(q.DequantizedWeight());
        var h = F64Cpu(x);
        if (q.InputScale is not null) h = h * F64Cpu(q.InputScale);
        var yRef = torch.matmul(h, w.t());
        if (q.Bias is not null) yRef = yRef + F64Cpu(q.Bias);
        double tol = Gpu.Tol(dt, 1e-5, 2e-3, 1e-2);
        foreach (var splits in new[] { 0, 1, 3 })
        {
            var y = QuantizedGemm.TryLinear(xg, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, M, K, N, splits);
            Assert.NotNull(y);
            Assert.Equal(dt, y.dtype);
            Assert.InRange(Gpu.RelErr(y, yRef), 0, tol);
        }
        // x one element past a 16-byte boundary (the staging's scalar loads): the same values staged, the same result
        var buf = torch.zeros(new long[] { M * K + 1 }, dt, Gpu.Device);
        buf.narrow(0, 1, M * K).copy_(xg.reshape(-1));
        var shifted = buf.narrow(0, 1, M * K).view(M, K);
        var aligned = QuantizedGemm.TryLinear(xg, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, M, K, N, 1);
        var offAligned = QuantizedGemm.TryLinear(shifted, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, M, K, N, 1);
        Assert.Equal(0.0, Gpu.RelErr(offAligned!, aligned!));
        // the public entry and the layer take this path (M ≤ 64, half-precision activations)
        var viaOps = QuantizedOps.Linear(xg, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale);
        Assert.NotNull(viaOps);
        Assert.Equal(0.0, Gpu.RelErr(q.forward(xg), viaOps));
        Assert.InRange(Gpu.RelErr(viaOps, yRef), 0, tol);
    }

    /// <summary>
    /// The opt-in builds and plan of the tensor-core kernel (<see cref="QuantizedGemm.Int4ScaleInAccumulator"/>,
    /// <see cref="QuantizedGemm.RingForManyRows"/>, <see cref="QuantizedGemm.WideSplitsForManyRows"/>) against the same
    /// float64 reference and bounds as the default, and the fp32 group scale no less exact than the default (it skips
    /// the per-weight rounding).
    /// </summary>
    [Theory]
    [InlineData("int4", 128, 1, 4096, 4099, "bf16")]
    [InlineData("int4", 256, 16, 2048, 300, "f16")]
    [InlineData("int4", 128, 29, 1152, 65, "bf16")]
    [InlineData("int4", 128, 64, 4096, 1027, "f16")]
    [InlineData("int4", 32, 40, 2080, 257, "bf16")]
    [InlineData("int8", 0, 33, 2048, 513, "bf16")]
    [InlineData("int8", 0, 64, 515, 129, "f16")]
    public void TensorCoreLinearOptInBuildsMatchReference(string mode, int group, int M, int K, int N, string dtype)
    {
        Gpu.Require();
        Assert.SkipUnless(QuantizedGemm.HasTensorCores(0), "the GPU is older than sm_80");
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(M * 7919 + K * 31 + N);
        var lin = nn.Linear(K, N, hasBias: N % 2 == 1);
        var qm = mode == "int8" ? WeightQuantMode.Int8PerChannel : WeightQuantMode.Int4Grouped;
        var awq = K % 3 == 0 ? torch.rand(K) + 0.5 : null;
        var q = QuantizedLinear.FromLinear(lin, qm, group == 0 ? 128 : group, awq, keepInputScale: awq is not null);
        q.to(Gpu.Device);
        var x = torch.randn(M, K).to_type(dt);
        var xg = x.to(Gpu.Device);
        var h = F64Cpu(x);
        if (q.InputScale is not null) h = h * F64Cpu(q.InputScale);
        var yRef = torch.matmul(h, F64Cpu(q.DequantizedWeight()).t());
        if (q.Bias is not null) yRef = yRef + F64Cpu(q.Bias);
        double tol = Gpu.Tol(dt, 1e-5, 2e-3, 1e-2);
        Tensor Run(int splits)
        {
            var y = QuantizedGemm.TryLinear(xg, qm, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, M, K, N, splits);
            Assert.NotNull(y);
            return y;
        }
        double baseline = Gpu.RelErr(Run(0), yRef);
        try
        {
            QuantizedGemm.Int4ScaleInAccumulator = 2;
            QuantizedGemm.RingForManyRows = 3;
            QuantizedGemm.WideSplitsForManyRows = true;
            foreach (var splits in new[] { 0, 1, 3 })
                Assert.InRange(Gpu.RelErr(Run(splits), yRef), 0, tol);
            if (qm == WeightQuantMode.Int4Grouped && group >= 128 && M <= 32)
                Assert.InRange(Gpu.RelErr(Run(0), yRef), 0, baseline * 1.05 + 1e-6);
        }
        finally
        {
            QuantizedGemm.Int4ScaleInAccumulator = 0;
            QuantizedGemm.RingForManyRows = 2;
            QuantizedGemm.WideSplitsForManyRows = false;
        }
    }

    [Fact]
    public void TensorCoreLinearDeclinesWhatItDoesNotTakeAndSeesNewCodesAfterForget()
    {
        Gpu.Require();
        Assert.SkipUnless(QuantizedGemm.HasTensorCores(0), "the GPU is older than sm_80");
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var q = QuantizedLinear.FromLinear(nn.Linear(256, 40), WeightQuantMode.Int4Grouped, 64);
        q.to(Gpu.Device);
        var x = torch.randn(new long[] { 4, 256 }, device: Gpu.Device).to_type(ScalarType.BFloat16);
        Tensor? Try(Tensor input, QuantizedLinear layer) => QuantizedGemm.TryLinear(input, layer.Mode, layer.GroupSize, layer.QWeight,
            layer.Scales, layer.Zeros, layer.Bias, layer.InputScale, input.numel() / 256, 256, 40);
        Assert.NotNull(Try(x, q));
        Assert.Null(Try(x.to_type(ScalarType.Float32), q));                                   // float32 activations: the GEMV kernel
        Assert.Null(Try(torch.randn(new long[] { 65, 256 }, device: Gpu.Device).to_type(ScalarType.BFloat16), q)); // > 64 rows
        var g16 = QuantizedLinear.FromLinear(nn.Linear(256, 40), WeightQuantMode.Int4Grouped, 16);
        g16.to(Gpu.Device);
        Assert.Null(Try(x, g16));                                                             // group 16
        var viaGemv = QuantizedOps.Linear(x, g16.Mode, g16.GroupSize, g16.QWeight, g16.Scales, g16.Zeros, g16.Bias, g16.InputScale);
        Assert.NotNull(viaGemv);
        // every tensor of the layer rewritten in place (as a checkpoint load does; the bias too, which the kernel reads
        // from the layer on every call): the repack is made again after Forget
        var other = QuantizedLinear.FromLinear(nn.Linear(256, 40), WeightQuantMode.Int4Grouped, 64);
        other.to(Gpu.Device);
        q.QWeight.copy_(other.QWeight);
        q.Scales.copy_(other.Scales);
        q.Zeros!.copy_(other.Zeros!);
        q.Bias!.copy_(other.Bias!);
        QuantizedGemm.Forget(q.QWeight);
        var want = other.ReferenceForward(x);
        Assert.InRange(Gpu.RelErr(Try(x, q)!, want), 0, 1e-2);
        // a different scales tensor for the same codes is a different weight: repacked without Forget
        var doubled = q.Scales * 2;
        var y2 = QuantizedGemm.TryLinear(x, q.Mode, q.GroupSize, q.QWeight, doubled, q.Zeros, null, null, 4, 256, 40);
        var want2 = torch.matmul(x.to_type(ScalarType.Float32), (other.DequantizedWeight() * 2).t());
        Assert.InRange(Gpu.RelErr(y2!, want2), 0, 1e-2);
    }

    public static TheoryData<string, string, int, int, int, int, int, int> KvCases => new()
    {
        // mode, dtype, batch, heads, headDim, prefill, decode steps, queries per step
        { "Kivi4", "f32", 1, 2, 64, 200, 3, 1 },
        { "Kivi2", "f32", 2, 3, 128, 130, 2, 1 },
        { "VidKv", "f32", 1, 2, 64, 300, 2, 1 },
        { "Kivi4", "f16", 2, 2, 128, 1100, 2, 3 },
        { "Kivi2", "bf16", 1, 4, 64, 520, 2, 8 },
        { "VidKv", "f16", 1, 2, 128, 700, 2, 16 },
        { "VidKv", "bf16", 2, 1, 256, 96, 3, 1 },
        { "Kivi4", "f32", 1, 1, 32, 70, 2, 5 },
    };

    [Theory]
    [MemberData(nameof(KvCases))]
    public void QuantizedKvAttentionMatchesReference(string mode, string dtype, int batch, int heads, int headDim, int prefill,
        int steps, int queries)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(prefill * 13 + headDim + batch);
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = Enum.Parse<KvQuantMode>(mode) } };
        using var slot = new QuantizedKvCacheSlot(0, batch, heads, headDim, opts, dt, Gpu.Device);
        using var twin = new KvCacheSlot(0, batch, heads, headDim, new KvCacheOptions(), dt, Gpu.Device);
        double scale = 1.0 / Math.Sqrt(headDim);
        // row 0 of a batch is left-padded by 5 tokens to exercise the mask
        Tensor? Mask(long n, bool first)
        {
            if (batch == 1) return null;
            var m = torch.ones(batch, n, dtype: ScalarType.Int64, device: Gpu.Device);
            if (first) m[0, TensorIndex.Slice(0, 5)] = torch.tensor(0L);
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
        var m0 = Mask(prefill, true);
        slot.Attend(Rand(prefill), k0, v0, m0, scale);
        twin.Update(k0, v0, m0);
        for (int s = 0; s < steps; s++)
        {
            var q = Rand(queries);
            var k = Rand(queries);
            var v = Rand(queries);
            var m = Mask(queries, false);
            var o = slot.Attend(q, k, v, m, scale);
            Assert.Equal(dt, o.dtype);
            var (_, _, allowed) = twin.Update(k, v, m);
            // The reference attends over the cache dequantized in float64 (the kernel's own numbers), not in the slot
            // dtype: float16 dequantized keys carry half-ulp errors of up to 0.008 on the ×6 outlier channel, which the
            // ×6 query channel turns into score errors of ~0.01 on a peaked softmax — a float64 simulation of this case
            // gives 1e-3 to 2.8e-3 relative error from that rounding alone (median 9.8e-4 over 60 seeds) and run 13d saw
            // 4.1e-3, while the kernel's own error (float32 accumulation, float16 output) is ~2.5e-4. So 3e-3 bounds
            // the kernel, not the reference's rounding.
            var (dk, dv) = slot.DequantizedKeysValues(ScalarType.Float64);
            var reference = CachedAttention.Attend(F64Cpu(q), F64Cpu(dk), F64Cpu(dv), allowed.cpu(), scale);
            double tol = Gpu.Tol(dt, 1e-4, 3e-3, 2e-2);
            Assert.InRange(Gpu.RelErr(o, reference), 0, tol);
        }
        Assert.True(slot.BlockCount > 0);
        // the reference path (fused kernels off) gives the same result up to rounding
        QuantizedKvCacheSlot.UseFusedKernels = false;
        try
        {
            using var refSlot = new QuantizedKvCacheSlot(0, batch, heads, headDim, opts, dt, Gpu.Device);
            using var fusedSlot = new QuantizedKvCacheSlot(0, batch, heads, headDim, opts, dt, Gpu.Device);
            var kk = Rand(prefill);
            var vv = Rand(prefill);
            var q = Rand(queries);
            var k1 = Rand(queries);
            var v1 = Rand(queries);
            refSlot.Update(kk, vv, Mask(prefill, true));
            var r = refSlot.Attend(q, k1, v1, Mask(queries, false), scale);
            QuantizedKvCacheSlot.UseFusedKernels = true;
            fusedSlot.Update(kk, vv, Mask(prefill, true));
            var f = fusedSlot.Attend(q, k1, v1, Mask(queries, false), scale);
            Assert.InRange(Gpu.RelErr(f, r.to_type(ScalarType.Float64)), 0, Gpu.Tol(dt, 1e-4, 5e-3, 3e-2));
        }
        finally
        {
            QuantizedKvCacheSlot.UseFusedKernels = true;
        }
    }

    /// <summary>A causal attention layer decoding through a quantized slot on the GPU: a prefill, then one token at a
    /// time; the fused kernel's outputs against the reference path's (rel. err).</summary>
    static double FusedVsReferenceDecode(KvCacheOptions opts, int tokens, int prefill, int seed, int? evictedAtLeast = null)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(seed);
        var attn = new CausalSelfAttention(128, 2);
        attn.to(Gpu.Device);
        var x = torch.randn(1, tokens, 128, device: Gpu.Device);
        Tensor Run(bool fused)
        {
            QuantizedKvCacheSlot.UseFusedKernels = fused;
            using var slot = new QuantizedKvCacheSlot(0, 1, 2, 64, opts, ScalarType.Float32, Gpu.Device);
            var outs = new System.Collections.Generic.List<Tensor> { attn.Forward(x.narrow(1, 0, prefill), slot) };
            for (int t = prefill; t < tokens; t++) outs.Add(attn.Forward(x.narrow(1, t, 1), slot));
            if (evictedAtLeast is int n) Assert.True(slot.EvictedBlocks >= n, $"the window evicted {slot.EvictedBlocks} blocks, expected at least {n}");
            return torch.cat(outs, 1);
        }
        try
        {
            return Gpu.RelErr(Run(true), Run(false));
        }
        finally
        {
            QuantizedKvCacheSlot.UseFusedKernels = true;
        }
    }

    [Fact]
    public void QuantizedKvCacheModelDecodeMatchesReferencePath()
    {
        Gpu.Require();
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = KvQuantMode.Kivi4 } };
        Assert.InRange(FusedVsReferenceDecode(opts, 150, 100, 5), 0, 1e-4);
    }

    [Theory]
    [InlineData("Kivi4")]
    [InlineData("Kivi2")]
    [InlineData("VidKv")]
    public void SlidingWindowQuantizedCacheDecodeMatchesReferencePath(string mode)
    {
        // Eviction drops whole quantized blocks and tail tokens one by one; the kernel must see the same visible set
        // as the reference path. Tokens are quantized once the tail exceeds R + G = 64, so the window must be wider
        // than that for blocks to form at all: window 80 + 4 sinks over 200 tokens evicts two blocks of 32.
        Gpu.Require();
        var opts = new KvCacheOptions
        {
            SlidingWindow = 80, SinkTokens = 4,
            Quantization = new KvQuantizationOptions { Mode = System.Enum.Parse<KvQuantMode>(mode) },
        };
        Assert.InRange(FusedVsReferenceDecode(opts, 200, 60, 6, evictedAtLeast: 2), 0, 1e-4);
    }
}
