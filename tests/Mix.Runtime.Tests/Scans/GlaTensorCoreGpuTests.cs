using System;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// Half-precision GLA on the tensor-core chunked kernels (the default) against the float32-FMA chunked kernels
/// (<see cref="CudaScanKernels.UseGlaTensorCores"/> off) and the float64 reference, on the same bf16 inputs: the GLA
/// LM's heads over many chunks, gates from gentle to steep. Tolerances (relative L2): outputs 1e-2 against the reference
/// and against the FMA kernels (both written in bf16; the tensor cores also round the scores and the entering state),
/// final states 1e-4 (float32 on both paths). In the serialized collection: the switch is global.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class GlaTensorCoreGpuTests
{
    [Theory]
    [InlineData(1, 1000, 6, 64, 128, 3.0, true)]     // the GLA LM's heads, gentle gates, 16 chunks (the last partial)
    [InlineData(2, 517, 4, 128, 256, 0.0, false)]    // two key and four value tiles, batch 2
    [InlineData(1, 300, 2, 64, 64, -4.0, false)]     // steep gates: in-chunk decays underflow
    public void TensorCoreAndFmaChunkedKernelsAgree(int batch, int L, int heads, int K, int V, double gateShift, bool withState)
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L + K);
        var io = ScalarType.BFloat16;
        var q = torch.randn(batch, L, heads, K, device: Gpu.Device).to_type(io);
        var k = torch.randn(batch, L, heads, K, device: Gpu.Device).to_type(io);
        var v = torch.randn(batch, L, heads, V, device: Gpu.Device).to_type(io);
        var g = torch.nn.functional.logsigmoid(torch.randn(batch, L, heads, K, device: Gpu.Device) + gateShift).to_type(io);
        var s0 = withState ? torch.randn(batch, heads, K, V, device: Gpu.Device) : null;
        double scale = 1.0 / Math.Sqrt(K);
        var tc = CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true);
        (Tensor o, Tensor finalState)? fma;
        CudaScanKernels.UseGlaTensorCores = false;
        try { fma = CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true); }
        finally { CudaScanKernels.UseGlaTensorCores = true; }
        Assert.NotNull(tc);
        Assert.NotNull(fma);
        var f64 = (Tensor t) => t.to_type(ScalarType.Float64);
        var (oRef, sRef) = GlaScan.ChunkedScan(f64(q), f64(k), f64(v), f64(g), scale, 16, s0 is null ? null : f64(s0));
        Assert.InRange(Gpu.RelErr(tc.Value.o, oRef), 0, 1e-2);
        Assert.InRange(Gpu.RelErr(tc.Value.finalState, sRef), 0, 1e-4);
        Assert.InRange(Gpu.RelErr(tc.Value.o, fma.Value.o), 0, 1e-2);
        Assert.InRange(Gpu.RelErr(tc.Value.finalState, fma.Value.finalState), 0, 1e-4);
    }
}
