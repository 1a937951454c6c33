using System;
using Mix.Runtime.Fused;
using Xunit;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>The split-K attention's split choice (<see cref="QuantizedKvAttention.Splits"/>): every chunk in exactly one
/// split, no empty split, at most 512 splits, and more splits per head on a device with more SMs.</summary>
public class KvAttentionSplitTests
{
    [Theory]
    [InlineData(1, 32, 132)]
    [InlineData(33, 32, 132)]
    [InlineData(130, 32, 132)]
    [InlineData(1026, 32, 132)]
    [InlineData(1026, 1, 132)]
    [InlineData(100000, 1, 132)]
    [InlineData(4160, 64, 78)]
    [InlineData(7, 2, 8)]
    public void SplitsCoverTheContextWithoutEmptySplits(long chunks, long heads, int sms)
    {
        var (s, cps) = QuantizedKvAttention.Splits(chunks, heads, sms);
        Assert.InRange(s, 1, 512);
        Assert.True(cps >= 1);
        Assert.True((long)s * cps >= chunks, $"{s} splits of {cps} chunks miss some of {chunks}");
        Assert.True((long)(s - 1) * cps < chunks, $"the last of {s} splits of {cps} chunks is empty ({chunks} chunks)");
    }

    [Fact]
    public void MoreMultiprocessorsGetMoreSplits()
    {
        var (small, _) = QuantizedKvAttention.Splits(1026, 32, 66);
        var (large, _) = QuantizedKvAttention.Splits(1026, 32, 132);
        Assert.True(large > small, $"{large} splits on 132 SMs vs {small} on 66");
        // about 32 warps per SM in total: 132 SMs, 32 heads → ~132 splits per head (of 8 chunks at 32K tokens)
        Assert.InRange(large, 120, 140);
    }

    [Theory]
    [InlineData(1, 32, 132, 4)]
    [InlineData(37, 32, 132, 4)]
    [InlineData(133, 32, 132, 4)]
    [InlineData(1029, 32, 132, 4)]
    [InlineData(1029, 1, 132, 4)]
    [InlineData(100000, 1, 132, 2)]
    [InlineData(4160, 64, 78, 4)]
    [InlineData(7, 2, 8, 2)]
    [InlineData(520, 2048, 132, 4)]
    public void StagedSplitsCoverTheContextWithEnoughChunksPerWarp(long chunks, long heads, int sms, int warps)
    {
        var (s, cpb) = QuantizedKvAttention.StagedSplits(chunks, heads, sms, warps);
        Assert.InRange(s, 1, 512);
        Assert.True((long)s * cpb >= chunks, $"{s} splits of {cpb} chunks miss some of {chunks}");
        Assert.True((long)(s - 1) * cpb < chunks, $"the last of {s} splits of {cpb} chunks is empty ({chunks} chunks)");
        // a block's warps pipeline their chunks: two each at least, unless the whole context is one block
        Assert.True(s == 1 || cpb >= 2 * warps, $"{s} splits of {cpb} chunks for {warps} warps");
        // about four blocks per SM over all heads when the context allows (rounding the chunks per block up drops a few)
        long target = Math.Min((sms * 4L + heads - 1) / heads, chunks / (2L * warps));
        Assert.True(s >= Math.Max(1, Math.Min(target, 512)) * 0.8, $"{s} splits, {target} wanted");
    }

    [Fact]
    public void StagedSplitsAtTheBenchmarkShape()
    {
        // 32 heads on 132 SMs: 17 blocks per head at 16K and 32K tokens (544 blocks, about four per SM), 15 at 4K
        // (at least two chunks per warp), 4 at 1K
        Assert.Equal(17, QuantizedKvAttention.StagedSplits(16384 / 32 + 2, 32, 132, 4).splits);
        Assert.Equal(17, QuantizedKvAttention.StagedSplits(32768 / 32 + 2, 32, 132, 4).splits);
        Assert.Equal(15, QuantizedKvAttention.StagedSplits(4096 / 32 + 2, 32, 132, 4).splits);
        Assert.Equal(4, QuantizedKvAttention.StagedSplits(1024 / 32 + 2, 32, 132, 4).splits);
    }
}
