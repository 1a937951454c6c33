using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MixShapesTests
{
    [Fact]
    public void MatchingShapePasses()
    {
        using var x = torch.zeros(2, 64, 7, 7);
        MixShapes.Check(x, "metaformer_block", "x", "[B, dim, H, W]", "metaformer.mix", 31, null, 64, null, null);
    }

    [Fact]
    public void WrongChannelCountNamesTheFileLineLayerAndBothShapes()
    {
        using var x = torch.zeros(2, 32, 7, 7);
        var e = Assert.Throws<MixShapeException>(() =>
            MixShapes.Check(x, "metaformer_block", "x", "[B, dim, H, W]", "metaformer.mix", 31, null, 64, null, null));
        Assert.Equal("metaformer.mix(31): metaformer_block expects x: [B, dim, H, W] = [*, 64, *, *] but got [2, 32, 7, 7]: axis 1 is 32, not 64", e.Message);
        Assert.Equal(("metaformer.mix", 31, "metaformer_block"), (e.File, e.Line, e.Definition));
    }

    [Fact]
    public void WrongRankIsReported()
    {
        using var x = torch.zeros(2, 64);
        var e = Assert.Throws<MixShapeException>(() => MixShapes.Check(x, "b", "x", "[B, C, L]", "b.mix", 1, null, null, null));
        Assert.EndsWith("rank 2, not 3", e.Message);
    }
}
