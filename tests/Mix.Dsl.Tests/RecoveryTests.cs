using System.Linq;
using Mix.Dsl.Diagnostics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>One broken definition or statement must not hide the errors after it.</summary>
public class RecoveryTests
{
    [Fact]
    public void FiveErrorsInOneFileAreFiveDiagnostics()
    {
        const string text = """
            block a(dim: int) (x: [B, dim]) -> [B, dim] {
              y = x +
              return y
            }

            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              fc = linear(dim, dim, pading = 1)
              return fc(x)
            }

            block c(dim: int) (x: [B, dim]) -> [B, dim] {
              return nrom(x)
            }

            block d(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              conv = conv2d(dim, 2 * dim, kernel_size = 1)
              return x + conv(x)
            }

            model e(n: int) (x: [B, 4]) -> [B, 4] { return x }
            """;
        var c = Repo.Compile(text);
        var errors = c.Diagnostics.Where(d => d.Severity == Severity.Error).ToList();
        Assert.Equal(new[] { "MIX0001", "MIX0201", "MIX0101", "MIX0301", "MIX0209" }, errors.Select(e => e.Id));
        Assert.Equal(new[] { 3, 7, 12, 17, 20 }, errors.Select(e => e.Start.Line + 1));
        // Definitions after the broken ones are still checked and available.
        Assert.NotNull(c.Find("d"));
        Assert.NotNull(c.Find("e"));
    }

    [Fact]
    public void ABrokenStatementDoesNotHideTheNextOne()
    {
        const string text = """
            block a(dim: int) (x: [B, dim]) -> [B, dim] {
              fc1 = linear(dim, dim
              fc2 = linear(dim, dim, pading = 1)
              return fc2(x)
            }
            """;
        var ids = Repo.Compile(text).Diagnostics.Select(d => d.Id).ToList();
        Assert.Contains("MIX0001", ids);
        Assert.Contains("MIX0201", ids);
    }

    [Fact]
    public void GarbageBetweenDefinitionsIsOneErrorAndTheRestStillParses()
    {
        const string text = """
            %%% what is this
            block a(dim: int) (x: [B, dim]) -> [B, dim] { return x }
            """;
        var c = Repo.Compile(text);
        Assert.NotNull(c.Find("a"));
        Assert.All(c.Diagnostics, d => Assert.Equal(0, d.Start.Line));
    }

    [Fact]
    public void SpansPointAtTheOffendingText()
    {
        const string text = "block a(dim: int) (x: [B, dim]) -> [B, dim] {\n  return nrom1(x)\n}\n";
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal("MIX0101", d.Id);
        Assert.Equal("nrom1", text.Substring(d.Span.Start, d.Span.Length));
        Assert.Equal((1, 9), (d.Start.Line, d.Start.Character));
        Assert.Equal("example.mix(2,10): error MIX0101: unknown name 'nrom1'", d.ToString());
    }
}
