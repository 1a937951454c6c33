using System.Globalization;
using System.Linq;
using Spectre.Console;

namespace Mix.Training.Summary;

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
        bool cache = summary.TotalCache is not null;
        if (cache) table.AddColumn(new TableColumn(ModelSummary.CacheHeader).RightAligned());
        if (cache && summary.FormattedCacheHeader is { } fh) table.AddColumn(new TableColumn(Markup.Escape(fh)).RightAligned());
        int columns = table.Columns.Count;
        foreach (var r in summary.Rows)
            table.AddRow(new[]
            {
                Markup.Escape(new string(' ', 2 * r.Depth) + r.Name), Markup.Escape(r.Kind), Markup.Escape(r.Output),
                r.Parameters is long p ? p.ToString("N0", CultureInfo.InvariantCulture) : "?", ModelSummary.Human(r.Flops),
                Markup.Escape((r.Cache ?? CacheCost.Zero).ToText()), Markup.Escape((r.FormattedCache ?? CacheCost.Zero).ToText()),
            }.Take(columns).ToArray());
        table.AddEmptyRow();
        table.AddRow(new[]
        {
            "[bold]total[/]", "", "",
            $"[bold]{(summary.TotalParameters is long t ? t.ToString("N0", CultureInfo.InvariantCulture) : "?")}[/]",
            $"[bold]{ModelSummary.Human(summary.TotalFlops)}[/]",
            $"[bold]{Markup.Escape(summary.TotalCache?.ToText() ?? "")}[/]",
            $"[bold]{Markup.Escape(summary.TotalFormattedCache?.ToText() ?? "")}[/]",
        }.Take(columns).ToArray());
        var lines = summary.CacheLines().ToList();
        if (lines.Count > 0) table.Caption(Markup.Escape(string.Join("; ", lines)));
        return table;
    }
}
