using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>The README's taste of .mix is real: it checks, and the error it promises is the one reported.</summary>
public class ReadmeTests
{
    static string Taste()
    {
        var readme = File.ReadAllText(Path.Combine(Repo.Root, "README.md")).Replace("\r\n", "\n");
        return Regex.Match(readme, "```mix\n(.*?)```", RegexOptions.Singleline).Groups[1].Value;
    }

    [Fact]
    public void TasteChecksCleanly()
    {
        var c = Repo.Compile(Taste(), "model.mix");
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        Assert.Equal("[B, 10]", c.Find("tiny_poolformer")!.Output!.ToString());
    }

    [Fact]
    public void PromisedErrorIsReported()
    {
        var c = Repo.Compile(Taste().Replace("metaformer_block(64", "metaformer_block(32"), "model.mix");
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("model.mix(20,23): error MIX0302: metaformer_block expects x: [B, dim, H, W] but got [B, 64, H/4, W/4]: axis 1 should be 32, not 64", d.ToString());
    }
}
