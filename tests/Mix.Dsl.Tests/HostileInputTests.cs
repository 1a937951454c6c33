using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Text;
using Mix.Fuzz;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The rows of issue 19's front-end table (tests/Mix.Fuzz/HostileFamilies.cs): inputs that overflowed the stack,
/// took exponential time or memory, or let an exception escape. Each member of each family is checked on a thread
/// with a 1 MB stack (smaller than the compiler's), and must give its diagnostics within the bound.
/// </summary>
public class HostileInputTests
{
    /// <summary>The bound of the issue is one second on the build machine; CI machines are shared and slower.</summary>
    static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    public static TheoryData<string, int> Members()
    {
        var data = new TheoryData<string, int>();
        foreach (var f in HostileFamilies.All)
            foreach (var n in f.Sizes) data.Add(f.Name, n);
        return data;
    }

    /// <summary>Checks on a 1 MB thread; a stack overflow would still end the process, so the fuzz test runs
    /// random inputs in a child process, while these known inputs must simply pass.</summary>
    internal static (MixCompilation? Result, Exception? Error, TimeSpan Time) CheckOnSmallStack(IReadOnlyList<SourceText> files)
    {
        MixCompilation? result = null;
        Exception? error = null;
        var sw = new Stopwatch();
        var thread = new Thread(() =>
        {
            sw.Start();
            try { result = MixCompilation.Create(files); }
            catch (Exception e) { error = e; }
            sw.Stop();
        }, 1024 * 1024);
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(120)), "the check did not finish in two minutes");
        return (result, error, sw.Elapsed);
    }

    [Theory]
    [MemberData(nameof(Members))]
    public void Each_member_of_each_family_gives_diagnostics_within_the_bound(string family, int size)
    {
        var f = HostileFamilies.Get(family);
        var files = f.Build(size);
        CheckOnSmallStack(HostileFamilies.Get("many-statements").Build(10)); // the JIT's first compile is not the check's time
        var (c, error, time) = CheckOnSmallStack(files);
        Assert.Null(error);
        Assert.True(time < Bound, $"{family} {size}: {time.TotalSeconds:F2} s");
        Assert.DoesNotContain(c!.Diagnostics, d => d.Id == DiagnosticIds.InternalError.Id);
        foreach (var d in c.Diagnostics)
        {
            var text = files.Single(s => s.Path == d.Path).Text;
            Assert.InRange(d.Span.End, d.Span.Start, text.Length);
            Assert.True(d.Message.Length < 2000, $"{d.Id} message of {d.Message.Length} characters");
        }
        if (size == f.Sizes[^1])
        {
            if (f.IsError) Assert.Contains(c.Diagnostics, d => f.Expect.Contains(d.Id));
            else Assert.Empty(c.Diagnostics.Where(d => d.Severity == Severity.Error).Select(d => d.ToString()));
        }
    }

    [Theory]
    [InlineData("unclosed-blocks", 22)]
    [InlineData("unclosed-if-for", 20)]
    public void An_unclosed_bracket_while_typing_is_one_diagnostic(string family, int size)
    {
        var (c, error, _) = CheckOnSmallStack(HostileFamilies.Get(family).Build(size));
        Assert.Null(error);
        var d = Assert.Single(c!.Diagnostics);
        Assert.Equal(DiagnosticIds.SyntaxError.Id, d.Id);
        Assert.Contains("end of file", d.Message);
    }

    [Fact]
    public void Parsing_unclosed_nesting_grows_linearly_not_exponentially()
    {
        // 22 levels took 21 s when every level parsed the failing statement twice; 2,000 times the text must not
        // take 2,000 times 22 levels' time squared, let alone 2^22.
        var (_, _, small) = CheckOnSmallStack(HostileFamilies.Get("unclosed-blocks").Build(22));
        var (_, error, large) = CheckOnSmallStack(HostileFamilies.Get("unclosed-blocks").Build(400));
        Assert.Null(error);
        Assert.True(large < Bound, $"400 levels: {large.TotalSeconds:F2} s (22 levels: {small.TotalSeconds:F3} s)");
    }

    [Fact]
    public void A_self_applying_inline_block_is_MIX0106_where_it_applies_itself()
    {
        const string text = "block b(dim: int) (x: [B, dim]) -> [B, dim] {\n  l13 = { return x |> l13 }\n  return x |> l13\n}\n";
        var c = MixCompilation.Create("self.mix", text);
        var d = Assert.Single(c.Diagnostics);
        Assert.Equal(DiagnosticIds.Recursion.Id, d.Id);
        Assert.Equal(text.IndexOf("l13 }", StringComparison.Ordinal), d.Span.Start);
        Assert.Equal(3, d.Span.Length);
    }

    [Fact]
    public void Symbolic_blow_up_names_the_budget_it_exceeds()
    {
        var square = Assert.Single(MixCompilation.Create(HostileFamilies.Get("square").Build(24)).Diagnostics, d => d.Id == DiagnosticIds.ValueTooLarge.Id);
        Assert.Contains("degree more than 32", square.Message);
        var power = Assert.Single(MixCompilation.Create(HostileFamilies.Get("power-dim").Build(12)).Diagnostics, d => d.Id == DiagnosticIds.ValueTooLarge.Id);
        Assert.Contains("terms", power.Message);
        var text = Assert.Single(MixCompilation.Create(HostileFamilies.Get("string-double").Build(30)).Diagnostics, d => d.Id == DiagnosticIds.ValueTooLarge.Id);
        Assert.Contains("4096", text.Message);
    }

    [Fact]
    public void Long_chains_below_the_depth_budget_still_check()
    {
        // 200 terms are a tree 200 deep: within the budget, so they check (and run on the 1 MB thread).
        var (c, error, _) = CheckOnSmallStack(HostileFamilies.Get("plus-chain").Build(200));
        Assert.Null(error);
        Assert.Empty(c!.Diagnostics);
    }
}
