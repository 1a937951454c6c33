using System;
using System.Collections.Generic;

namespace Mix.Dsl.Semantics;

/// <summary>NumPy broadcasting on symbolic shapes and the element type of a mixed result.</summary>
internal static class Broadcasting
{
    /// <summary>The broadcast shape, or null with the first axis (counted in the result) whose sizes disagree.</summary>
    public static Shape? Broadcast(Shape a, Shape b, out int axis, out Dim? left, out Dim? right)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var dims = new Dim[rank];
        axis = -1;
        left = right = null;
        for (int k = 0; k < rank; k++)
        {
            var x = k < rank - a.Rank ? Dim.Const(1) : a.Dims[k - (rank - a.Rank)];
            var y = k < rank - b.Rank ? Dim.Const(1) : b.Dims[k - (rank - b.Rank)];
            if (Shape.Compatible(x, y)) dims[k] = Shape.IsUnknown(x) ? y : x;
            else if (x.AsLong == 1) dims[k] = y;
            else if (y.AsLong == 1) dims[k] = x;
            else
            {
                axis = k;
                left = x;
                right = y;
                return null;
            }
        }
        return new Shape(dims, Promote(a.ElementType, b.ElementType));
    }

    /// <summary>Whether <paramref name="value"/> broadcasts to exactly <paramref name="target"/> (an init to its parameter).</summary>
    public static bool BroadcastsTo(Shape value, Shape target, out int axis)
    {
        axis = -1;
        if (value.Rank > target.Rank) { axis = 0; return false; }
        for (int k = 1; k <= value.Rank; k++)
        {
            var v = value[-k];
            if (v.AsLong == 1 || Shape.Compatible(v, target[-k])) continue;
            axis = target.Rank - k;
            return false;
        }
        return true;
    }

    static readonly Dictionary<string, int> s_rank = new() { ["bool"] = 0, ["int"] = 1, ["long"] = 2, ["float"] = 3, ["complex"] = 4 };

    /// <summary>The element type of an elementwise result: complex over float over integers over bool.</summary>
    public static string Promote(string a, string b) =>
        (s_rank.TryGetValue(a, out var x) ? x : 3) >= (s_rank.TryGetValue(b, out var y) ? y : 3) ? a : b;

    /// <summary>The element type after a float-valued function (log of a long tensor is float).</summary>
    public static string Floating(string et) => et == "complex" ? "complex" : "float";
}
