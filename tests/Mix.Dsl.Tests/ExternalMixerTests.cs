using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>Mixers written in C# are declared to the checker by parameters and contract and checked like built-ins.</summary>
public class ExternalMixerTests
{
    static readonly ExternalMixer Gated = new("gated_tokens", "expansion: int = 2", "(x: [B, N, dim]) -> [B, N, dim]", "MyMixers.GatedTokens");

    static MixCompilation Compile(string text) =>
        MixCompilation.Create(new[] { new SourceText("net.mix", text) }, new[] { Gated });

    [Fact]
    public void UsableAsAMixerValueAndShapeChecked()
    {
        var c = Compile("""
            block b(dim: int = 32, token_mixer: mixer = gated_tokens(expansion = 4)) (x: [B, N, dim]) -> [B, N, dim] {
              m = token_mixer(dim)
              return x + m(x)
            }
            """);
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        Assert.Equal("[B, N, 32]", c.Find("b")!.Output!.ToString());
    }

    [Fact]
    public void WrongLayoutIsAnInputShapeError()
    {
        var c = Compile("""
            block b(dim: int = 32) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              m = gated_tokens(dim = dim)
              return m(x)
            }
            """);
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("gated_tokens expects x: [B, N, dim]", d.Message);
    }

    [Fact]
    public void ArgumentsAreCheckedAgainstTheDeclaredParameters()
    {
        var c = Compile("""
            block b(dim: int = 32) (x: [B, N, dim]) -> [B, N, dim] {
              m = gated_tokens(dim = dim, expansoin = 2)
              return m(x)
            }
            """);
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0201" && d.Message.Contains("did you mean 'expansion'"));
    }

    [Fact]
    public void ABrokenDeclarationIsReportedAtItsOrigin()
    {
        var c = MixCompilation.Create(new[] { new SourceText("net.mix", "") },
            new[] { new ExternalMixer("bad", "k: integer", "(x: [B, N, dim]) -> [B, N, dim]", "MyMixers.Bad") });
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal(("MIX0110", "MyMixers.Bad"), (d.Id, d.Path));
    }
}
