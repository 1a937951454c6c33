using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using Microsoft.CodeAnalysis.Text;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// The generated source of every example is checked in under Snapshots/ (one file per hint name, plus the attribute
/// source) and must match exactly, through Microsoft.CodeAnalysis.Testing (<c>CSharpSourceGeneratorTest</c>: the
/// examples are AdditionalFiles, each snapshot an expected generated source, TorchSharp and Mix.Runtime references,
/// and the output compiles without errors). MIX_UPDATE_SNAPSHOTS=1 rewrites the snapshots first.
/// </summary>
public class SnapshotTests
{
    const string AttributesHint = "Mix.Attributes.g.cs";

    /// <summary>A generator test that never touches the network (<see cref="Harness.LocalNet80"/>).</summary>
    sealed class Test : CSharpSourceGeneratorTest<MixGenerator, DefaultVerifier>
    {
        public Test()
        {
            ReferenceAssemblies = Harness.LocalNet80.Value;
            TestState.AdditionalReferences.Add(typeof(TorchSharp.torch).Assembly);
            TestState.AdditionalReferences.Add(typeof(Mix.Runtime.Builtins.Builtin).Assembly);
            TestState.AnalyzerConfigFiles.Add(("/.globalconfig",
                "is_global = true\n" +
                $"build_property.ProjectDir = {Harness.Root}\n" +
                $"build_property.MixNamespace = {Harness.Namespace}\n"));
        }
    }

    [Fact]
    public async Task Examples_match_snapshots_through_CSharpSourceGeneratorTest()
    {
        var examples = Harness.Examples();
        if (Environment.GetEnvironmentVariable("MIX_UPDATE_SNAPSHOTS") == "1") RewriteSnapshots(examples);

        var test = new Test();
        foreach (var e in examples) test.TestState.AdditionalFiles.Add((e.Path, e.GetText(TestContext.Current.CancellationToken).ToString()));
        var snapshots = Directory.GetFiles(Harness.SnapshotDir, "*.cs").OrderBy(p => p, StringComparer.Ordinal).ToList();
        Assert.Equal(examples.Count, snapshots.Count(p => p.EndsWith(".mix.g.cs", StringComparison.Ordinal)));
        Assert.Contains(snapshots, p => Path.GetFileName(p) == AttributesHint);
        foreach (var snapshot in snapshots)
            test.TestState.GeneratedSources.Add((typeof(MixGenerator), Path.GetFileName(snapshot), SourceText.From(File.ReadAllText(snapshot), Encoding.UTF8)));
        await test.RunAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>MIX_UPDATE_SNAPSHOTS=1: writes what the generator produces now.</summary>
    static void RewriteSnapshots(List<InMemoryText> examples)
    {
        var result = Harness.Run(examples, out _);
        Directory.CreateDirectory(Harness.SnapshotDir);
        foreach (var old in Directory.GetFiles(Harness.SnapshotDir, "*.cs")) File.Delete(old);
        foreach (var source in result.Results.Single().GeneratedSources)
            File.WriteAllText(Path.Combine(Harness.SnapshotDir, source.HintName), source.SourceText.ToString());
    }

    [Fact]
    public void Examples_compile_without_warnings_or_generator_diagnostics()
    {
        var result = Harness.Run(Harness.Examples(), out var output);
        var generated = result.Results.Single().GeneratedSources.Where(s => s.HintName.EndsWith(".mix.g.cs", StringComparison.Ordinal)).ToList();
        Assert.Equal(Directory.GetFiles(Path.Combine(Harness.RepoRoot(), "models"), "*.mix").Length, generated.Count);
        // Generator diagnostics (unsupported constructs) and C# diagnostics of the generated code: none at all.
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var problems = output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems.Take(30)));
    }
}
