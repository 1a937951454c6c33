using System.Collections.Generic;
using System.Linq;

namespace Mix.Dsl.Semantics;

/// <summary>A tensor shape of symbolic dimensions and an element type (<c>float</c> unless stated).</summary>
public sealed class Shape
{
    /// <summary>Creates a shape.</summary>
    public Shape(IReadOnlyList<Dim> dims, string elementType = "float")
    {
        Dims = dims;
        ElementType = elementType;
    }

    /// <summary>The dimensions.</summary>
    public IReadOnlyList<Dim> Dims { get; }
    /// <summary><c>float</c>, <c>long</c>, <c>int</c> or <c>bool</c>.</summary>
    public string ElementType { get; }
    /// <summary>Number of dimensions.</summary>
    public int Rank => Dims.Count;

    /// <summary>Dimension by index, negative counting from the end.</summary>
    public Dim this[int axis] => Dims[axis < 0 ? Dims.Count + axis : axis];

    /// <summary>A copy with one dimension replaced.</summary>
    public Shape With(int axis, Dim d)
    {
        var list = Dims.ToList();
        list[axis < 0 ? list.Count + axis : axis] = d;
        return new Shape(list, ElementType);
    }

    /// <summary>Whether two dims may be equal: equal, or either is unknown.</summary>
    public static bool Compatible(Dim a, Dim b) => a.Equals(b) || IsUnknown(a) || IsUnknown(b);

    /// <summary>Whether a dim involves a value the checker could not determine.</summary>
    public static bool IsUnknown(Dim d) => d.Symbols.Any(s => s.StartsWith("?", System.StringComparison.Ordinal));

    /// <summary>Whether every dimension is compatible.</summary>
    public bool CompatibleWith(Shape other) =>
        other.Rank == Rank && Dims.Zip(other.Dims, Compatible).All(x => x);

    /// <summary><c>[B, 64, H/4, W/4]</c> (with the element type when not float: <c>long[B, L]</c>).</summary>
    public override string ToString() =>
        (ElementType == "float" ? "" : ElementType) + "[" + string.Join(", ", Dims.Select(d => IsUnknown(d) ? "?" : d.ToString())) + "]";
}
