using System;
using System.IO;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// Fused kernels against reference computations in float64 (inputs rounded to the I/O dtype first, so the
/// tolerance measures the kernel, not the input rounding). Tolerances (relative L2): float32 1e-4 (scan 2e-4),
/// float16 2e-3, bfloat16 1e-2.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(SelectiveScanKernelCollection))]
public class FusedKernelGpuTests
{
    private static Tensor Rand(ScalarType dt, params long[] shape) => torch.randn(shape, device: Gpu.Device).to_type(dt);
    private static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);

    [Theory]
    [InlineData("f32", 1, 5, 16, 1, true)]
    [InlineData("f32", 2, 37, 16, 131, true)]
    [InlineData("f32", 3, 17, 7, 200, false)]
    [InlineData("f32", 1, 64, 32, 65, true)]
    [InlineData("f32", 2, 20, 1, 70, true)]
    [InlineData("f16", 2, 37, 16, 131, true)]
    [InlineData("bf16", 1, 48, 16, 257, true)]
    [InlineData("bf16", 2, 19, 5, 63, false)]
    public void SelectiveScanMatchesReference(string dtype, int batch, int dim, int n, int L, bool full)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + dim * 10 + L);
        var u = Rand(dt, batch, dim, L);
        var delta = (Rand(dt, batch, dim, L) * 0.5).to_type(dt);
        var A = -torch.rand(dim, n, device: Gpu.Device) * 2 - 0.1;
        var B = Rand(dt, batch, n, L);
        var C = Rand(dt, batch, n, L);
        var D = full ? torch.randn(dim, device: Gpu.Device) : null;
        var z = full ? Rand(dt, batch, dim, L) : null;
        var bias = full ? torch.randn(dim, device: Gpu.Device) * 0.1 : null;
        var h0 = full ? torch.randn(batch, dim, n, device: Gpu.Device) : null;
        var kernel = new CudaSelectiveScanKernel();
        var r = kernel.TryScan(u, delta, A, B, C, D, z, bias, deltaSoftplus: full, initialState: h0);
        Assert.NotNull(r);
        var (y, h) = r.Value;
        Assert.Equal(dt, y.dtype);
        var (yRef, hRef) = SelectiveScan.SequentialScan(F64(u), F64(delta), F64(A), F64(B), F64(C), D is null ? null : F64(D),
            z is null ? null : F64(z), bias is null ? null : F64(bias), full, h0 is null ? null : F64(h0));
        double tol = Gpu.Tol(dt, 2e-4, 2e-3, 1e-2);
        Assert.InRange(Gpu.RelErr(y, yRef), 0, tol);
        Assert.InRange(Gpu.RelErr(h, hRef), 0, 2e-4); // state is float32 for every I/O dtype
    }

    [Fact]
    public void SelectiveScanThroughTheKernelSlotAndLongSequence()
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var previous = SelectiveScan.Kernel;
        try
        {
            Assert.NotNull(CudaSelectiveScanKernel.Install());
            int batch = 1, dim = 24, n = 16, L = 2048 + 3;
            var u = torch.randn(batch, dim, L, device: Gpu.Device);
            var delta = torch.randn(batch, dim, L, device: Gpu.Device);
            var A = -torch.rand(dim, n, device: Gpu.Device);
            var B = torch.randn(batch, n, L, device: Gpu.Device);
            var C = torch.randn(batch, n, L, device: Gpu.Device);
            var D = torch.randn(dim, device: Gpu.Device);
            var y = SelectiveScan.Scan(u, delta, A, B, C, D, null, null, deltaSoftplus: true);
            SelectiveScan.Kernel = null;
            var (yRef, _) = SelectiveScan.SequentialScan(F64(u), F64(delta), F64(A), F64(B), F64(C), F64(D), null, null, true);
            Assert.InRange(Gpu.RelErr(y, yRef), 0, 2e-4);
        }
        finally
        {
            SelectiveScan.Kernel = previous;
        }
    }

    [Theory]
    [InlineData("f32", 1, 7, 16)]
    [InlineData("f32", 3, 33, 5)]
    [InlineData("f16", 2, 64, 16)]
    [InlineData("bf16", 5, 129, 32)]
    public void SelectiveScanStepMatchesReference(string dtype, int batch, int dim, int n)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var state = torch.randn(batch, dim, n, device: Gpu.Device);
        var u = Rand(dt, batch, dim);
        var delta = Rand(dt, batch, dim);
        var A = -torch.rand(dim, n, device: Gpu.Device);
        var B = Rand(dt, batch, n);
        var C = Rand(dt, batch, n);
        var D = torch.randn(dim, device: Gpu.Device);
        var z = Rand(dt, batch, dim);
        var bias = torch.randn(dim, device: Gpu.Device) * 0.1;
        var r = new CudaSelectiveScanKernel().TryStep(state, u, delta, A, B, C, D, z, bias, true);
        Assert.NotNull(r);
        var (y, s) = r.Value;
        var previous = SelectiveScan.Kernel;
        SelectiveScan.Kernel = null;
        try
        {
            var (yRef, sRef) = SelectiveScan.Step(F64(state), F64(u), F64(delta), F64(A), F64(B), F64(C), F64(D), F64(z), F64(bias), true);
            Assert.InRange(Gpu.RelErr(y, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));
            Assert.InRange(Gpu.RelErr(s, sRef), 0, 1e-5);
        }
        finally
        {
            SelectiveScan.Kernel = previous;
        }
    }

    [Theory]
    [InlineData("f32", 1, 3, 7, 9)]
    [InlineData("f32", 2, 5, 33, 17)]
    [InlineData("f32", 1, 1, 1, 1)]
    [InlineData("f16", 2, 64, 56, 56)]
    [InlineData("bf16", 3, 13, 31, 40)]
    public void PoolingSubBlockMatchesReference(string dtype, int B, int C, int H, int W)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = (Rand(dt, B, C, H, W) * 2 + 0.5).to_type(dt);
        var gw = torch.randn(C, device: Gpu.Device);
        var gb = torch.randn(C, device: Gpu.Device);
        var ls = torch.randn(C, device: Gpu.Device);
        var y = FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls);
        Assert.NotNull(y);
        Assert.Equal(dt, y!.dtype);
        var xd = F64(x);
        var nrm = torch.nn.functional.group_norm(xd, 1, F64(gw), F64(gb), 1e-5);
        var pooled = torch.nn.functional.avg_pool2d(nrm, 3, 1, 1, count_include_pad: false);
        var yRef = xd + F64(ls).view(1, C, 1, 1) * (pooled - nrm);
        Assert.InRange(Gpu.RelErr(y, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));
    }

    [Theory]
    [InlineData("f32", FusedActivation.Gelu, -1, new long[] { 7, 33, 96 })]
    [InlineData("f32", FusedActivation.StarReLU, -1, new long[] { 5, 13 })]
    [InlineData("f32", FusedActivation.SquaredReLU, 1, new long[] { 2, 6, 5, 7 })]
    [InlineData("f32", FusedActivation.None, 1, new long[] { 2, 8, 4, 4 })]
    [InlineData("f16", FusedActivation.Gelu, -1, new long[] { 3, 1000 })]
    [InlineData("bf16", FusedActivation.StarReLU, 1, new long[] { 2, 3, 8, 8 })]
    [InlineData("bf16", FusedActivation.SquaredReLU, -1, new long[] { 1, 11 })]
    public void BiasActivationMatchesReference(string dtype, FusedActivation act, int channelDim, long[] shape)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = Rand(dt, shape);
        int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
        long C = shape[cd];
        var bias = torch.randn(C, device: Gpu.Device);
        var s = torch.tensor(new float[] { 0.8f }, device: Gpu.Device);
        var b = torch.tensor(new float[] { -0.3f }, device: Gpu.Device);
        var y = FusedOps.BiasActivation(x, bias, act, s, b, channelDim);
        Assert.NotNull(y);
        var view = new long[shape.Length];
        Array.Fill(view, 1L);
        view[cd] = C;
        var pre = F64(x) + F64(bias).view(view);
        var yRef = act switch
        {
            FusedActivation.Gelu => torch.nn.functional.gelu(pre),
            FusedActivation.StarReLU => 0.8 * torch.nn.functional.relu(pre).square() - 0.3,
            FusedActivation.SquaredReLU => torch.nn.functional.relu(pre).square(),
            _ => pre,
        };
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-6, 2e-3, 1e-2));
        var noBias = FusedOps.BiasActivation(x, null, FusedActivation.None, channelDim: channelDim);
        Assert.InRange(Gpu.RelErr(noBias!, F64(x)), 0, 1e-7);
    }

    [Theory]
    [InlineData("f32", -1, new long[] { 4, 49, 64 })]
    [InlineData("f32", 1, new long[] { 3, 5, 7, 9 })]
    [InlineData("f16", -1, new long[] { 2, 3 })]
    [InlineData("bf16", 1, new long[] { 2, 16, 14, 14 })]
    public void LayerScaleResidualMatchesReference(string dtype, int channelDim, long[] shape)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var r = Rand(dt, shape);
        var x = Rand(dt, shape);
        int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
        var ls = torch.randn(shape[cd], device: Gpu.Device);
        var y = FusedOps.LayerScaleResidual(r, x, ls, channelDim);
        Assert.NotNull(y);
        var view = new long[shape.Length];
        Array.Fill(view, 1L);
        view[cd] = shape[cd];
        var yRef = F64(r) + F64(ls).view(view) * F64(x);
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-6, 2e-3, 1e-2));
    }

    [Theory]
    [InlineData(1, 14, 14, 8)]
    [InlineData(3, 7, 9, 5)]
    [InlineData(2, 56, 56, 96)]
    public void SpectralMultiplyAndGlobalFilterMatchReference(int B, int H, int W, int C)
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        long wf = W / 2 + 1;
        var module = new GlobalFilter(C, H, wf).to(Gpu.Device);
        var weight = module.parameters().GetEnumerator();
        weight.MoveNext();
        var cw = weight.Current;
        var x = torch.randn(B, H, W, C, device: Gpu.Device);
        var spectrum = torch.fft.rfft2(x, dim: new long[] { 1, 2 }, norm: FFTNormType.Ortho);
        var prod = FusedOps.SpectralMultiply(spectrum, cw);
        Assert.NotNull(prod);
        var prodRef = spectrum.to_type(ScalarType.ComplexFloat64) * torch.view_as_complex(F64(cw));
        Assert.InRange(Gpu.RelErr(torch.view_as_real(prod!), torch.view_as_real(prodRef)), 0, 1e-6);
        var y = FusedOps.GlobalFilter(x, cw);
        Assert.NotNull(y);
        Assert.InRange(Gpu.RelErr(y!, module.forward(x)), 0, 1e-5);
    }

    [Fact]
    public void DiskCacheServesASecondRuntime()
    {
        Gpu.Require();
        var dir = Path.Combine(Path.GetTempPath(), "mix-kcache-gpu-" + Guid.NewGuid().ToString("N"));
        try
        {
            var spec = new CudaKernelSpec("probe", "extern \"C\" __global__ void probe(float* p) { p[threadIdx.x] = 1.0f + threadIdx.x; }");
            var first = new KernelRuntime(new KernelDiskCache(dir));
            var f1 = first.GetFunction(spec, "probe", 0);
            Assert.Equal(1, first.CompileCount);
            var second = new KernelRuntime(new KernelDiskCache(dir));
            var f2 = second.GetFunction(spec, "probe", 0);
            Assert.Equal(0, second.CompileCount);
            Assert.Equal(1, second.DiskCacheHits);
            using var t = torch.zeros(32, device: Gpu.Device);
            using (var a = new KernelArguments(0)) { a.Add(t, ScalarType.Float32, "p"); f2.Launch(new Dim3(1), new Dim3(32), 0, a); }
            torch.cuda.synchronize();
            Assert.Equal(32f * 33f / 2f, t.sum().item<float>());
            // Wrong dtype / non-contiguous arguments are refused before launch.
            using var bad = torch.zeros(32, dtype: ScalarType.Float64, device: Gpu.Device);
            using var a2 = new KernelArguments(0);
            Assert.Throws<ArgumentException>(() => a2.Add(bad, ScalarType.Float32, "p"));
            using var nc = torch.zeros(8, 8, device: Gpu.Device).t();
            Assert.Throws<ArgumentException>(() => a2.Add(nc, ScalarType.Float32, "p"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void WarmUpPreparesEveryFusedKernel()
    {
        Gpu.Require();
        int ready = FusedOps.WarmUp(Gpu.Device);
        Assert.Equal(1 + 3 * 7, ready);
    }
}
