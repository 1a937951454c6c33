using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>Imports resolve within the set of files (relative to the importing file); cycles are errors.</summary>
public class ImportTests
{
    const string Library = "block twice(dim: int) (x: [B, dim]) -> [B, dim] { return x + x }\n";

    [Fact]
    public void RelativeImportsResolveWithinTheSet()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("lib/blocks.mix", Library),
            new SourceText("models/net.mix", "import \"../lib/blocks.mix\"\nmodel m() (x: [B, 4]) -> [B, 4] {\n  t = twice(4)\n  return t(x)\n}\n"),
        });
        Assert.Empty(c.Diagnostics);
        Assert.Equal("[B, 4]", c.Find("m")!.Output!.ToString());
    }

    [Fact]
    public void SameFileNameInTwoFoldersDoesNotCollide()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("a/net.mix", "block one(dim: int) (x: [B, dim]) -> [B, dim] { return x }\n"),
            new SourceText("b/net.mix", "import \"../a/net.mix\"\nblock two(dim: int) (x: [B, dim]) -> [B, dim] {\n  o = one(dim)\n  return o(x)\n}\n"),
        });
        Assert.Empty(c.Diagnostics);
        Assert.Equal(new[] { "a/net.mix", "b/net.mix" }, c.Definitions.Select(d => d.Path));
    }

    [Fact]
    public void MissingImportNamesThePathAndSuggestsACandidate()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("lib/blocks.mix", Library),
            new SourceText("net.mix", "import \"blocks.mix\"\n"),
        });
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0104", d.Id);
        Assert.Contains("there is 'lib/blocks.mix'", d.Message);
        Assert.Equal((0, 7), (d.Start.Line, d.Start.Character));
    }

    [Fact]
    public void CyclesAreReportedWithTheChain()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("a.mix", "import \"b.mix\"\n"),
            new SourceText("b.mix", "import \"c.mix\"\n"),
            new SourceText("c.mix", "import \"a.mix\"\n"),
        });
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0105" && d.Message.Contains("a.mix → b.mix → c.mix → a.mix"));
    }

    [Fact]
    public void ImportedDefinitionConflictingWithALocalOneIsAnError()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("lib.mix", Library),
            new SourceText("net.mix", "import \"lib.mix\"\n" + Library),
        });
        Assert.Equal("MIX0102", Assert.Single(c.Diagnostics).Id);
    }

    [Fact]
    public void EnumsAreImportedAndTypeChecked()
    {
        var c = MixCompilation.Create(new[]
        {
            new SourceText("lib.mix", "enum mode { fast, exact }\n"),
            new SourceText("net.mix", """
                import "lib.mix"
                block b(m: mode = exact, dim: int = 4) (x: [B, dim]) -> [B, dim] {
                  return if m == fast then x else x + x
                }
                block bad(m: mode = 3) (x: [B, 4]) -> [B, 4] { return x }
                """),
        });
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal("MIX0204", d.Id);
        Assert.Contains("must be mode", d.Message);
    }
}
