using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Dsl.Diagnostics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// docs/language.md is the diagnostic catalog: every ID has a bad example that must report it and a fixed example
/// that must report no error. This keeps the docs, the IDs and the checker in step.
/// </summary>
public class DocumentedDiagnosticsTests
{
    internal sealed record Entry(string Id, string Bad, string Fixed);

    /// <summary>Each documented ID's bad and fixed example (empty where a section has none).</summary>
    internal static readonly Dictionary<string, Entry> Entries = ReadCatalog();

    static Dictionary<string, Entry> ReadCatalog()
    {
        var text = File.ReadAllText(Path.Combine(Repo.Root, "docs", "language.md")).Replace("\r\n", "\n");
        var result = new Dictionary<string, Entry>();
        var sections = Regex.Split(text, @"^### (?=MIX\d{4})", RegexOptions.Multiline).Skip(1);
        foreach (var section in sections)
        {
            var id = section.Substring(0, 7);
            string? Block(string kind)
            {
                var m = Regex.Match(section, "```mix " + kind + "\n(.*?)```", RegexOptions.Singleline);
                return m.Success ? m.Groups[1].Value : null;
            }
            result[id] = new Entry(id, Block("bad") ?? "", Block("fixed") ?? "");
        }
        return result;
    }

    public static TheoryData<string> ExampleIds()
    {
        var data = new TheoryData<string>();
        foreach (var d in DiagnosticIds.All)
            if (d != DiagnosticIds.InternalError) data.Add(d.Id);
        return data;
    }

    [Fact]
    public void EveryDiagnosticIsDocumented()
    {
        var missing = DiagnosticIds.All.Select(d => d.Id).Where(id => !Entries.ContainsKey(id)).ToList();
        Assert.Empty(missing);
    }

    [Theory]
    [MemberData(nameof(ExampleIds))]
    public void BadExampleReportsItsId(string id)
    {
        var entry = Entries[id];
        Assert.False(string.IsNullOrWhiteSpace(entry.Bad), $"{id} has no bad example");
        var c = Repo.Compile(entry.Bad);
        Assert.Contains(c.Diagnostics, d => d.Id == id);
        var d = c.Diagnostics.First(x => x.Id == id);
        Assert.Equal("example.mix", d.Path);
        Assert.InRange(d.Span.End, d.Span.Start, entry.Bad.Length);
    }

    [Theory]
    [MemberData(nameof(ExampleIds))]
    public void FixedExampleHasNoErrors(string id)
    {
        var entry = Entries[id];
        Assert.False(string.IsNullOrWhiteSpace(entry.Fixed), $"{id} has no fixed example");
        var c = Repo.Compile(entry.Fixed);
        Assert.Empty(c.Diagnostics.Where(d => d.Severity != Severity.Info).Select(d => d.ToString()));
    }

    [Fact]
    public void IdsAreUniqueAndWellFormed()
    {
        var ids = DiagnosticIds.All.Select(d => d.Id).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.Matches(@"^MIX\d{4}$", id));
    }
}
