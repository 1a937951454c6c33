using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Testing;
using Microsoft.CodeAnalysis.Text;

namespace Mix.Generator.Tests;

/// <summary>A test file without its markup, and the diagnostics the markup declares.</summary>
public sealed record MarkedFile(string Path, string Text, IReadOnlyList<DiagnosticResult> Expected);

/// <summary>
/// Reads <c>{|ID:text|}</c> markup into explicit results. The testing library's own markup handling ignores the
/// severity of what it declares; these results carry the severity of the ID's case, so it is checked too.
/// </summary>
public static class Markup
{
    public static MarkedFile Parse(string path, string markup)
    {
        TestFileMarkupParser.GetPositionsAndSpans(markup.Replace("\r\n", "\n"), out var text, out var positions, out var spans);
        if (positions.Any() || spans.Any(s => s.Key.Length == 0))
            throw new ArgumentException($"{path}: every marked span needs its diagnostic ID ({{|MIX0101:text|}})", nameof(markup));
        var lines = SourceText.From(text).Lines;
        var expected = spans
            .SelectMany(s => s.Value.Select(span => new DiagnosticResult(s.Key, DiagnosticCases.SeverityOf(s.Key))
                .WithSpan(new FileLinePositionSpan(path, lines.GetLinePositionSpan(span)))))
            .ToList();
        return new MarkedFile(path, text, expected);
    }
}
