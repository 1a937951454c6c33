using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>A model may alias a block or model with a signature; an alias of an alias says why it is refused.</summary>
public class AliasTests
{
    const string Base = """
        block net(dim: int) (x: [B, dim]) -> [B, dim] {
          fc = linear(dim, dim)
          return fc(x)
        }
        model small(dim: int = 8) = net(dim)

        """;

    [Fact]
    public void Alias_of_a_block_with_a_signature_checks()
    {
        var c = Repo.Compile(Base);
        Assert.Empty(c.Diagnostics.Where(d => d.Severity == Diagnostics.Severity.Error).Select(d => d.ToString()));
        Assert.NotNull(c.Find("small"));
    }

    [Fact]
    public void Alias_of_an_alias_names_the_alias_and_where_to_point_instead()
    {
        var text = Base + "model tiny() = small(dim = 4)\n";
        var errors = Repo.Compile(text).Diagnostics.Where(d => d.Severity == Diagnostics.Severity.Error).ToList();
        var d = Assert.Single(errors);
        Assert.Equal("MIX0402", d.Id);
        Assert.Contains("small, which is itself an alias", d.Message);
        Assert.Equal("small(dim = 4)", text.Substring(d.Span.Start, d.Span.Length));
    }
}
