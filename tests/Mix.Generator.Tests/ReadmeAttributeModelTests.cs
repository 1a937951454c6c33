using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>The README's C#-only model is real: it generates and compiles cleanly, and its attributes are the ones
/// whose timm keys <see cref="AttributeModelTests"/> checks.</summary>
public class ReadmeAttributeModelTests
{
    static string Snippet()
    {
        var readme = File.ReadAllText(Path.Combine(Harness.RepoRoot(), "README.md")).Replace("\r\n", "\n");
        // The C#-only model's block (the README has other C# blocks, e.g. the model zoo's).
        var m = Regex.Matches(readme, "```csharp\n(.*?)```", RegexOptions.Singleline)
            .FirstOrDefault(b => b.Groups[1].Value.Contains("[MetaFormerModel", StringComparison.Ordinal));
        Assert.True(m is not null, "README.md has no ```csharp block with a [MetaFormerModel] class");
        return m!.Groups[1].Value;
    }

    [Fact]
    public void The_readme_model_generates_and_compiles_without_diagnostics()
    {
        var result = Harness.Run(Array.Empty<InMemoryText>(), out var output, Snippet());
        Assert.Empty(result.Diagnostics.Select(d => d.ToString()));
        var problems = output.GetDiagnostics(TestContext.Current.CancellationToken)
            .Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems.Take(20)));
        Assert.Contains(result.Results.Single().GeneratedSources, s => s.SourceText.ToString().Contains("public sealed partial class PoolFormerS12 ", StringComparison.Ordinal));
    }

    [Fact]
    public void The_readme_model_is_the_key_tested_poolformer_s12()
    {
        static string Attributes(string source) => string.Join("\n", source.Replace("\r\n", "\n").Split('\n')
            .SkipWhile(l => !l.StartsWith("[MetaFormerModel", StringComparison.Ordinal))
            .TakeWhile(l => !l.StartsWith("public partial class", StringComparison.Ordinal)));
        var tested = File.ReadAllText(Path.Combine(Harness.TestDir(), "AttributeModels", "TimmModels.cs"));
        var readme = Attributes(Snippet());
        Assert.NotEmpty(readme);
        Assert.Equal(readme, Attributes(tested));
    }
}
