namespace Mix.Dsl.Diagnostics;

/// <summary>A catalog entry: stable ID, severity, category and a short title. See <c>docs/language.md</c>.</summary>
public sealed class DiagnosticDescriptor
{
    internal DiagnosticDescriptor(string id, Severity severity, string category, string title)
    {
        Id = id;
        Severity = severity;
        Category = category;
        Title = title;
    }

    /// <summary>Stable ID (<c>MIXnnnn</c>).</summary>
    public string Id { get; }
    /// <summary>Default severity.</summary>
    public Severity Severity { get; }
    /// <summary>Syntax, Names, Arguments, Shapes or Flow.</summary>
    public string Category { get; }
    /// <summary>Short title; docs/language.md's section of the ID is headed <c>### {Id} {Title}</c> (the generator's help
    /// links point there).</summary>
    public string Title { get; }
}
