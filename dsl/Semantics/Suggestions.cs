using System;
using System.Collections.Generic;

namespace Mix.Dsl.Semantics;

/// <summary>"Did you mean" by edit distance.</summary>
internal static class Suggestions
{
    const int MaxNameLength = 64;

    public static string? Closest(string name, IEnumerable<string> candidates)
    {
        // Edit distance costs the product of the lengths: names longer than any real one get no suggestion.
        if (name.Length > MaxNameLength) return null;
        string? best = null;
        int bestDistance = int.MaxValue;
        int limit = Math.Max(1, name.Length / 3);
        foreach (var c in candidates)
        {
            if (c == name || Math.Abs(c.Length - name.Length) > limit) continue;
            int d = Distance(name, c);
            if (d <= limit && d < bestDistance) { best = c; bestDistance = d; }
        }
        return best;
    }

    static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
