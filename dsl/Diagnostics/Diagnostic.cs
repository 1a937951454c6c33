using System;
using Mix.Dsl.Text;

namespace Mix.Dsl.Diagnostics;

/// <summary>How bad a diagnostic is.</summary>
public enum Severity
{
    /// <summary>Informational.</summary>
    Info,
    /// <summary>Suspicious but valid.</summary>
    Warning,
    /// <summary>The file cannot be used.</summary>
    Error,
}

/// <summary>One located message about a <c>.mix</c> file.</summary>
public sealed class Diagnostic : IEquatable<Diagnostic>
{
    /// <summary>Creates a diagnostic.</summary>
    public Diagnostic(DiagnosticDescriptor descriptor, string path, TextSpan span, LinePosition start, LinePosition end, string message)
    {
        Descriptor = descriptor;
        Path = path;
        Span = span;
        Start = start;
        End = end;
        Message = message;
    }

    /// <summary>The catalog entry (ID, severity, title).</summary>
    public DiagnosticDescriptor Descriptor { get; }
    /// <summary>Stable ID, e.g. <c>MIX0012</c>.</summary>
    public string Id => Descriptor.Id;
    /// <summary>Severity.</summary>
    public Severity Severity => Descriptor.Severity;
    /// <summary>File path.</summary>
    public string Path { get; }
    /// <summary>Character span.</summary>
    public TextSpan Span { get; }
    /// <summary>Zero-based start line/column.</summary>
    public LinePosition Start { get; }
    /// <summary>Zero-based end line/column.</summary>
    public LinePosition End { get; }
    /// <summary>The message, naming what was expected, what was found and where.</summary>
    public string Message { get; }

    /// <summary>Compiler format: <c>file.mix(3,1): error MIX0012: message</c>.</summary>
    public override string ToString()
    {
        var sev = Severity switch { Severity.Error => "error", Severity.Warning => "warning", _ => "info" };
        return $"{Path}({Start.Line + 1},{Start.Character + 1}): {sev} {Id}: {Message}";
    }

    /// <inheritdoc />
    public bool Equals(Diagnostic? other) =>
        other is not null && Id == other.Id && Path == other.Path && Span.Equals(other.Span) && Message == other.Message;
    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Diagnostic);
    /// <inheritdoc />
    public override int GetHashCode() => Id.GetHashCode() ^ Span.GetHashCode() ^ Message.GetHashCode();
}
