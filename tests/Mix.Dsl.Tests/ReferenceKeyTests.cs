using System;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The .mix Mamba and PatchTSMixer models name their weights exactly as Hugging Face does: compared with the
/// headers of checkpoints that transformers 5.17 wrote (tests/Mix.Runtime.Tests/Fixtures/parity).
/// </summary>
public class ReferenceKeyTests
{
    static string Fixture(string name) => Path.Combine(Repo.Root, "tests", "Mix.Runtime.Tests", "Fixtures", "parity", name);

    /// <summary>Key → shape from a safetensors header (8-byte little-endian length, then JSON).</summary>
    static (string Key, string Shape)[] Header(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var n = (int)BitConverter.ToUInt64(bytes, 0);
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, n));
        return doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
            .Select(p => (p.Name, "[" + string.Join(", ", p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())) + "]"))
            .OrderBy(p => p.Item1, StringComparer.Ordinal).ToArray();
    }

    static (string Key, string Shape)[] Keys(string model, string extra)
    {
        var sources = Repo.ExampleSources().Append(new SourceText("fixture.mix", extra)).ToArray();
        var c = MixCompilation.Create(sources);
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        return c.Find(model)!.Root!.AllWeights().Select(w => (w.Key, w.Weight.ShapeText))
            .OrderBy(p => p.Item1, StringComparer.Ordinal).ToArray();
    }

    [Fact]
    public void MambaForCausalLMKeysAndShapes()
    {
        var keys = Keys("mamba_fixture", """
            import "mamba.mix"
            model mamba_fixture() = mamba_130m(vocab_size = 64, d_model = 32, n_layer = 2, d_state = 8)
            """);
        Assert.Equal(Header(Fixture("mamba_causal_lm.weights.safetensors")), keys);
    }

    [Theory]
    [InlineData("common_channel")]
    [InlineData("mix_channel")]
    public void PatchTSMixerKeysAndShapes(string mode)
    {
        var keys = Keys("patchtsmixer_fixture", $"""
            import "patchtsmixer.mix"
            model patchtsmixer_fixture() = patchtsmixer(mode = {mode})
            """);
        Assert.Equal(Header(Fixture($"patchtsmixer_{mode}.weights.safetensors")), keys);
    }
}
