using System;
using System.Collections.Generic;
using Sprache;

namespace Mix.Dsl.Syntax;

/// <summary>
/// A Sprache input that does not allocate a memo table per character (Sprache's own Input does, which dominated
/// parse time) and can jump ahead without stepping. Lines and columns are not tracked: spans are offsets, and
/// <see cref="Text.SourceText"/> maps offsets to lines.
/// </summary>
internal sealed class FastInput : IInput
{
    Dictionary<object, object>? _memos;

    public FastInput(string source, int position = 0)
    {
        Source = source;
        Position = position;
    }

    public string Source { get; }
    public int Position { get; }
    public bool AtEnd => Position >= Source.Length;
    public char Current => Source[Position];
    public int Line => 1;
    public int Column => Position + 1;
    public IDictionary<object, object> Memos => _memos ??= new Dictionary<object, object>();

    public IInput Advance()
    {
        if (AtEnd) throw new InvalidOperationException("The input is already at the end of the source.");
        return new FastInput(Source, Position + 1);
    }

    /// <summary>The input <paramref name="count"/> characters further on.</summary>
    public FastInput Skip(int count) => count == 0 ? this : new FastInput(Source, Math.Min(Source.Length, Position + count));

    public bool Equals(IInput? other) => other is not null && ReferenceEquals(Source, other.Source) && Position == other.Position;
    public override bool Equals(object? obj) => obj is IInput i && Equals(i);
    public override int GetHashCode() => Position;
}
