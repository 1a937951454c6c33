using System;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// What one decode step through <see cref="QuantizedKvCacheSlot"/> dispatches (<see cref="ForwardCost"/>), so the host
/// work cannot creep back: a step that packs no block creates exactly one tensor (the output) and launches exactly two
/// kernels (the tail append and the staged attention kernel, which merges its splits itself); a step that packs a block
/// adds the block's six tensors and two launches (the quantizer and the pointer-table row). Runs alone (the launch
/// counter is process-wide), for KIVI-4 and KIVI-2, without and with a padding mask of the new token.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class QuantizedKvSlotStepCostGpuTests
{
    [Theory]
    [InlineData("Kivi4", false)]
    [InlineData("Kivi2", false)]
    [InlineData("Kivi4", true)]
    public void DecodeStepCreatesOneTensorAndLaunchesTwoKernels(string mode, bool withMask)
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var dt = ScalarType.Float16;
        long B = 2, H = 4, D = 128;
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = Enum.Parse<KvQuantMode>(mode) } };
        using var slot = new QuantizedKvCacheSlot(0, B, H, D, opts, dt, Gpu.Device);
        slot.Prefill(torch.randn(B, H, 300, D, device: Gpu.Device).to_type(dt), torch.randn(B, H, 300, D, device: Gpu.Device).to_type(dt));
        int steps = 70;
        var k = torch.randn(B, H, steps, D, device: Gpu.Device).to_type(dt);
        var v = torch.randn(B, H, steps, D, device: Gpu.Device).to_type(dt);
        var q = torch.randn(B, H, 1, D, device: Gpu.Device).to_type(dt);
        var mask = withMask ? torch.ones(B, 1, dtype: ScalarType.Int64, device: Gpu.Device) : null;
        double scale = 1.0 / Math.Sqrt(D);
        int plain = 0, packing = 0;
        for (int i = 0; i < steps; i++)
        {
            var ki = k.narrow(2, i, 1);
            var vi = v.narrow(2, i, 1);
            int blocksBefore = slot.BlockCount;
            var cost = ForwardCost.Measure(() => { using var o = slot.Attend(q, ki, vi, mask, scale); });
            Assert.Equal("split", slot.LastAttendPath);
            Assert.Equal("staged", QuantizedKvAttention.LastKernel);
            if (i < 3) continue;   // the first steps compile and grow buffers
            if (slot.BlockCount == blocksBefore)
            {
                plain++;
                // a mask of the new token costs its validity write (ne, a view) and the row count (ne, sum, cpu, cast)
                Assert.True(cost.TorchOps <= (withMask ? 7 : 1), $"step {i}: {cost.TorchOps} tensors created");
                Assert.True(cost.Launches == 2, $"step {i}: {cost.Launches} launches");
            }
            else
            {
                packing++;
                Assert.True(cost.TorchOps <= (withMask ? 15 : 9), $"packing step {i}: {cost.TorchOps} tensors created");
                Assert.True(cost.Launches == 4, $"packing step {i}: {cost.Launches} launches");
            }
        }
        Assert.True(plain > 50 && packing >= 2, $"{plain} plain steps, {packing} packing steps");
    }
}
