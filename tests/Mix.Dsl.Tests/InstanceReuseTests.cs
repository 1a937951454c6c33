using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Mix.Dsl.Semantics;
using Mix.Dsl.Text;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The checker reuses a block instance checked earlier with the same arguments and input shapes. That must be
/// invisible: every compilation gives the same diagnostics, keys, weight shapes, output shapes and caches with
/// reuse on and off.
/// </summary>
[Collection(nameof(InstanceReuseTests))] // flips a static switch: not in parallel with itself
public class InstanceReuseTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string> { "zoo" };
        foreach (var id in DocumentedDiagnosticsTests.Entries.Keys.OrderBy(k => k, System.StringComparer.Ordinal))
            if (Sources(id).Length > 0) data.Add(id); // MIX0999 (internal error) has no example
        return data;
    }

    /// <summary>The model zoo, or a documented ID's bad and fixed examples (each checked on its own).</summary>
    static SourceText[] Sources(string name)
    {
        if (name == "zoo") return Repo.ExampleSources();
        var entry = DocumentedDiagnosticsTests.Entries[name];
        return new[] { entry.Bad, entry.Fixed }.Where(t => t.Length > 0)
            .Select((t, i) => new SourceText($"{name}-{i}.mix", t)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ReuseChangesNothing(string name)
    {
        var sources = Sources(name);
        Assert.NotEmpty(sources);
        foreach (var group in name == "zoo" ? new[] { sources } : sources.Select(s => new[] { s }))
            Assert.Equal(DescribeWithoutReuse(group), Describe(MixCompilation.Create(group)));
    }

    [Fact]
    public void ABlockWhoseCheckReportedIsNotReused()
    {
        const string text = """
            block widen(dim: int, out: int)
              (x: [B, dim]) -> [B, dim]
            {
              fc = linear(dim, out)
            }

            model m()
              (x: [B, 8]) -> [B, 8]
            {
              ok = 3 x widen(8, 8)
              bad = widen(8, 16)
              again = widen(8, 16)
            }
            """;
        var c = MixCompilation.Create("reuse.mix", text);
        var keys = c.Find("m")!.Root!.AllWeights().Select(w => w.Key).ToList();
        Assert.Contains("ok.2.fc.weight", keys);
        Assert.Contains("bad.fc.weight", keys);
        Assert.Contains(c.Diagnostics, d => d.Id == "MIX0303");
        Assert.Equal(Describe(c), DescribeWithoutReuse(new[] { new SourceText("reuse.mix", text) }));
    }

    [Fact]
    public void Turning_reuse_off_affects_only_the_flow_that_turns_it_off()
    {
        const string text = """
            block heavy(dim: int) (x: [B, dim]) -> [B, dim]
            {
              c = for i in 0..400: i * dim + 1
              fc = linear(dim, dim)
              return fc(x)
            }

            model m() (x: [B, 8]) -> [B, 8]
            {
              blocks = 20 x heavy(8)
              return blocks(x)
            }
            """;
        var sources = new[] { new SourceText("flow.mix", text) };
        int with = MixCompilation.Create(sources).CheckSteps;
        int without, besideIt;
        lock (Switch)
        {
            Evaluator.DisableInstanceReuse = true;
            try
            {
                without = MixCompilation.Create(sources).CheckSteps;
                // a compilation meanwhile in a flow of its own (as a test running in parallel: nothing flows from this
                // one) keeps reuse; a thread of its own, since a task waited on may run inline in this flow
                int steps = 0;
                var other = new System.Threading.Thread(() => steps = MixCompilation.Create(sources).CheckSteps);
                using (System.Threading.ExecutionContext.SuppressFlow())
                    other.Start();
                other.Join();
                besideIt = steps;
            }
            finally { Evaluator.DisableInstanceReuse = false; }
        }
        Assert.True(without > 5 * with, $"{without} steps without reuse, {with} with it");
        Assert.Equal(with, besideIt);
    }

    static readonly object Switch = new();

    static string DescribeWithoutReuse(SourceText[] sources)
    {
        lock (Switch)
        {
            Evaluator.DisableInstanceReuse = true;
            try { return Describe(MixCompilation.Create(sources)); }
            finally { Evaluator.DisableInstanceReuse = false; }
        }
    }

    static string Describe(MixCompilation c)
    {
        var sb = new StringBuilder();
        foreach (var d in c.Diagnostics) sb.AppendLine($"{d.Id} {d.Path} {d.Span.Start}+{d.Span.Length} {d.Message}");
        foreach (var def in c.Definitions)
        {
            sb.AppendLine($"def {def.Name} ({string.Join(", ", def.Inputs)}) -> {def.Output}");
            if (def.Root is { } root) Node(root, sb);
        }
        return sb.ToString();
    }

    static void Node(LayerNode n, StringBuilder sb)
    {
        sb.Append($"  {n.Path}|{n.Kind}|{n.OutputShape}|{n.Used}|{n.FusedDisabled}|{n.Cache}");
        foreach (var w in n.Weights) sb.Append($"|{w.Name}{w.ShapeText}{(w.IsBuffer ? "b" : "")}");
        sb.AppendLine();
        foreach (var c in n.Children) Node(c, sb);
    }
}
