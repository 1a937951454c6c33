using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Training;

namespace Mix.Examples;

/// <summary>PNG plots with ScottPlot 5. Legends sit in a panel right of the data area, so they never cover a curve.</summary>
public static class Plots
{
    /// <summary>Width and height of the PNGs.</summary>
    public const int Width = 1000, Height = 540;

    /// <summary>Training and held-out loss (left axis) and held-out accuracy (right axis) per epoch. Returns the full path.</summary>
    /// <param name="path">The PNG to write.</param>
    /// <param name="history">The epochs.</param>
    /// <param name="title">The title.</param>
    /// <param name="heldOut">What the held-out set is called in the legend ("validation", "test"): the same word as the title's.</param>
    public static string SaveTrainingCurves(string path, IReadOnlyList<EpochStats> history, string title, string heldOut = "validation") =>
        Save(TrainingCurves(history, title, heldOut), path);

    /// <summary>The plot <see cref="SaveTrainingCurves"/> writes.</summary>
    public static ScottPlot.Plot TrainingCurves(IReadOnlyList<EpochStats> history, string title, string heldOut = "validation")
    {
        var plot = new ScottPlot.Plot();
        double[] xs = history.Select(h => (double)h.Epoch).ToArray();
        var train = plot.Add.Scatter(xs, history.Select(h => h.TrainLoss).ToArray());
        train.LegendText = "train loss";
        var val = plot.Add.Scatter(xs, history.Select(h => h.ValLoss).ToArray());
        val.LegendText = $"{heldOut} loss";
        plot.Axes.Left.Label.Text = "loss";
        if (history.All(h => h.ValAccuracy is not null))
        {
            var acc = plot.Add.Scatter(xs, history.Select(h => 100 * h.ValAccuracy!.Value).ToArray());
            acc.LegendText = $"{heldOut} accuracy (%)";
            acc.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = "accuracy (%)";
        }
        plot.Axes.Bottom.Label.Text = "epoch";
        plot.Title(title);
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }

    /// <summary>Lines over a shared x axis (<c>name</c>, <c>x</c>, <c>y</c>). Returns the full path.</summary>
    public static string SaveLines(string path, string title, string xLabel, string yLabel,
        IEnumerable<(string Name, double[] X, double[] Y)> series) =>
        Save(Lines(title, xLabel, yLabel, series), path);

    /// <summary>The plot <see cref="SaveLines"/> writes.</summary>
    public static ScottPlot.Plot Lines(string title, string xLabel, string yLabel, IEnumerable<(string Name, double[] X, double[] Y)> series)
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
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }

    static string Save(ScottPlot.Plot plot, string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        plot.SavePng(full, Width, Height);
        return full;
    }
}
