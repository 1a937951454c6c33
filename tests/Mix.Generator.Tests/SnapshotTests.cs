using System;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// The generated source of every example is checked in under Snapshots/ (one file per hint name) and must match
/// exactly. MIX_UPDATE_SNAPSHOTS=1 rewrites them.
/// </summary>
public class SnapshotTests
{
    [Fact]
    public void Examples_match_snapshots_and_compile_without_warnings()
    {
        var result = Harness.Run(Harness.Examples(), out var output);
        var generated = result.Results.Single().GeneratedSources.Where(s => s.HintName.EndsWith(".mix.g.cs", StringComparison.Ordinal)).ToList();
        Assert.Equal(Directory.GetFiles(Path.Combine(Harness.RepoRoot(), "examples", "models"), "*.mix").Length, generated.Count);

        bool update = Environment.GetEnvironmentVariable("MIX_UPDATE_SNAPSHOTS") == "1";
        Directory.CreateDirectory(Harness.SnapshotDir);
        var mismatches = new System.Collections.Generic.List<string>();
        foreach (var source in generated)
        {
            var path = Path.Combine(Harness.SnapshotDir, source.HintName);
            var text = source.SourceText.ToString();
            if (update) { File.WriteAllText(path, text); continue; }
            if (!File.Exists(path) || File.ReadAllText(path) != text) mismatches.Add(source.HintName);
        }
        Assert.True(mismatches.Count == 0, "snapshots differ (MIX_UPDATE_SNAPSHOTS=1 rewrites them): " + string.Join(", ", mismatches));

        // Generator diagnostics (unsupported constructs) and C# diagnostics of the generated code: none at all.
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var problems = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems.Take(30)));
    }
}
