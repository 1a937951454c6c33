using System;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The scan primitives' fused CUDA kernels against their reference paths computed in float64 on the same inputs
/// (rounded to the I/O dtype first, so the tolerance measures the kernel). Tolerances (relative L2): float32 2e-4,
/// bfloat16 1e-2 for outputs (written in bfloat16); float32 states 2e-4 for every I/O dtype.
/// </summary>
[Trait("Category", "Gpu")]
public class ScanKernelGpuTests
{
    private static Tensor Rand(ScalarType dt, params long[] shape) => torch.randn(shape, device: Gpu.Device).to_type(dt);
    private static Tensor? F64(Tensor? t) => t?.to_type(ScalarType.Float64);

    [Theory]
    [InlineData("f32", 1, 37, 4, 16, 1, 16, false)]    // batch 1, odd length
    [InlineData("f32", 2, 131, 6, 24, 2, 64, true)]    // groups, D, z, dt_bias + softplus, initial state
    [InlineData("f32", 1, 200, 3, 64, 3, 128, true)]   // Mamba-2's head sizes
    [InlineData("f32", 2, 5, 2, 8, 1, 3, true)]        // n not a multiple of 8
    [InlineData("bf16", 1, 57, 4, 32, 2, 64, true)]
    [InlineData("bf16", 2, 129, 8, 64, 1, 128, false)]
    public void SsdKernelMatchesTheReference(string dtype, int batch, int L, int heads, int p, int groups, int n, bool full)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L * 10 + n);
        var x = Rand(io, batch, L, heads, p);
        var dt = full ? Rand(io, batch, L, heads) : (torch.rand(batch, L, heads, device: Gpu.Device) * 0.2 + 0.01).to_type(io);
        var A = -torch.rand(heads, device: Gpu.Device) * 2 - 0.1;
        var B = Rand(io, batch, L, groups, n) * 0.5;
        var C = Rand(io, batch, L, groups, n) * 0.5;
        var D = full ? torch.randn(heads, device: Gpu.Device) : null;
        var z = full ? Rand(io, batch, L, heads, p) : null;
        var bias = full ? torch.randn(heads, device: Gpu.Device) * 0.1 - 1.0 : null;
        var h0 = full ? torch.randn(batch, heads, p, n, device: Gpu.Device) : null;
        var r = CudaScanKernels.TrySsd(x, dt, A, B, C, D, z, bias, full, h0);
        Assert.NotNull(r);
        var (y, h) = r.Value;
        Assert.Equal(io, y.dtype);
        var (yRef, hRef) = SsdScan.ChunkedScan(F64(x)!, F64(dt)!, F64(A)!, F64(B)!, F64(C)!, 64, F64(D), F64(z), F64(bias), full, F64(h0));
        Assert.InRange(Gpu.RelErr(y, yRef), 0, Gpu.Tol(io, 2e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(h, hRef), 0, 2e-4);
        // The dispatching entry point takes the kernel too (same result), and a decode step equals the scan's next step.
        var (yd, hd) = SsdScan.Scan(x, dt, A, B, C, 64, D, z, bias, full, h0);
        Assert.InRange(Gpu.RelErr(yd, y), 0, 1e-6);
        var (ys, hs) = SsdScan.Step(hd, x.select(1, L - 1), dt.select(1, L - 1), A, B.select(1, L - 1), C.select(1, L - 1), D,
            z?.select(1, L - 1), bias, full);
        var (ysRef, hsRef) = SsdScan.SequentialScan(F64(x.narrow(1, L - 1, 1))!, F64(dt.narrow(1, L - 1, 1))!, F64(A)!,
            F64(B.narrow(1, L - 1, 1))!, F64(C.narrow(1, L - 1, 1))!, F64(D), F64(z?.narrow(1, L - 1, 1)), F64(bias), full, F64(hd));
        Assert.InRange(Gpu.RelErr(ys, ysRef.squeeze(1)), 0, Gpu.Tol(io, 2e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(hs, hsRef), 0, 2e-4);
    }

    [Theory]
    [InlineData("f32", 1, 37, 2, 16, 16, false)]      // batch 1, odd length
    [InlineData("f32", 2, 131, 3, 64, 48, true)]      // V not a multiple of 32, initial state
    [InlineData("f32", 1, 70, 2, 256, 64, true)]      // largest key size
    [InlineData("f32", 2, 9, 2, 5, 7, true)]          // K not a multiple of 8
    [InlineData("bf16", 1, 65, 4, 128, 128, true)]
    [InlineData("bf16", 2, 33, 2, 64, 32, false)]
    public void GlaKernelMatchesTheReference(string dtype, int batch, int L, int heads, int K, int V, bool withState)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L * 10 + K);
        var q = Rand(io, batch, L, heads, K);
        var k = Rand(io, batch, L, heads, K);
        var v = Rand(io, batch, L, heads, V);
        var g = torch.nn.functional.logsigmoid(torch.randn(batch, L, heads, K, device: Gpu.Device) + 3).to_type(io);
        var s0 = withState ? torch.randn(batch, heads, K, V, device: Gpu.Device) : null;
        double scale = 1.0 / Math.Sqrt(K);
        var r = CudaScanKernels.TryGla(q, k, v, g, scale, s0);
        Assert.NotNull(r);
        var (o, s) = r.Value;
        Assert.Equal(io, o.dtype);
        var (oRef, sRef) = GlaScan.ChunkedScan(F64(q)!, F64(k)!, F64(v)!, F64(g)!, scale, 16, F64(s0));
        Assert.InRange(Gpu.RelErr(o, oRef), 0, Gpu.Tol(io, 2e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(s, sRef), 0, 2e-4);
        var (os, ss) = GlaScan.Step(s, q.select(1, 0), k.select(1, 0), v.select(1, 0), g.select(1, 0));
        var (osRef, ssRef) = GlaScan.SequentialScan(F64(q.narrow(1, 0, 1))!, F64(k.narrow(1, 0, 1))!, F64(v.narrow(1, 0, 1))!,
            F64(g.narrow(1, 0, 1))!, scale, F64(s));
        Assert.InRange(Gpu.RelErr(os, osRef.squeeze(1)), 0, Gpu.Tol(io, 2e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(ss, ssRef), 0, 2e-4);
    }

    // The chunked kernels (forced): many chunks carry the state through the state pass, a partial last chunk, and at
    // Mamba-2-130m's and the GLA LM's shapes. Half-precision SSD runs on the tensor-core kernels (chunk_state_ssd_tc,
    // chunk_output_ssd_tc). Tolerances (relative L2): float32 outputs and states 1e-4; bfloat16 outputs 1e-2, float16
    // 2e-3 (written in the I/O type; the scores and the entering state are rounded to it for the tensor cores), states
    // 1e-4 (float32, from the same half inputs as the reference).
    [Theory]
    [InlineData("f32", 1, 1000, 24, 64, 1, 128, true)]   // Mamba-2-130m's heads, 16 chunks, the last one partial
    [InlineData("f32", 2, 333, 6, 24, 2, 64, true)]      // batch 2, groups, D, z, dt_bias + softplus, initial state
    [InlineData("f32", 1, 4096, 4, 64, 1, 128, false)]   // 64 chunks
    [InlineData("f32", 1, 100, 2, 70, 1, 130, true)]     // two value tiles, three key tiles
    [InlineData("bf16", 1, 1000, 8, 64, 2, 128, true)]
    [InlineData("bf16", 2, 2048, 4, 64, 1, 128, false)]
    [InlineData("bf16", 2, 333, 6, 24, 2, 64, true)]     // head dim and state size below one tile
    [InlineData("bf16", 1, 100, 2, 70, 1, 130, true)]    // two value tiles, three key tiles
    [InlineData("f16", 1, 1000, 8, 64, 2, 128, true)]    // forced only: dispatch keeps float16 SSD off the chunked kernels
    public void ChunkedSsdKernelsMatchTheReference(string dtype, int batch, int L, int heads, int p, int groups, int n, bool full)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L * 10 + n + 1);
        var x = Rand(io, batch, L, heads, p);
        var dt = full ? Rand(io, batch, L, heads) : (torch.rand(batch, L, heads, device: Gpu.Device) * 0.2 + 0.01).to_type(io);
        var A = -torch.rand(heads, device: Gpu.Device) * 2 - 0.1;
        var B = Rand(io, batch, L, groups, n) * 0.5;
        var C = Rand(io, batch, L, groups, n) * 0.5;
        var D = full ? torch.randn(heads, device: Gpu.Device) : null;
        var z = full ? Rand(io, batch, L, heads, p) : null;
        var bias = full ? torch.randn(heads, device: Gpu.Device) * 0.1 - 1.0 : null;
        var h0 = full ? torch.randn(batch, heads, p, n, device: Gpu.Device) : null;
        var r = CudaScanKernels.TrySsd(x, dt, A, B, C, D, z, bias, full, h0, chunked: true);
        Assert.NotNull(r);
        var (y, h) = r.Value;
        Assert.Equal(io, y.dtype);
        Assert.Equal(new long[] { batch, heads, p, n }, h.shape);
        var (yRef, hRef) = SsdScan.ChunkedScan(F64(x)!, F64(dt)!, F64(A)!, F64(B)!, F64(C)!, 64, F64(D), F64(z), F64(bias), full, F64(h0));
        Assert.InRange(Gpu.RelErr(y, yRef), 0, Gpu.Tol(io, 1e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(h, hRef), 0, 1e-4);
        // SsdScan.Scan takes the chunked kernels from one chunk on (the same launches, the same bits); float16 takes the
        // recurrent kernel or the reference instead
        var (yd, hd) = SsdScan.Scan(x, dt, A, B, C, 256, D, z, bias, full, h0);
        bool same = io != ScalarType.Float16;
        Assert.InRange(Gpu.RelErr(yd, y), 0, same ? 1e-7 : 4e-3);
        Assert.InRange(Gpu.RelErr(hd, h), 0, same ? 1e-7 : 2e-4);
    }

    [Theory]
    [InlineData("f32", 1, 1000, 6, 64, 128, true)]       // the GLA LM's heads, 16 chunks, the last one partial
    [InlineData("f32", 2, 333, 3, 100, 48, true)]        // batch 2, keys across four key tiles, V below one value tile
    [InlineData("f32", 1, 4096, 2, 64, 64, false)]       // 64 chunks
    [InlineData("bf16", 1, 1000, 6, 64, 128, true)]
    [InlineData("bf16", 2, 517, 4, 128, 256, false)]
    public void ChunkedGlaKernelsMatchTheReference(string dtype, int batch, int L, int heads, int K, int V, bool withState)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L * 10 + K + 1);
        var q = Rand(io, batch, L, heads, K);
        var k = Rand(io, batch, L, heads, K);
        var v = Rand(io, batch, L, heads, V);
        var g = torch.nn.functional.logsigmoid(torch.randn(batch, L, heads, K, device: Gpu.Device) + 3).to_type(io);
        var s0 = withState ? torch.randn(batch, heads, K, V, device: Gpu.Device) : null;
        double scale = 1.0 / Math.Sqrt(K);
        var r = CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true);
        Assert.NotNull(r);
        var (o, s) = r.Value;
        Assert.Equal(io, o.dtype);
        var (oRef, sRef) = GlaScan.ChunkedScan(F64(q)!, F64(k)!, F64(v)!, F64(g)!, scale, 16, F64(s0));
        Assert.InRange(Gpu.RelErr(o, oRef), 0, Gpu.Tol(io, 1e-4, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(s, sRef), 0, 1e-4);
        var (od, sd) = GlaScan.Scan(q, k, v, g, scale, 64, s0);
        Assert.InRange(Gpu.RelErr(od, o), 0, 1e-7);
        Assert.InRange(Gpu.RelErr(sd, s), 0, 1e-7);
    }

    [Fact]
    public void ChunkedAndRecurrentKernelsAgreeOnSteepGates()
    {
        // gates near −4 per step: decays underflow within a chunk, the chunk's exponents reach −250
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var q = torch.randn(1, 200, 2, 64, device: Gpu.Device);
        var k = torch.randn(1, 200, 2, 64, device: Gpu.Device);
        var v = torch.randn(1, 200, 2, 64, device: Gpu.Device);
        var g = torch.nn.functional.logsigmoid(torch.randn(1, 200, 2, 64, device: Gpu.Device) - 4);
        var chunked = CudaScanKernels.TryGla(q, k, v, g, 0.125, null, chunked: true);
        var recurrent = CudaScanKernels.TryGla(q, k, v, g, 0.125, null, chunked: false);
        Assert.NotNull(chunked);
        Assert.NotNull(recurrent);
        Assert.True(chunked.Value.o.isfinite().all().item<bool>());
        Assert.InRange(Gpu.RelErr(chunked.Value.o, recurrent.Value.o), 0, 1e-4);
        Assert.InRange(Gpu.RelErr(chunked.Value.finalState, recurrent.Value.finalState), 0, 1e-4);
    }

    [Theory]
    [InlineData("f32", 1, 3, 37, 4, true, true, true)]
    [InlineData("f32", 2, 5, 300, 1, false, false, false)]
    [InlineData("f32", 2, 4, 3, 4, true, true, false)]     // shorter than the filter
    [InlineData("bf16", 1, 8, 129, 4, true, false, true)]
    [InlineData("bf16", 2, 6, 65, 3, false, true, true)]
    public void CausalConvKernelMatchesTheReference(string dtype, int batch, int d, int L, int W, bool withBias, bool withState, bool silu)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L * 10 + W);
        var x = Rand(io, batch, d, L);
        var w = torch.randn(d, W, device: Gpu.Device);
        var bias = withBias ? torch.randn(d, device: Gpu.Device) : null;
        var s0 = withState ? Rand(io, batch, d, W - 1) : null;
        var r = CudaScanKernels.TryCausalConv(x, w, bias, silu, s0);
        Assert.NotNull(r);
        var (yRef, sRef) = CausalConv1d.Reference(F64(x)!, F64(w)!, F64(bias), silu ? "silu" : null, F64(s0));
        Assert.InRange(Gpu.RelErr(r.Value.y, yRef), 0, Gpu.Tol(io, 2e-5, 2e-3, 1e-2));
        Assert.InRange(Gpu.RelErr(r.Value.finalState, sRef), 0, 1e-6); // copied inputs
        // fft_conv with a short causal filter takes the direct kernel: equal to the FFT reference.
        var k = torch.randn(d, Math.Min(W + 2, L), device: Gpu.Device);
        Assert.InRange(Gpu.RelErr(FftConv.Scan(x, k), FftConv.Reference(F64(x)!, F64(k)!)), 0, Gpu.Tol(io, 2e-5, 2e-3, 1e-2));
        var kLong = torch.randn(d, L, device: Gpu.Device);   // long filter: cuFFT through libtorch
        Assert.InRange(Gpu.RelErr(FftConv.Scan(x, kLong), FftConv.Reference(F64(x)!, F64(kLong)!)), 0, Gpu.Tol(io, 1e-4, 2e-3, 1e-2));
    }

    [Fact]
    public void KernelsDeclineWhenAutogradIsNeeded()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        var q = torch.randn(new long[] { 1, 5, 2, 4 }, device: Gpu.Device, requires_grad: true);
        var g = torch.zeros(1, 5, 2, 4, device: Gpu.Device);
        Assert.Null(CudaScanKernels.TryGla(q, q, q, g, 0.5, null));
        var (o, _) = GlaScan.Scan(q, q, q, g);
        o.sum().backward();
        Assert.NotNull(q.grad);
    }
}
