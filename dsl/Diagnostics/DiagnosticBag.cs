using System.Collections.Generic;
using Mix.Dsl.Text;

namespace Mix.Dsl.Diagnostics;

/// <summary>Collects diagnostics, one per (ID, file, span): a block checked at twelve call sites reports its error once.</summary>
public sealed class DiagnosticBag
{
    readonly List<Diagnostic> _items = new();
    readonly HashSet<(string, string, int, int)> _seen = new();

    /// <summary>Everything reported so far, in report order.</summary>
    public IReadOnlyList<Diagnostic> Items => _items;

    /// <summary>Whether any error was reported.</summary>
    public bool HasErrors
    {
        get
        {
            foreach (var d in _items) if (d.Severity == Severity.Error) return true;
            return false;
        }
    }

    /// <summary>Reports at a span of a source text.</summary>
    public void Report(DiagnosticDescriptor descriptor, SourceText source, TextSpan span, string message)
    {
        if (!_seen.Add((descriptor.Id, source.Path, span.Start, span.Length))) return;
        _items.Add(new Diagnostic(descriptor, source.Path, span, source.GetPosition(span.Start), source.GetPosition(span.End), Clip(message)));
    }

    /// <summary>Longest message kept: a message quotes names, shapes and dimensions from the text, which hostile
    /// input can make as long as the file; the span still points at all of it.</summary>
    public const int MaxMessageLength = 1000;

    static string Clip(string message) =>
        message.Length <= MaxMessageLength ? message
            : message.Substring(0, MaxMessageLength / 2) + " … " + message.Substring(message.Length - MaxMessageLength / 2 + 3);

    /// <summary>Adds an existing diagnostic (deduplicated).</summary>
    public void Add(Diagnostic d)
    {
        if (!_seen.Add((d.Id, d.Path, d.Span.Start, d.Span.Length))) return;
        _items.Add(d);
    }
}
