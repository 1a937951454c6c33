using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Xunit;

namespace Mix.ZooTests;

/// <summary>
/// docs/models.md's table of zoo models is this test's output: names, files, tasks and metadata from the registry,
/// parameter counts measured on the built modules (a tied weight once). MIX_UPDATE_DOCS=1 rewrites it.
/// </summary>
public class DocsTableTests
{
    const string Begin = "<!-- zoo-table: written by Mix.Models.Tests' DocsTableTests (MIX_UPDATE_DOCS=1) -->";
    const string End = "<!-- /zoo-table -->";

    static string Table()
    {
        var s = new StringBuilder();
        s.Append("| Model | File | Task | Parameters | Keys follow | Pretrained settings |\n");
        s.Append("| --- | --- | --- | ---: | --- | --- |\n");
        foreach (var name in Models.List())
        {
            var info = Models.Info(name);
            long count;
            using (var model = Models.Create(name)) count = RegistryTests.ParameterCount(model);
            var keys = info.Timm is not null ? $"timm `{info.Timm}`" : info.HfClass is not null ? $"transformers `{info.HfClass}`" : "—";
            var settings = info.InputSize is { } size
                ? $"{string.Join("×", size)}, crop {info.CropPct?.ToString(CultureInfo.InvariantCulture)}, {info.Interpolation}, {info.NumClasses} classes"
                : "—";
            s.Append(CultureInfo.InvariantCulture, $"| `{name}` | [{info.File}](../models/{info.File}) | {info.Task} | {count:N0} | {keys} | {settings} |\n");
        }
        return s.ToString();
    }

    [Fact]
    public void Docs_table_matches_the_registry_and_measured_parameter_counts()
    {
        var path = Path.Combine(Repo.Root, "docs", "models.md");
        var docs = File.ReadAllText(path).Replace("\r\n", "\n");
        int start = docs.IndexOf(Begin, StringComparison.Ordinal), end = docs.IndexOf(End, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, $"docs/models.md has no {Begin} ... {End} block");
        var expected = Begin + "\n" + Table() + End;
        var actual = docs.Substring(start, end + End.Length - start);
        if (actual != expected && Environment.GetEnvironmentVariable("MIX_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, docs.Substring(0, start) + expected + docs.Substring(end + End.Length));
            return;
        }
        Assert.Equal(expected, actual);
    }
}
