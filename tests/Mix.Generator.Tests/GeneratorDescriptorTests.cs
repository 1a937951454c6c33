using System.IO;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// Every generator descriptor (the fields of <c>Descriptors</c>, read by reflection so a new one cannot be missed) has an
/// ID in MIX9xxx, a category, a help link to its section in docs/generator.md, that section, and its row (category and
/// severity) in AnalyzerReleases.Unshipped.md.
/// </summary>
public class GeneratorDescriptorTests
{
    [Fact]
    public void Every_descriptor_has_a_section_a_help_link_and_a_release_row()
    {
        var type = typeof(MixGenerator).Assembly.GetType("Mix.Generator.Descriptors", throwOnError: true)!;
        var descriptors = type.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
            .Select(f => (DiagnosticDescriptor)f.GetValue(null)!).ToList();
        Assert.Contains(descriptors, d => d.Id == "MIX9110");
        Assert.Contains(descriptors, d => d.Id == "MIX9123");
        var rows = File.ReadAllLines(Path.Combine(Harness.RepoRoot(), "generator", "AnalyzerReleases.Unshipped.md"))
            .Where(l => l.StartsWith("MIX", System.StringComparison.Ordinal))
            .Select(l => l.Split('|').Select(c => c.Trim()).ToArray())
            .ToDictionary(c => c[0], c => (Category: c[1], Severity: c[2]));
        Assert.Equal(descriptors.Count, descriptors.Select(d => d.Id).Distinct().Count());
        foreach (var d in descriptors)
        {
            Assert.Matches("^MIX9[0-9]{3}$", d.Id);
            Assert.False(string.IsNullOrWhiteSpace(d.Category), d.Id);
            Assert.Equal(HelpLinks.BaseUrl + "docs/generator.md#" + d.Id.ToLowerInvariant(), d.HelpLinkUri);
            Assert.Contains("\n### " + d.Id + "\n", GeneratorDocs.Text);
            Assert.True(rows.TryGetValue(d.Id, out var row), $"{d.Id} has no row in AnalyzerReleases.Unshipped.md");
            Assert.Equal((d.Category, d.DefaultSeverity.ToString()), row);
        }
    }
}
