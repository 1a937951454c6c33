using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Training;

namespace Mix.Examples;

/// <summary>PNG plots with ScottPlot 5.</summary>
public static class Plots
{
    /// <summary>Training and validation loss (left axis) and accuracy (right axis) per epoch. Returns the full path.</summary>
    public static string SaveTrainingCurves(string path, IReadOnlyList<EpochStats> history, string title)
    {
        var plot = new ScottPlot.Plot();
        double[] xs = history.Select(h => (double)h.Epoch).ToArray();
        var train = plot.Add.Scatter(xs, history.Select(h => h.TrainLoss).ToArray());
        train.LegendText = "train loss";
        var val = plot.Add.Scatter(xs, history.Select(h => h.ValLoss).ToArray());
        val.LegendText = "validation loss";
        plot.Axes.Left.Label.Text = "loss";
        if (history.All(h => h.ValAccuracy is not null))
        {
            var acc = plot.Add.Scatter(xs, history.Select(h => 100 * h.ValAccuracy!.Value).ToArray());
            acc.LegendText = "validation accuracy (%)";
            acc.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = "accuracy (%)";
        }
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Title(title);
        plot.ShowLegend(ScottPlot.Alignment.MiddleRight);
        return Save(plot, path);
    }

    /// <summary>Lines over a shared x axis (<c>name</c>, <c>x</c>, <c>y</c>). Returns the full path.</summary>
    public static string SaveLines(string path, string title, string xLabel, string yLabel,
        IEnumerable<(string Name, double[] X, double[] Y)> series)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (name, x, y) in series)
        {
            var s = plot.Add.Scatter(x, y);
            s.LegendText = name;
            s.MarkerSize = 0;
        }
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => v.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture), // years: 2000, not 2,000
        };
        plot.Axes.Left.Label.Text = yLabel;
        plot.Title(title);
        plot.ShowLegend();
        return Save(plot, path);
    }

    static string Save(ScottPlot.Plot plot, string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        plot.SavePng(full, 900, 540);
        return full;
    }
}
