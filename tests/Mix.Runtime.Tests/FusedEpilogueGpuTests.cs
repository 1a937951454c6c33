using System;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The residual epilogue, the layout-aware bias + activation, GroupNorm(1) and the tiled pooling pass against float64
/// references: NCHW and channels-last inputs (the result keeps the layout), parameters in the module's own dtype,
/// vector and scalar paths (odd sizes), samples in several L2-sized groups. Tolerances (relative L2): float32 1e-5
/// (1e-6 for pure elementwise), float16 2e-3, bfloat16 1e-2.
/// </summary>
[Trait("Category", "Gpu")]
public class FusedEpilogueGpuTests
{
    private static Tensor Rand(ScalarType dt, params long[] shape) => torch.randn(shape, device: Gpu.Device).to_type(dt);
    private static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);

    private static Tensor ChannelsLast(Tensor t) => t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    private static bool IsChannelsLast(Tensor t) => t.permute(0, 2, 3, 1).is_contiguous() && !t.is_contiguous();

    private static Tensor Along(Tensor v, long[] shape, int cd)
    {
        var view = new long[shape.Length];
        Array.Fill(view, 1L);
        view[cd] = v.numel();
        return v.view(view);
    }

    [Theory]
    [InlineData("f32", 1, new long[] { 3, 8, 5, 7 }, false, true, true, true, "f32")]
    [InlineData("f32", 1, new long[] { 2, 16, 6, 6 }, true, true, true, true, "f32")]
    [InlineData("bf16", 1, new long[] { 2, 64, 14, 14 }, true, true, false, true, "bf16")]
    [InlineData("bf16", 1, new long[] { 2, 64, 14, 14 }, false, false, true, false, "bf16")]
    [InlineData("f16", -1, new long[] { 4, 9, 40 }, false, true, true, true, "f32")]
    [InlineData("bf16", -1, new long[] { 3, 5, 7 }, false, true, false, false, "f32")]
    [InlineData("f32", 1, new long[] { 2, 5, 3, 3 }, true, false, false, true, "f32")]
    public void ScaleResidualMatchesReference(string dtype, int channelDim, long[] shape, bool channelsLast, bool withLs, bool withRs,
        bool withBias, string paramDtype)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        var pt = Gpu.Dtype(paramDtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var r = Rand(dt, shape);
        var x = Rand(dt, shape);
        if (channelsLast) { r = ChannelsLast(r); x = ChannelsLast(x); }
        int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
        long C = shape[cd];
        Tensor? P(bool on) => on ? torch.randn(C, device: Gpu.Device).to_type(pt) : null;
        var (ls, rs, bias) = (P(withLs), P(withRs), P(withBias));
        var y = FusedOps.ScaleResidual(r, x, ls, rs, bias, channelDim);
        Assert.NotNull(y);
        Assert.Equal(shape, y!.shape);
        if (channelsLast) Assert.True(IsChannelsLast(y), "the result keeps the inputs' channels-last layout");
        var branch = F64(x);
        if (bias is not null) branch += Along(F64(bias), shape, cd);
        if (ls is not null) branch *= Along(F64(ls), shape, cd);
        var yRef = (rs is null ? F64(r) : F64(r) * Along(F64(rs), shape, cd)) + branch;
        Assert.InRange(Gpu.RelErr(y, yRef), 0, Gpu.Tol(dt, 1e-6, 2e-3, 1e-2));
    }

    [Fact]
    public void ScaleResidualDeclinesDifferingLayouts()
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var r = torch.randn(2, 8, 4, 4, device: Gpu.Device);
        var x = ChannelsLast(torch.randn(2, 8, 4, 4, device: Gpu.Device));
        Assert.Null(FusedOps.ScaleResidual(r, x, torch.ones(8, device: Gpu.Device), channelDim: 1));
    }

    [Theory]
    [InlineData("bf16", FusedActivation.Gelu, true)]
    [InlineData("f16", FusedActivation.Gelu, true)]
    [InlineData("f32", FusedActivation.Gelu, true)]
    [InlineData("bf16", FusedActivation.StarReLU, true)]
    [InlineData("bf16", FusedActivation.Gelu, false)]
    public void BiasActivationKeepsChannelsLastAndReadsParametersInTheirDtype(string dtype, FusedActivation act, bool channelsLast)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = Rand(dt, 2, 64, 7, 9);
        if (channelsLast) x = ChannelsLast(x);
        var bias = torch.randn(64, device: Gpu.Device).to_type(dt);
        var s = torch.tensor(new float[] { 0.8f }, device: Gpu.Device).to_type(dt);
        var b = torch.tensor(new float[] { -0.3f }, device: Gpu.Device).to_type(dt);
        var y = FusedOps.BiasActivation(x, bias, act, s, b, channelDim: 1);
        Assert.NotNull(y);
        Assert.Equal(channelsLast, IsChannelsLast(y!));
        var pre = F64(x) + F64(bias).view(1, 64, 1, 1);
        var yRef = act == FusedActivation.Gelu
            ? torch.nn.functional.gelu(pre)
            : F64(s) * torch.nn.functional.relu(pre).square() + F64(b);
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-6, 2e-3, 1e-2));
    }

    /// <summary>
    /// GELU with 16-bit outputs computes <c>0.5·x·(1 + erff(x/√2))</c> in float32 like PyTorch's kernel: every output,
    /// the far negative tail included (where <c>1 + erf</c> cancels in float32 on both sides), is within one unit in the
    /// last place of PyTorch's own result.
    /// </summary>
    [Theory]
    [InlineData("bf16")]
    [InlineData("f16")]
    public void SixteenBitGeluIsWithinOneUlpOfPyTorch(string dtype)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.linspace(-12, 8, 1 << 16, device: Gpu.Device).to_type(dt);
        var y = FusedOps.BiasActivation(x, null, FusedActivation.Gelu);
        Assert.NotNull(y);
        var expected = torch.nn.functional.gelu(x);
        // one ulp of PyTorch's value: 2^(exponent - mantissa bits), at least the smallest subnormal spacing
        var (bits, tiny) = dt == ScalarType.BFloat16 ? (7, Math.Pow(2, -133)) : (10, Math.Pow(2, -24));
        var exponent = torch.floor(torch.log2(F64(expected).abs()));
        var ulp = torch.clamp_min(((exponent - bits) * Math.Log(2)).exp(), tiny);
        var worst = ((F64(y!) - F64(expected)).abs() - ulp).max().item<double>();
        Assert.True(worst <= 0, $"GELU {dtype} differs from PyTorch's by more than one ulp (excess {worst:E2})");
    }

    [Theory]
    [InlineData("f32", new long[] { 3, 8, 5, 7 }, false, true)]
    [InlineData("f32", new long[] { 2, 64, 56, 56 }, false, true)]
    [InlineData("bf16", new long[] { 4, 64, 28, 28 }, false, true)]
    [InlineData("bf16", new long[] { 2, 32, 7, 7 }, true, true)]
    [InlineData("f16", new long[] { 2, 6, 3, 5 }, true, false)]
    [InlineData("f32", new long[] { 3, 5, 11 }, false, false)]
    public void GroupNorm1MatchesReference(string dtype, long[] shape, bool channelsLast, bool affine)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = (Rand(dt, shape) * 3 + 1.5).to_type(dt);
        if (channelsLast) x = ChannelsLast(x);
        long C = shape[1];
        var w = affine ? torch.randn(C, device: Gpu.Device).to_type(dt) : null;
        var b = affine ? torch.randn(C, device: Gpu.Device).to_type(dt) : null;
        var y = FusedOps.GroupNorm1(x, w, b, 1e-5);
        Assert.NotNull(y);
        Assert.Equal(channelsLast, shape.Length == 4 && IsChannelsLast(y!));
        var yRef = torch.nn.functional.group_norm(F64(x), 1, w is null ? null : F64(w), b is null ? null : F64(b), 1e-5);
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));
    }

    [Theory]
    [InlineData("f32", new long[] { 2, 64, 7, 9 }, 1, true)]
    [InlineData("bf16", new long[] { 2, 64, 7, 9 }, 1, false)]
    [InlineData("f32", new long[] { 3, 320, 5, 5 }, 1, false)]
    [InlineData("bf16", new long[] { 2, 512, 3, 7 }, 1, true)]
    [InlineData("f16", new long[] { 3, 49, 48 }, -1, false)]
    [InlineData("f32", new long[] { 5, 1000, 12 }, -1, true)]
    public void LayerNormOverInnermostChannelsMatchesReference(string dtype, long[] shape, int channelDim, bool withBias)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = (Rand(dt, shape) * 2 + 0.7).to_type(dt);
        if (shape.Length == 4) x = ChannelsLast(x);
        int cd = channelDim < 0 ? shape.Length + channelDim : channelDim;
        long C = shape[cd];
        var w = torch.randn(C, device: Gpu.Device).to_type(dt);
        var b = withBias ? torch.randn(C, device: Gpu.Device).to_type(dt) : null;
        var y = FusedOps.LayerNorm(x, w, b, 1e-6, channelDim);
        Assert.NotNull(y);
        if (shape.Length == 4) Assert.True(IsChannelsLast(y!), "the result keeps the channels-last layout");
        var xd = shape.Length == 4 ? F64(x).permute(0, 2, 3, 1) : F64(x);
        var yRef = torch.nn.functional.layer_norm(xd, new[] { C }, F64(w), b is null ? null : F64(b), 1e-6);
        if (shape.Length == 4) yRef = yRef.permute(0, 3, 1, 2);
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));
    }

    [Fact]
    public void LayerNormDeclinesChannelsThatAreNotInnermost()
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, 64, 7, 9, device: Gpu.Device);
        Assert.Null(FusedOps.LayerNorm(x, null, null, 1e-6, 1));
    }

    /// <summary>Enough samples that the L2-sized groups split the batch (float32, 3.2 MB per sample).</summary>
    [Theory]
    [InlineData("f32", 12, 64, 112, 112)]
    [InlineData("bf16", 3, 20, 300, 9)]
    [InlineData("bf16", 2, 3, 1, 600)]
    public void PoolingSubBlockOverGroupsAndWideRows(string dtype, int B, int C, int H, int W)
    {
        Gpu.Require();
        var dt = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = (Rand(dt, B, C, H, W) * 2 + 0.5).to_type(dt);
        var gw = torch.randn(C, device: Gpu.Device).to_type(dt);
        var gb = torch.randn(C, device: Gpu.Device).to_type(dt);
        var ls = torch.randn(C, device: Gpu.Device).to_type(dt);
        var y = FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls);
        Assert.NotNull(y);
        var xd = F64(x);
        var nrm = torch.nn.functional.group_norm(xd, 1, F64(gw), F64(gb), 1e-5);
        var pooled = torch.nn.functional.avg_pool2d(nrm, 3, 1, 1, count_include_pad: false);
        var yRef = xd + F64(ls).view(1, C, 1, 1) * (pooled - nrm);
        Assert.InRange(Gpu.RelErr(y!, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));

        // The same with statistics computed beforehand (only the pooling pass runs).
        var stats = FusedOps.GroupNormStatistics(x, 1e-5);
        Assert.NotNull(stats);
        var y2 = FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls, stats);
        Assert.InRange(Gpu.RelErr(y2!, yRef), 0, Gpu.Tol(dt, 1e-5, 2e-3, 1e-2));
    }
}
