using System;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The region launch switches of docs/gpu.md's "Regions against the hand kernels" on the GPU (Category=Gpu; skipped
/// without CUDA): StarReLU, the residual <c>x * rs + o</c> and the channel LayerNorm of channels-last memory, at odd and
/// at ConvFormer-stage shapes, NCHW and channels-last, float32 / bfloat16, run with the switches off (run 17a's
/// launches), with <see cref="FusedRegionKernel.CachePlans"/> (twice, so the second call takes the cached plan), with
/// <see cref="FusedRegionKernel.PointwiseUnroll"/> 2, and with <see cref="FusedRegionKernel.RowVector16"/> and
/// <see cref="FusedRegionKernel.RowInRegisters"/>. The plan cache, the unroll and the row in registers compute every
/// element as before: equal to the default launch's output bit for bit. The 16-byte rows sum a lane's elements in
/// another grouping: within the reference tolerance (float32 1e-5, bfloat16 1e-2 relative L2) like the default.
/// </summary>
[Trait("Category", "Gpu")]
public class RegionLaunchSwitchGpuTests
{
    private static Tensor Make(long b, long c, long hw, ScalarType dt, bool channelsLast)
    {
        var t = torch.randn(b, c, hw, hw, device: Gpu.Device).to_type(dt);
        return channelsLast ? t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : t;
    }

    private static Tensor Run(FusedRegion region, Tensor[] xs, Action? on = null)
    {
        try
        {
            on?.Invoke();
            var y = region.TryRun(xs);
            Assert.NotNull(y);
            return y!;
        }
        finally
        {
            FusedRegionKernel.CachePlans = false;
            FusedRegionKernel.PointwiseUnroll = 1;
            FusedRegionKernel.RowVector16 = false;
            FusedRegionKernel.RowInRegisters = false;
        }
    }

    [Theory]
    [InlineData("f32", false)]
    [InlineData("f32", true)]
    [InlineData("bf16", false)]
    [InlineData("bf16", true)]
    public void Pointwise_regions_are_unchanged_by_the_launch_switches(string dtype, bool channelsLast)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        torch.manual_seed(31);
        using var _ = torch.no_grad();
        var star = EpilogueRegions.BiasActivation(FusedActivation.StarReLU, bias: false)!;
        var res = EpilogueRegions.Residual(bias: false, layerScale: false, resScale: true)!;
        foreach (var (b, c, hw) in new (long, long, long)[] { (3, 5, 7), (2, 128, 56), (4, 320, 14) })
        {
            using var scope = torch.NewDisposeScope();
            var h = Make(b, c, hw, dt, channelsLast);
            var s = torch.full(1, 0.8, device: Gpu.Device).to_type(dt);
            var t = torch.full(1, -0.1, device: Gpu.Device).to_type(dt);
            var x = Make(b, c, hw, dt, channelsLast);
            var o = Make(b, c, hw, dt, channelsLast);
            var rs = torch.randn(c, 1, 1, device: Gpu.Device).to_type(dt);
            foreach (var (region, xs, reference) in new[]
                     {
                         (star, star.Arguments(("h", h), ("s", s), ("t", t)), s * torch.nn.functional.relu(h).square() + t),
                         (res, res.Arguments(("x", x), ("o", o), ("rs", rs)), x * rs + o),
                     })
            {
                var baseline = Run(region.Bound, xs);
                Assert.True(Gpu.RelErr(baseline, reference) <= Gpu.Tol(dt, 1e-6, 1e-3, 1e-2), $"{region.Name} {dt} [{b}, {c}, {hw}, {hw}]");
                foreach (var (what, on) in new (string, Action)[]
                         {
                             ("plan cache", () => FusedRegionKernel.CachePlans = true),
                             ("plan cache, second call", () => FusedRegionKernel.CachePlans = true),
                             ("U2", () => FusedRegionKernel.PointwiseUnroll = 2),
                             ("plan cache + U2", () => { FusedRegionKernel.CachePlans = true; FusedRegionKernel.PointwiseUnroll = 2; }),
                         })
                {
                    var y = Run(region.Bound, xs, on);
                    Assert.True(y.shape.SequenceEqual(baseline.shape) && y.eq(baseline).all().item<bool>(), $"{region.Name} {dt} [{b}, {c}, {hw}, {hw}] {(channelsLast ? "channels-last" : "NCHW")} {what}: differs from the default launch");
                    Assert.Equal(baseline.stride(), y.stride());
                }
            }
        }
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("bf16")]
    public void The_channel_norm_region_is_unchanged_by_the_row_switches(string dtype)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        torch.manual_seed(32);
        using var _ = torch.no_grad();
        var region = NormRegions.LayerNorm2dWeight.Bind(1e-6);
        foreach (var (b, c, hw) in new (long, long, long)[] { (3, 24, 5), (2, 64, 56), (2, 128, 28), (4, 320, 14), (8, 512, 7) })
        {
            using var scope = torch.NewDisposeScope();
            var x = Make(b, c, hw, dt, channelsLast: true);
            var w = (torch.randn(c, 1, 1, device: Gpu.Device) * 0.1 + 1).to_type(dt);
            var xd = x.to_type(ScalarType.Float64);
            var mean = xd.mean(new long[] { 1 }, true);
            var reference = (xd - mean) * torch.rsqrt((xd - mean).square().mean(new long[] { 1 }, true) + 1e-6) * w.to_type(ScalarType.Float64);
            var baseline = Run(region, new[] { x, w });
            double tol = Gpu.Tol(dt, 1e-5, 1e-3, 1e-2);
            Assert.True(Gpu.RelErr(baseline, reference) <= tol, $"{dt} C{c}: default launch");
            foreach (var (what, on, exact) in new (string, Action, bool)[]
                     {
                         ("plan cache", () => FusedRegionKernel.CachePlans = true, true),
                         ("row in registers", () => FusedRegionKernel.RowInRegisters = true, true),
                         ("16-byte rows", () => FusedRegionKernel.RowVector16 = true, dt == ScalarType.Float32),
                         ("16-byte rows in registers, plan cache", () =>
                         {
                             FusedRegionKernel.CachePlans = true;
                             FusedRegionKernel.RowVector16 = true;
                             FusedRegionKernel.RowInRegisters = true;
                         }, dt == ScalarType.Float32),
                     })
            {
                var y = Run(region, new[] { x, w }, on);
                string where = $"{dt} [{b}, {c}, {hw}, {hw}] {what}";
                if (exact) Assert.True(y.shape.SequenceEqual(baseline.shape) && y.eq(baseline).all().item<bool>(), $"{where}: differs from the default launch");
                Assert.True(Gpu.RelErr(y, reference) <= tol, $"{where}: relative error {Gpu.RelErr(y, reference)}");
                Assert.Equal(baseline.stride(), y.stride());
            }
        }
    }
}
