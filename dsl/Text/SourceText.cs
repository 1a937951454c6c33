using System;
using System.Collections.Generic;

namespace Mix.Dsl.Text;

/// <summary>The text of one <c>.mix</c> file with its path and a line map for span → line/column.</summary>
public sealed class SourceText
{
    readonly int[] _lineStarts;

    /// <summary>Creates a source text.</summary>
    public SourceText(string path, string text)
    {
        Path = path ?? "";
        Text = text ?? "";
        var starts = new List<int> { 0 };
        for (int i = 0; i < Text.Length; i++)
        {
            if (Text[i] == '\n') starts.Add(i + 1);
        }
        _lineStarts = starts.ToArray();
    }

    /// <summary>The file path as given (used in diagnostics and import resolution).</summary>
    public string Path { get; }
    /// <summary>The full text.</summary>
    public string Text { get; }

    /// <summary>Zero-based line and column of an offset.</summary>
    public LinePosition GetPosition(int offset)
    {
        if (offset < 0) offset = 0;
        if (offset > Text.Length) offset = Text.Length;
        int lo = 0, hi = _lineStarts.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (_lineStarts[mid] <= offset) lo = mid; else hi = mid - 1;
        }
        return new LinePosition(lo, offset - _lineStarts[lo]);
    }

    /// <summary>The text covered by a span (clamped to the text).</summary>
    public string Slice(TextSpan span)
    {
        int start = Math.Min(span.Start, Text.Length);
        int end = Math.Min(span.End, Text.Length);
        return Text.Substring(start, end - start);
    }
}

/// <summary>A zero-based line and column.</summary>
public readonly struct LinePosition : IEquatable<LinePosition>
{
    /// <summary>Creates a position.</summary>
    public LinePosition(int line, int character) { Line = line; Character = character; }
    /// <summary>Zero-based line.</summary>
    public int Line { get; }
    /// <summary>Zero-based column.</summary>
    public int Character { get; }
    /// <inheritdoc />
    public bool Equals(LinePosition other) => Line == other.Line && Character == other.Character;
    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is LinePosition p && Equals(p);
    /// <inheritdoc />
    public override int GetHashCode() => (Line * 7919) ^ Character;
    /// <inheritdoc />
    public override string ToString() => $"({Line + 1},{Character + 1})";
}
