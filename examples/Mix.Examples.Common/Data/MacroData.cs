using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Mix.Examples.Data;

/// <summary>
/// statsmodels' US macroeconomic data (<c>examples/data/macrodata.csv</c>): 203 quarters, 1959Q1–2009Q3, columns
/// year, quarter, realgdp, realcons, realinv, realgovt, realdpi, cpi, m1, tbilrate, unemp, pop, infl, realint.
/// </summary>
public sealed class MacroData
{
    /// <summary>The file name in <c>examples/data/</c>.</summary>
    public const string FileName = "macrodata.csv";

    MacroData(string[] columns, double[][] rows) { Columns = columns; Rows = rows; }

    /// <summary>Column names.</summary>
    public IReadOnlyList<string> Columns { get; }
    /// <summary>One array per quarter, in column order.</summary>
    public IReadOnlyList<double[]> Rows { get; }
    /// <summary>Number of quarters.</summary>
    public int Count => Rows.Count;

    /// <summary>"1959Q1".</summary>
    public string Quarter(int t) => $"{Rows[t][0]:0}Q{Rows[t][1]:0}";

    /// <summary>One column over time.</summary>
    public double[] Column(string name)
    {
        int i = Array.IndexOf(Columns.ToArray(), name);
        if (i < 0) throw new ArgumentException($"{FileName} has no column '{name}'; it has {string.Join(", ", Columns)}");
        return Rows.Select(r => r[i]).ToArray();
    }

    /// <summary>Loads the file from <paramref name="path"/> (default: <see cref="ExampleData.Find"/>).</summary>
    public static MacroData Load(string? path = null)
    {
        path ??= ExampleData.Find(FileName);
        var lines = File.ReadAllLines(path).Where(l => l.Trim().Length > 0).ToArray();
        var columns = lines[0].Split(',').Select(c => c.Trim().Trim('"')).ToArray();
        var rows = lines.Skip(1).Select(l => l.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        foreach (var r in rows)
            if (r.Length != columns.Length) throw new FormatException($"{path}: a row has {r.Length} values, the header {columns.Length}");
        return new MacroData(columns, rows);
    }
}
