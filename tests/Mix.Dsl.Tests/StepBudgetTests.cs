using System;
using System.Diagnostics;
using System.Linq;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The checker's step budget (MIX0406, 500,000 steps per compilation) counts the work the check does. A block
/// instance served from the reuse cache is charged for the copy of its module subtree, not for a second check: charged
/// as a second check, the zoo's one compilation nearly filled the budget and iFormer's 384 × 384 configurations did not
/// fit. Copies still cost what they copy, so blocks that double at every level still stop at the budget.
/// </summary>
public class StepBudgetTests
{
    const int Budget = 500_000;

    [Fact]
    public void The_whole_zoo_checks_well_within_the_budget()
    {
        var c = MixCompilation.Create(Repo.ExampleSources());
        Assert.DoesNotContain(c.Diagnostics, d => d.Id == "MIX0406");
        TestContext.Current.TestOutputHelper?.WriteLine($"{c.Definitions.Count} definitions, {c.CheckSteps:N0} steps");
        // Measured 218,492 steps for 196 definitions (standard library included); charged as full second checks the
        // same zoo took 462,524. Half the budget leaves room for the zoo to grow by about as much again.
        Assert.True(c.CheckSteps < Budget / 2, $"the zoo's {c.Definitions.Count} definitions took {c.CheckSteps:N0} of {Budget:N0} steps");
    }

    static string Repeated(int n) => $$"""
        block heavy(dim: int) (x: [B, dim]) -> [B, dim]
        {
          c = for i in 0..400: i * dim + 1
          fc = linear(dim, dim)
          return fc(x)
        }

        model m() (x: [B, 8]) -> [B, 8]
        {
          blocks = {{n}} x heavy(8)
          return blocks(x)
        }
        """;

    [Fact]
    public void A_reused_block_is_charged_its_copy_not_a_second_check()
    {
        var one = MixCompilation.Create("r.mix", Repeated(1));
        var many = MixCompilation.Create("r.mix", Repeated(41));
        Assert.False(one.HasErrors, string.Join("\n", one.Diagnostics));
        Assert.False(many.HasErrors, string.Join("\n", many.Diagnostics));
        Assert.Equal(41, many.Find("m")!.Root!.AllWeights().Count(w => w.Key.EndsWith(".fc.weight", StringComparison.Ordinal)));
        double perCopy = (many.CheckSteps - one.CheckSteps) / 40.0;
        // One check of `heavy` evaluates its 400-item loop; a copy makes two nodes (the block and its fc) and two weights.
        Assert.True(one.CheckSteps > 400, $"one check took only {one.CheckSteps} steps");
        Assert.True(perCopy < 20, $"each of the 40 reused instances cost {perCopy:F1} steps (one check: {one.CheckSteps})");
    }

    static string Doubling(int levels)
    {
        var text = "block d0(dim: int) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n";
        for (int i = 1; i <= levels; i++)
            text += $"block d{i}(dim: int) (x: [B, dim]) -> [B, dim] {{\n  a = d{i - 1}(dim)\n  b = d{i - 1}(dim)\n  return b(a(x))\n}}\n";
        return text + $"model m() (x: [B, 4]) -> [B, 4] {{\n  top = d{levels}(4)\n  return top(x)\n}}\n";
    }

    [Fact]
    public void Blocks_that_double_at_every_level_still_run_out_of_steps()
    {
        // 2^10 instances are fine; 2^24 (16 million linear layers) are not, and stop at the budget quickly.
        Assert.DoesNotContain(MixCompilation.Create("d.mix", Doubling(10)).Diagnostics, d => d.Id == "MIX0406");
        var sw = Stopwatch.StartNew();
        var c = MixCompilation.Create("d.mix", Doubling(24));
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0406");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"stopping took {sw.Elapsed.TotalSeconds:F1} s");
    }
}
