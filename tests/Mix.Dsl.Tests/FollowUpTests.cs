using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// One mistake, one diagnostic: a value derived from an error is unknown, and nothing that uses it is reported again
/// (no "cannot apply", "never applied" or "missing return" follow-ups); a missing argument is reported at the call that
/// lacks it, not where the layer is used.
/// </summary>
public class FollowUpTests
{
    /// <summary>A block repeated five times in a model: each follow-up used to come once per use.</summary>
    static string Block(string norm, string conv) => $$"""
        block blk(dim: int) (x: [B, dim, H, W]) -> [B, dim, H, W] {
          norm = {{norm}}
          conv = {{conv}}
          proj = conv2d(dim, dim, kernel_size = 1)
          return x + proj(gelu(conv(norm(x))))
        }

        model tiny(num_classes: int = 10) (x: [B, 3, H, W]) -> [B, num_classes] {
          stem = conv2d(3, 16, kernel_size = 7, stride = 4, padding = 2)
          blocks = 5 x blk(16)
          head = linear(16, num_classes)
          return x |> stem |> blocks |> mean([2, 3]) |> head
        }
        """;

    const string GoodNorm = "groupnorm1(dim)";
    const string GoodConv = "conv2d(dim, dim, kernel_size = 3, padding = 1)";

    static void AssertSingle(string text, string id, string marked, int occurrence = 0)
    {
        var c = Repo.Compile(text);
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal(id, d.Id);
        int start = -1;
        for (int i = 0; i <= occurrence; i++) start = text.IndexOf(marked, start + 1, System.StringComparison.Ordinal);
        Assert.Equal(new TextSpan(start, marked.Length), d.Span);
    }

    [Fact]
    public void The_good_block_checks_cleanly() => Assert.Empty(Repo.Compile(Block(GoodNorm, GoodConv)).Diagnostics);

    [Fact]
    public void A_misspelt_layer_is_one_did_you_mean()
    {
        var text = Block("groupnrom1(dim)", GoodConv);
        AssertSingle(text, "MIX0101", "groupnrom1");
        Assert.Contains("did you mean 'groupnorm1'", Repo.Compile(text).Diagnostics[0].Message);
    }

    [Fact]
    public void A_misspelt_argument_is_one_did_you_mean() =>
        AssertSingle(Block(GoodNorm, "conv2d(dim, dim, kernal_size = 3, padding = 1)"), "MIX0201", "kernal_size");

    [Fact]
    public void A_missing_argument_is_reported_at_the_call_that_lacks_it()
    {
        var text = Block(GoodNorm, "conv2d(dim, dim, padding = 1)");
        AssertSingle(text, "MIX0202", "conv2d", occurrence: 0);
        Assert.Equal("conv2d is missing kernel_size", Repo.Compile(text).Diagnostics[0].Message);
    }

    [Fact]
    public void A_missing_argument_in_a_pipeline_body_is_reported_at_its_call()
    {
        const string text = """
            model tiny(num_classes: int = 10) (x: [B, 3, H, W]) -> [B, 16, H/4, W/4] {
              stem = conv2d(3, 16, stride = 4, padding = 2)
              norm = groupnorm1(16)
            }
            """;
        AssertSingle(text, "MIX0202", "conv2d");
    }

    [Fact]
    public void A_broken_layer_in_a_pipeline_body_does_not_run_the_others_without_it()
    {
        // Without the norm the pipeline would feed linear(32, ...) a [B, 16]: no shape error may follow.
        const string text = """
            model tiny(num_classes: int = 10) (x: [B, 16]) -> [B, num_classes] {
              fc1 = linear(16, 32)
              norm = layernrom(32)
              fc2 = linear(32, num_classes)
            }
            """;
        AssertSingle(text, "MIX0101", "layernrom");
    }

    [Fact]
    public void A_block_whose_only_layer_is_broken_is_not_also_missing_its_return()
    {
        const string text = "block b(dim: int) (x: [B, dim]) -> [B, dim]\n{\n  fc = linaer(dim, dim)\n}\n";
        AssertSingle(text, "MIX0101", "linaer");
    }

    [Fact]
    public void A_misspelt_norm_in_the_zoo_block_is_one_diagnostic()
    {
        // The Quickstart's model with a misspelt norm of its own, checked against the real metaformer.mix.
        var digits = System.IO.File.ReadAllText(System.IO.Path.Combine(Repo.Root, "examples", "Quickstart", "digits.mix"))
            .Replace("norm = layernorm(dims[-1])", "norm = layernrom(dims[-1])");
        var metaformer = System.IO.File.ReadAllText(System.IO.Path.Combine(Repo.ModelsDir, "metaformer.mix"));
        var c = MixCompilation.Create(new[] { new SourceText("Quickstart/digits.mix", digits), new SourceText("models/metaformer.mix", metaformer) });
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal(("MIX0101", "Quickstart/digits.mix"), (d.Id, d.Path));
        Assert.Equal(digits.IndexOf("layernrom", System.StringComparison.Ordinal), d.Span.Start);
    }
}
