using System;

namespace Mix.Dsl.Text;

/// <summary>A half-open range of characters [Start, Start + Length) in one source text.</summary>
public readonly struct TextSpan : IEquatable<TextSpan>
{
    /// <summary>Creates a span.</summary>
    public TextSpan(int start, int length)
    {
        Start = start < 0 ? 0 : start;
        Length = length < 0 ? 0 : length;
    }

    /// <summary>Offset of the first character.</summary>
    public int Start { get; }
    /// <summary>Number of characters.</summary>
    public int Length { get; }
    /// <summary>Offset just past the last character.</summary>
    public int End => Start + Length;

    /// <summary>The span from <paramref name="start"/> to <paramref name="end"/>.</summary>
    public static TextSpan FromBounds(int start, int end) => new(start, end - start);

    /// <summary>The smallest span covering both.</summary>
    public TextSpan Union(TextSpan other) => FromBounds(Math.Min(Start, other.Start), Math.Max(End, other.End));

    /// <inheritdoc />
    public bool Equals(TextSpan other) => Start == other.Start && Length == other.Length;
    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TextSpan s && Equals(s);
    /// <inheritdoc />
    public override int GetHashCode() => (Start * 397) ^ Length;
    /// <inheritdoc />
    public override string ToString() => $"[{Start}..{End})";
}
