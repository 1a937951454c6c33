extern alias cli;

using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Mix.Examples.Language;
using Mix.Training;
using Mix.Training.Summary;
using Spectre.Console;
using Xunit;

namespace Mix.Examples.Tests;

using MixCli = cli::Mix.Cli.MixCli;

/// <summary>What the examples and the CLI print and draw: redirected output is not wrapped, plots keep their legends
/// off the curves and name what their titles name, the CLI README tells the truth.</summary>
public class OutputTests
{
    static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    static (IAnsiConsole Console, StringWriter Text) RedirectedConsole()
    {
        // What Spectre.Console makes of a pipe: no terminal, so it assumes 80 columns.
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(text),
        });
        return (console, text);
    }

    [Fact]
    public void Redirected_output_keeps_table_cells_whole()
    {
        var definition = MixSources.Compile(typeof(LanguageApp).Assembly).Find("char_hybrid")!;
        var table = SummaryTable.Create(ModelSummary.Create(definition, maxDepth: 1, kvFormat: KvCacheFormat.Parse("kivi4")));

        var (narrow, narrowText) = RedirectedConsole();
        Assert.Equal(80, narrow.Profile.Width);
        narrow.Write(table);
        Assert.DoesNotContain("backbone.embeddings", narrowText.ToString()); // the bug: broken mid-word at 80 columns

        var (console, text) = RedirectedConsole();
        ConsoleOutput.Fit(console, redirected: true).Write(table);
        var output = text.ToString();
        Assert.Contains("backbone.embeddings", output);
        Assert.Contains("backbone.layers.1", output);
        Assert.True(output.Split('\n').Max(l => l.Length) > 80, "the table kept to 80 columns");
    }

    [Fact]
    public void A_terminal_keeps_its_width()
    {
        var (console, _) = RedirectedConsole();
        console.Profile.Width = 120;
        Assert.Equal(120, ConsoleOutput.Fit(console, redirected: false).Profile.Width);
    }

    static EpochStats[] History() => Enumerable.Range(1, 5)
        .Select(e => new EpochStats(e, 1.0 / e, 0.5 + 0.1 * e, 1.2 / e, 0.45 + 0.1 * e, 1, 100)).ToArray();

    [Fact]
    public void Plot_legends_sit_outside_the_data_area()
    {
        foreach (var plot in new[]
                 {
                     Plots.TrainingCurves(History(), "title", "test"),
                     Plots.Lines("title", "x", "y", new[] { ("a", new[] { 1.0, 2.0 }, new[] { 1.0, 4.0 }), ("b", new[] { 1.0, 2.0 }, new[] { 2.0, 3.0 }) }),
                 })
        {
            plot.GetImage(Plots.Width, Plots.Height).Dispose();
            var panel = Assert.Single(plot.Axes.GetPanels().OfType<ScottPlot.Panels.LegendPanel>());
            Assert.Equal(ScottPlot.Edge.Right, panel.Edge);
            Assert.False(plot.Legend.IsVisible, "a second legend is drawn inside the data area");
            // The panel takes room right of the data area (the right axis, if any, lies between them).
            var data = plot.RenderManager.LastRender.DataRect;
            Assert.True(Plots.Width - data.Right > 100, $"data area reaches x = {data.Right} of {Plots.Width}");
        }
    }

    [Fact]
    public void Training_curve_legends_name_the_held_out_set_the_title_names()
    {
        var plot = Plots.TrainingCurves(History(), "digits_poolformer on UCI digits: 90.0% test accuracy", "test");
        var legend = plot.GetPlottables().SelectMany(p => p.LegendItems).Select(i => i.LabelText).ToArray();
        Assert.Equal(new[] { "train loss", "test loss", "test accuracy (%)" }, legend);
        Assert.Contains("test accuracy", plot.Axes.Title.Label.Text);
    }

    [Fact]
    public void Cli_readme_has_balanced_fences_and_true_counts()
    {
        var readme = File.ReadAllText(Path.Combine(RepoRoot(), "examples", "Mix.Cli", "README.md")).Replace("\r\n", "\n");
        var fences = readme.Split('\n').Count(l => l.TrimStart().StartsWith("```", StringComparison.Ordinal));
        Assert.True(fences % 2 == 0, $"{fences} code fence lines: one is not closed");

        var models = Directory.GetFiles(Path.Combine(RepoRoot(), "models"), "*.mix").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        var output = new StringWriter();
        Assert.Equal(0, MixCli.Run(new[] { "check" }.Concat(models).ToArray(), output, new StringWriter()));
        var summary = output.ToString().Trim().Split('\n').Last();
        var claimed = Regex.Match(readme, @"\$ mix check models/\*\.mix\n(.+)\n").Groups[1].Value;
        Assert.Equal(summary, claimed);
    }
}
