using System;
using System.IO;
using System.Linq;
using Mix.Examples.Forecasting;
using Mix.Examples.Language;
using Mix.Training;
using Mix.Examples.Vision;
using Xunit;

namespace Mix.Examples.Tests;

/// <summary>The vision, forecasting and language examples, shortened, through their library entry points.</summary>
public class ExampleTests
{
    static string TempDir() => Path.Combine(Path.GetTempPath(), "mix-example-test-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Vision_trains_a_mixer_and_prints_the_comparison()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var results = VisionApp.Run(new VisionOptions { Epochs = 4, Models = new[] { "digits_convformer" }, Output = dir, Cpu = true, Progress = ProgressMode.Quiet }, console);
            var r = Assert.Single(results);
            Assert.True(r.TestAccuracy > 0.6, $"{r.TestAccuracy:P1}\n{text}");
            Assert.Contains("convformer", text.ToString());
            Assert.True(File.Exists(Path.Combine(dir, "vision.png")));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Vision_trains_the_catalog_models_in_the_same_table()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var models = new[] { "digits_moe", "digits_mambaout", "digits_casvit", "digits_wavemix" };
            var results = VisionApp.Run(new VisionOptions { Epochs = 3, Models = models, Output = dir, Cpu = true, Progress = ProgressMode.Quiet }, console);
            Assert.Equal(models, results.Select(r => r.Model));
            // Three short epochs: well above chance (10%) for each, with its parameters and FLOPs in the table.
            Assert.All(results, r => Assert.True(r.TestAccuracy > 0.3 && r.Parameters > 0 && r.Flops > 0, $"{r.Model}: {r.TestAccuracy:P1}\n{text}"));
            foreach (var row in new[] { "moe", "mambaout", "casvit", "wavemix", "MoE MLP", "gated CNN (MambaOut)", "additive (CAS-ViT)", "Haar wavelets (WaveMix)" })
                Assert.Contains(row, text.ToString());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Forecasting_reports_the_models_against_the_naive_baseline()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var results = ForecastingApp.Run(new ForecastingOptions { Epochs = 5, Output = dir, Cpu = true, Progress = ProgressMode.Quiet }, console);
            Assert.Equal(new[] { "naive (last value)", "TSMixer", "PatchTSMixer", "TSM2" }, results.Select(r => r.Model));
            Assert.All(results, r => Assert.True(double.IsFinite(r.Mse) && r.Mse > 0 && double.IsFinite(r.Mae), r.ToString()));
            Assert.Contains("MSE vs naive", text.ToString());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Language_trains_and_samples_greedy_and_with_temperature()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var results = LanguageApp.Run(new LanguageOptions
            {
                Steps = 20, Models = new[] { "attention" }, Length = 30, Output = dir, Cpu = true, Progress = ProgressMode.Quiet,
            }, console);
            var r = Assert.Single(results);
            Assert.True(r.BitsPerChar < Math.Log2(84), $"{r.BitsPerChar} bits/char is no better than uniform\n{text}");
            Assert.StartsWith("CYNIC, n.", r.Greedy);
            Assert.Equal("CYNIC, n.".Length + 30, r.Greedy.Length);
            Assert.NotNull(r.Sampled);
            Assert.Contains("greedy:", text.ToString());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Language_trains_the_mamba2_and_gla_models_in_the_same_table()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var results = LanguageApp.Run(new LanguageOptions
            {
                Steps = 20, Models = new[] { "mamba2", "gla" }, Length = 10, Temperature = 0, Output = dir, Cpu = true,
                Progress = ProgressMode.Quiet,
            }, console);
            Assert.Equal(new[] { "mamba2", "gla" }, results.Select(r => r.Model));
            Assert.All(results, r => Assert.True(r.BitsPerChar < Math.Log2(84), $"{r.Model}: {r.BitsPerChar} bits/char\n{text}"));
            Assert.Contains("held-out bits/char", text.ToString());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
