using System;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Scans;

/// <summary>
/// The second form of the bfloat16 chunked GLA kernels (<see cref="CudaScanKernels.UseGlaSecondForm"/>, the default since run 18a:
/// secondary chunking of the scores, entering states in bf16) against the first form (the switch off) and the float64
/// reference, on the same bf16 inputs. Tolerances (relative L2): outputs 1e-2 against the reference and against the first
/// form (both written in bf16 from bf16-rounded scores and entering states; the emulation measures 2.4e-3 .. 2.8e-3
/// against the recurrence); final states 1e-4 against the reference and 1e-6 against the first form (both forms compute
/// the same float32 contributions and pass them in the same order: only their layout differs). A misaligned input makes
/// the second form decline, and the first form's result comes back unchanged. In the serialized collection: the
/// switches are global.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class GlaSecondFormGpuTests
{
    [Theory]
    [InlineData(1, 1000, 6, 64, 128, 3.0, true)]     // the GLA LM's heads, gentle gates, 16 chunks (the last partial), initial state
    [InlineData(4, 2048, 6, 64, 128, 0.0, false)]    // batch 4, 32 chunks
    [InlineData(2, 517, 4, 128, 256, 0.0, false)]    // four key tiles of 32, two output tiles of 128 columns
    [InlineData(1, 300, 2, 64, 64, -4.0, false)]     // steep gates: in-chunk decays underflow
    [InlineData(1, 77, 3, 40, 24, 0.0, true)]        // K, V multiples of 8 only (partial key and value tiles), odd length
    public void SecondFormMatchesTheFirstAndTheReference(int batch, int L, int heads, int K, int V, double gateShift, bool withState)
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 1000 + L + K);
        var (q, k, v, g, s0) = Inputs(batch, L, heads, K, V, gateShift, withState);
        double scale = 1.0 / Math.Sqrt(K);
        var second = Form(true, () => CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true));
        var first = Form(false, () => CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true));
        Assert.NotNull(second);
        Assert.NotNull(first);
        var f64 = (Tensor t) => t.to_type(ScalarType.Float64);
        var (oRef, sRef) = GlaScan.ChunkedScan(f64(q), f64(k), f64(v), f64(g), scale, 16, s0 is null ? null : f64(s0));
        Assert.InRange(Gpu.RelErr(second.Value.o, oRef), 0, 1e-2);
        Assert.InRange(Gpu.RelErr(second.Value.finalState, sRef), 0, 1e-4);
        Assert.InRange(Gpu.RelErr(second.Value.o, first.Value.o), 0, 1e-2);
        Assert.InRange(Gpu.RelErr(second.Value.finalState, first.Value.finalState), 0, 1e-6);
    }

    [Fact]
    public void MisalignedInputsTakeTheFirstForm()
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var (q, k, v, g, s0) = Inputs(1, 200, 2, 64, 128, 0.0, false);
        // q one element into a buffer: contiguous, 2 bytes past a 16-byte boundary
        var qOff = torch.empty(q.numel() + 1, dtype: q.dtype, device: q.device)[1..].view(q.shape);
        qOff.copy_(q);
        double scale = 0.125;
        var second = Form(true, () => CudaScanKernels.TryGla(qOff, k, v, g, scale, s0, chunked: true));
        var first = Form(false, () => CudaScanKernels.TryGla(q, k, v, g, scale, s0, chunked: true));
        Assert.NotNull(second);
        Assert.NotNull(first);
        Assert.True(second.Value.o.equal(first.Value.o).all().item<bool>(), "the declined second form should leave the first form's output");
    }

    private static (Tensor q, Tensor k, Tensor v, Tensor g, Tensor? s0) Inputs(int batch, int L, int heads, int K, int V,
        double gateShift, bool withState)
    {
        var io = ScalarType.BFloat16;
        var q = torch.randn(batch, L, heads, K, device: Gpu.Device).to_type(io);
        var k = torch.randn(batch, L, heads, K, device: Gpu.Device).to_type(io);
        var v = torch.randn(batch, L, heads, V, device: Gpu.Device).to_type(io);
        var g = torch.nn.functional.logsigmoid(torch.randn(batch, L, heads, K, device: Gpu.Device) + gateShift).to_type(io);
        var s0 = withState ? torch.randn(batch, heads, K, V, device: Gpu.Device) : null;
        return (q, k, v, g, s0);
    }

    // the second form is opt-in until measured: each side sets the switch and restores it
    private static (Tensor o, Tensor finalState)? Form(bool second, Func<(Tensor o, Tensor finalState)?> run)
    {
        bool saved = CudaScanKernels.UseGlaSecondForm;
        CudaScanKernels.UseGlaSecondForm = second;
        try { return run(); }
        finally { CudaScanKernels.UseGlaSecondForm = saved; }
    }
}
