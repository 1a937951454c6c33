using Mix.Generated.Models;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// The debug shape checks of generated code: with <see cref="MixShapes.Enabled"/>, a generated module given a
/// tensor its .mix signature rejects throws an error naming the definition, the .mix file and line, and the shapes.
/// </summary>
[Collection(nameof(ShapeCheckTests))]
[CollectionDefinition(nameof(ShapeCheckTests), DisableParallelization = true)]
public class ShapeCheckTests
{
    [Fact]
    public void WrongChannelCountThrowsAtTheMixLine()
    {
        var was = MixShapes.Enabled;
        MixShapes.Enabled = true;
        try
        {
            using var block = new MetaformerBlock(new MetaformerBlock.Options(16));
            using var good = torch.randn(1, 16, 8, 8);
            using (torch.no_grad()) block.call(good).Dispose();
            using var bad = torch.randn(1, 24, 8, 8);
            var e = Assert.Throws<MixShapeException>(() => block.call(bad));
            Assert.EndsWith("metaformer.mix", e.File);
            Assert.Equal(31, e.Line);
            Assert.Contains("metaformer_block expects x: [B, dim, H, W] = [*, 16, *, *] but got [1, 24, 8, 8]: axis 1 is 24, not 16", e.Message);
        }
        finally
        {
            MixShapes.Enabled = was;
        }
    }

    [Fact]
    public void OffByDefaultSoTheReferenceErrorIsTorchSharps()
    {
        Assert.False(MixShapes.Enabled && System.Environment.GetEnvironmentVariable("MIX_CHECK_SHAPES") != "1");
    }
}
