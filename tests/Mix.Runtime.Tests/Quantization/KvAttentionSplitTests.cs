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
}
