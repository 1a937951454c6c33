using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary><c>@tied</c>: the checker proves the shared key exists with the same shape, and counts the weight once.</summary>
public class TiedWeightTests
{
    const string Lm = """
        model lm(vocab_size: int = 100, d_model: int = 16) (input_ids: long[B, L]) -> [B, L, vocab_size] {
          backbone = {
            embeddings = embedding(vocab_size, d_model)
            norm_f = rmsnorm(d_model)
          }
          @tied(weight = "backbone.embeddings.weight") lm_head = linear(d_model, vocab_size, bias = false)
        }
        """;

    [Fact]
    public void A_tied_head_keeps_its_key_and_is_counted_once()
    {
        var c = Repo.Compile(Lm);
        Assert.Empty(c.Diagnostics);
        var root = c.Find("lm")!.Root!;
        var keys = root.AllWeights().ToDictionary(w => w.Key, w => w.Weight);
        Assert.Equal("backbone.embeddings.weight", keys["lm_head.weight"].TiedTo);
        Assert.Null(keys["backbone.embeddings.weight"].TiedTo);
        Assert.Equal(100 * 16 + 16, root.ParameterCount()); // embeddings + norm; the head shares the embeddings
        var untied = Repo.Compile(Lm.Replace("@tied(weight = \"backbone.embeddings.weight\") ", "")).Find("lm")!.Root!;
        Assert.Equal(100 * 16 * 2 + 16, untied.ParameterCount());
    }

    [Fact]
    public void A_tie_inside_a_block_names_both_symbolic_shapes()
    {
        const string text = """
            block head(vocab: int, dim: int) (x: [B, L, dim]) -> [B, L, vocab] {
              embed = embedding(vocab, dim)
              @tied(weight = "embed.weight") proj = linear(vocab, vocab, bias = false)
              out = linear(dim, vocab)
              return proj(out(x))
            }
            """;
        var d = Assert.Single(Repo.Compile(text).Diagnostics, x => x.Severity == Diagnostics.Severity.Error);
        Assert.Equal("MIX0330", d.Id);
        Assert.Equal("proj.weight is [vocab, vocab] but embed.weight is [vocab, dim]: a tied weight must have the same shape", d.Message);
        Assert.Equal(text.IndexOf("\"embed.weight\"", System.StringComparison.Ordinal), d.Span.Start);
    }

    [Theory]
    [InlineData("@tied(weight = \"lm_head.weight\") lm_head = linear(d_model, vocab_size, bias = false)", "MIX0130", "\"lm_head.weight\"")]
    [InlineData("@tied(\"backbone.embeddings.weight\") lm_head = linear(d_model, vocab_size, bias = false)", "MIX0108", "@tied(\"backbone.embeddings.weight\")")]
    [InlineData("@tied(bias = \"backbone.embeddings.weight\") lm_head = linear(d_model, vocab_size, bias = false)", "MIX0130", "bias")]
    public void Misuse_is_one_located_diagnostic(string statement, string id, string marked)
    {
        var text = Lm.Replace("@tied(weight = \"backbone.embeddings.weight\") lm_head = linear(d_model, vocab_size, bias = false)", statement);
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal(id, d.Id);
        Assert.Equal(new Text.TextSpan(text.IndexOf(marked, System.StringComparison.Ordinal), marked.Length), d.Span);
    }

    /// <summary>Found by the long fuzz run: a layer declared twice (MIX0107) next to a tie repeated a weight key, and
    /// the tie resolution threw (MIX0999). The duplicate is the one mistake reported.</summary>
    [Fact]
    public void A_duplicate_layer_next_to_a_tie_is_only_the_duplicate()
    {
        var text = Lm.Replace("    norm_f = rmsnorm(d_model)\n", "    norm_f = rmsnorm(d_model)\n    norm_f = rmsnorm(d_model)\n");
        Assert.NotEqual(Lm, text);
        var c = Repo.Compile(text);
        Assert.DoesNotContain(c.Diagnostics, d => d.Id == "MIX0999");
        Assert.Equal("MIX0107", Assert.Single(c.Diagnostics).Id);
    }
}
