using System;
using System.IO;
using Mix.Training;
using Mix.Quickstart;
using Spectre.Console;
using Xunit;

namespace Mix.Examples.Tests;

/// <summary>The Quickstart, shortened: the same code path as <c>dotnet run --project examples/Quickstart</c>.</summary>
public class QuickstartTests
{
    internal static (IAnsiConsole Console, StringWriter Text) PlainConsole()
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(text),
        });
        console.Profile.Width = 160;
        return (console, text);
    }

    [Fact]
    public void Short_run_trains_above_the_floor_saves_reloads_and_plots()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mix-quickstart-test-" + Guid.NewGuid().ToString("N"));
        var (console, text) = PlainConsole();
        try
        {
            var result = QuickstartApp.Run(new QuickstartOptions { Epochs = 6, Output = dir, Progress = ProgressMode.Lines, Cpu = true }, console);
            var output = text.ToString();
            Assert.True(result.TestAccuracy >= 0.85, $"test accuracy {result.TestAccuracy:P1} is below the 85% floor\n{output}");
            Assert.Equal(359, result.TestCount);
            Assert.Equal(6, result.History.Count);
            Assert.Equal(103_690, result.Parameters);
            Assert.True(result.Flops > 4e6 && result.Flops < 6e6, $"FLOPs {result.Flops}");
            Assert.True(result.ReloadedPredictionsIdentical);
            Assert.True(File.Exists(result.CheckpointPath));
            Assert.True(File.Exists(result.PlotPath));
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(result.PlotPath!)[..4]);
            Assert.Contains("stages.1.blocks.1", output);
            Assert.Contains("metaformer_block", output);
            Assert.Contains("[B, 64, 4, 4]", output);
            Assert.Contains("103,690", output);
            Assert.Contains("Test accuracy:", output);
            Assert.Contains("359/359 test predictions identical", output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Help_lists_the_options()
    {
        var (console, _) = PlainConsole();
        var writer = new StringWriter();
        Assert.Equal(0, QuickstartApp.RunCommandLine(new[] { "--help" }, console, writer));
        var help = writer.ToString();
        foreach (var option in new[] { "--epochs", "--cpu", "--seed", "--output", "--no-plot" }) Assert.Contains(option, help);
    }

    [Fact]
    public void A_missing_data_file_names_the_path_and_how_to_get_it()
    {
        var e = Assert.Throws<FileNotFoundException>(() => Data.ExampleData.Find("no-such-file.csv.gz"));
        Assert.Contains("no-such-file.csv.gz", e.Message);
        Assert.Contains("examples/data/README.md", e.Message);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "data", "no-such-file.csv.gz"), e.Message);
    }
}
