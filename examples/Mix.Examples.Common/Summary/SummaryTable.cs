using System.Globalization;
using Spectre.Console;

namespace Mix.Examples.Summary;

/// <summary>Renders a <see cref="ModelSummary"/> as a Spectre.Console table.</summary>
public static class SummaryTable
{
    /// <summary>The layer table with a totals footer.</summary>
    public static Table Create(ModelSummary summary)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"[bold]{Markup.Escape(summary.Model)}[/]: ({Markup.Escape(summary.Inputs)}) -> {Markup.Escape(summary.Output)}");
        table.AddColumn("layer");
        table.AddColumn("kind");
        table.AddColumn("output shape");
        table.AddColumn(new TableColumn("params").RightAligned());
        table.AddColumn(new TableColumn("FLOPs").RightAligned());
        foreach (var r in summary.Rows)
            table.AddRow(Markup.Escape(new string(' ', 2 * r.Depth) + r.Name), Markup.Escape(r.Kind), Markup.Escape(r.Output),
                r.Parameters is long p ? p.ToString("N0", CultureInfo.InvariantCulture) : "?", ModelSummary.Human(r.Flops));
        table.AddEmptyRow();
        table.AddRow("[bold]total[/]", "", "",
            $"[bold]{(summary.TotalParameters is long t ? t.ToString("N0", CultureInfo.InvariantCulture) : "?")}[/]",
            $"[bold]{ModelSummary.Human(summary.TotalFlops)}[/]");
        return table;
    }
}
