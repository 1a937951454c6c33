using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The Dynamic Spectrum Mixer zoo model (models/dsm.mix, the project's own MetaFormer-S12 layout: no official code or
/// configuration exists): each stage's learned spectra sized to its token grid, and the fixed 224 × 224 input held by
/// the checker (another size is a located MIX0302, not a runtime crash).
/// </summary>
public class DsmModelTests
{
    [Fact]
    public void Dsm_s12_spectra_follow_each_stage_grid()
    {
        var c = Repo.Compile("import \"mix/models/dsm.mix\"\nmodel net() (x: [B, 3, 224, 224]) -> [B, 1000] {\n" +
            "  m = dsm_s12()\n  return m(x)\n}\n", "net.mix");
        Assert.DoesNotContain(c.Diagnostics, d => d.Severity == Severity.Error);
        var root = c.Find("dsm_s12")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight.ShapeText);
        // four learned spectra per mixer (num_weights = 4), channels and grid of the stage
        Assert.Equal("[4, 64, 56, 56]", keys["stages.0.blocks.0.token_mixer.spectrum_weights"]);
        Assert.Equal("[4, 128, 28, 28]", keys["stages.1.blocks.1.token_mixer.spectrum_weights"]);
        Assert.Equal("[4, 320, 14, 14]", keys["stages.2.blocks.5.token_mixer.spectrum_weights"]);
        Assert.Equal("[4, 512, 7, 7]", keys["stages.3.blocks.1.token_mixer.spectrum_weights"]);
        Assert.Equal(12, keys.Keys.Count(k => k.EndsWith(".token_mixer.spectrum_weights", System.StringComparison.Ordinal)));
        // the selector MLP: dim -> dim / 4 -> 4 · dim
        Assert.Equal("[1280, 80]", keys["stages.2.blocks.0.token_mixer.reweight.fc2.weight"]);
    }

    [Fact]
    public void Dsm_s12_input_of_another_size_is_a_located_error()
    {
        var c = Repo.Compile("import \"mix/models/dsm.mix\"\nmodel net() (x: [B, 3, 192, 192]) -> [B, 1000] {\n" +
            "  m = dsm_s12()\n  return m(x)\n}\n", "net.mix");
        var error = Assert.Single(c.Diagnostics, d => d.Severity == Severity.Error);
        Assert.Equal("MIX0302", error.Id);
        Assert.Equal("net.mix", error.Path);
        Assert.Contains("224", error.Message);
    }
}
