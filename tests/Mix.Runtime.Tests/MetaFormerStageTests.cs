using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MetaFormerStageTests
{
    [Fact]
    public void NoDownsampleWhenChannelsMatch()
    {
        using var m = new MetaFormerStage(8, 8, depth: 2, tokenMixer: (_, _) => new Pooling());
        Assert.IsType<Identity>(m.downsample);
        Assert.True(m.UseNchw);
        var keys = TestUtil.Keys(m);
        Assert.StartsWith("blocks.0.", keys[0]);
        Assert.Contains("blocks.1.mlp.fc2.weight", keys);
        using var x = TestUtil.Det(new long[] { 1, 8, 6, 6 });
        using var y = m.forward(x);
        Assert.Equal(new long[] { 1, 8, 6, 6 }, y.shape);
    }

    [Fact]
    public void DownsamplesWithTimmDefaultLayerNorm2d()
    {
        using var m = new MetaFormerStage(8, 16, depth: 1, tokenMixer: (d, _) => new SepConv(d));
        var keys = TestUtil.KeyLines(m);
        Assert.Equal(new[] { "downsample.norm.weight [8]", "downsample.norm.bias [8]", "downsample.conv.weight [16,8,3,3]", "downsample.conv.bias [16]" },
            keys.Take(4));
        using var x = TestUtil.Det(new long[] { 1, 8, 7, 7 });
        using var y = m.forward(x);
        Assert.Equal(new long[] { 1, 16, 4, 4 }, y.shape);
        using var noNorm = new MetaFormerStage(8, 16, depth: 1, downsampleNorm: _ => nn.Identity());
        Assert.Equal("downsample.conv.weight [16,8,3,3]", TestUtil.KeyLines(noNorm)[0]);
    }

    [Fact]
    public void AttentionStageRunsBlocksOnTokens()
    {
        using var m = new MetaFormerStage(16, 32, depth: 2, tokenMixer: (d, p) => new Attention(d, headDim: 8, projDrop: p),
            normLayer: c => new LayerNormNoBias(c), resScaleInitValue: 1.0);
        Assert.False(m.UseNchw);
        Assert.Contains("blocks.0.mlp.fc1.weight [128,32]", TestUtil.KeyLines(m)); // Linear MLP on tokens
        Assert.Contains("blocks.1.res_scale2.scale [32]", TestUtil.KeyLines(m));
        using var x = TestUtil.Det(new long[] { 2, 16, 6, 4 });
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 32, 3, 2 }, y.shape);

        // The stage = downsample, flatten to [B, H·W, C], blocks, fold back.
        using var scope = torch.NewDisposeScope();
        var d = m.downsample.forward(x);
        var tokens = d.flatten(2).transpose(1, 2);
        var expected = m.blocks.forward(tokens).transpose(1, 2).reshape(2, 32, 3, 2);
        TestUtil.AssertClose(TestUtil.Values(expected), TestUtil.Values(y), 1e-6);
    }

    [Fact]
    public void DropPathRatesPerBlockAndValidation()
    {
        using var m = new MetaFormerStage(4, 4, depth: 2, dpRates: new[] { 0.0, 0.25 });
        Assert.IsType<Identity>(((MetaFormerBlock)m.blocks[0]).drop_path1);
        Assert.Equal(0.25, Assert.IsType<DropPath>(((MetaFormerBlock)m.blocks[1]).drop_path1).DropProb);
        Assert.Throws<ArgumentException>(() => new MetaFormerStage(4, 4, depth: 2, dpRates: new[] { 0.1 }));
    }

    [Fact]
    public void BackwardAndNoLeak()
    {
        using var m = new MetaFormerStage(4, 8, depth: 2, tokenMixer: (d, p) => new Attention(d, headDim: 4, projDrop: p),
            normLayer: c => new LayerNormNoBias(c), resScaleInitValue: 1.0);
        using var x = TestUtil.Det(new long[] { 2, 4, 6, 6 });
        TestUtil.AssertBackward(m, x);
        TestUtil.AssertForwardLeavesOnlyResult(m, x);
    }
}
