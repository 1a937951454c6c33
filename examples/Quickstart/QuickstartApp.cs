using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using Mix.Dsl;
using Mix.Dsl.Text;
using Mix.Examples;
using Mix.Examples.Data;
using Mix.Training.Summary;
using Mix.Training;
using Mix.Quickstart.Models;
using Mix.Runtime.Checkpoints;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Quickstart;

/// <summary>Settings of a Quickstart run (the command-line options).</summary>
public sealed record QuickstartOptions
{
    /// <summary>Passes over the training images.</summary>
    public int Epochs { get; init; } = 20;
    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 4e-3;
    /// <summary>Seed of everything random (weights, split, batch order).</summary>
    public int Seed { get; init; }
    /// <summary>Run on the CPU even when CUDA is available.</summary>
    public bool Cpu { get; init; }
    /// <summary>Folder for the checkpoint and the plot.</summary>
    public string Output { get; init; } = Path.Combine("artifacts", "quickstart");
    /// <summary>How training progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
    /// <summary>CPU threads for TorchSharp (0: one per core). One is fastest for this tiny model and robust on a
    /// busy machine.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Write the PNG plot.</summary>
    public bool Plot { get; init; } = true;
}

/// <summary>What a Quickstart run produced.</summary>
public sealed record QuickstartResult(
    double TestAccuracy, int TestCount, long Parameters, double? Flops, double TrainSeconds, string CheckpointPath,
    string? PlotPath, bool ReloadedPredictionsIdentical, IReadOnlyList<EpochStats> History);

/// <summary>
/// The Quickstart: summarize the .mix model from the front end, train the generated class on the handwritten
/// digits, evaluate, save a safetensors checkpoint, reload it into a fresh instance, plot the curves.
/// </summary>
public static class QuickstartApp
{
    /// <summary>The command line: options, <c>--help</c>, then <see cref="Run"/>.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="console">Where the run writes (default: the terminal).</param>
    /// <param name="helpOutput">Where help and usage errors go (default: standard output and error).</param>
    public static int RunCommandLine(string[] args, IAnsiConsole? console = null, TextWriter? helpOutput = null)
    {
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training images", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch-size") { Description = "Images per step", DefaultValueFactory = _ => 64 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW, warm-up then cosine)", DefaultValueFactory = _ => 4e-3 };
        var seed = new Option<int>("--seed") { Description = "Seed for weights, data split and batch order", DefaultValueFactory = _ => 0 };
        var cpu = new Option<bool>("--cpu") { Description = "Run on the CPU even when CUDA is available" };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the checkpoint and the plot", DefaultValueFactory = _ => Path.Combine("artifacts", "quickstart") };
        var noPlot = new Option<bool>("--no-plot") { Description = "Skip the PNG plot" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for TorchSharp (0: one per core; 1 is fastest for this tiny model)", DefaultValueFactory = _ => 1 };
        var root = new RootCommand(
            "Mix Quickstart: a PoolFormer written in .mix (digits.mix), generated into C# at build time, trained on the " +
            "UCI handwritten digits (8x8, shipped in examples/data), evaluated, checkpointed (safetensors) and plotted.")
        {
            epochs, batch, lr, seed, cpu, threads, output, noPlot,
        };
        root.SetAction(parse =>
        {
            var options = new QuickstartOptions
            {
                Epochs = parse.GetValue(epochs), BatchSize = parse.GetValue(batch), LearningRate = parse.GetValue(lr),
                Seed = parse.GetValue(seed), Cpu = parse.GetValue(cpu), Output = parse.GetValue(output)!, Plot = !parse.GetValue(noPlot), Threads = parse.GetValue(threads),
            };
            try
            {
                Run(options, console);
                return 0;
            }
            catch (FileNotFoundException e)
            {
                (console ?? ConsoleOutput.Default).MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
            catch (Mix.Runtime.Cuda.LibTorchNotFoundException e)
            {
                // The libtorch backend without an installed PyTorch: the runtime's one-line answer, not TorchSharp's trace.
                (console ?? ConsoleOutput.Default).MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 3;
            }
        });
        var invocation = new InvocationConfiguration();
        if (helpOutput is not null) { invocation.Output = helpOutput; invocation.Error = helpOutput; }
        return root.Parse(args).Invoke(invocation);
    }

    /// <summary>The checked .mix sources of the model (embedded in this assembly), as the front end sees them.</summary>
    public static MixCompilation Compilation() => MixSources.Compile(typeof(QuickstartApp).Assembly);

    /// <summary>Runs the Quickstart and returns what it measured.</summary>
    public static QuickstartResult Run(QuickstartOptions options, IAnsiConsole? console = null)
    {
        console ??= ConsoleOutput.Default;
        var total = Stopwatch.StartNew();
        Devices.SetThreads(options.Threads);
        var device = Devices.Pick(options.Cpu);
        console.MarkupLine($"[bold]Mix Quickstart[/]: digits.mix -> generated [green]DigitsPoolformer[/] on {Devices.Describe(device)}");

        // 1. What the front end inferred from digits.mix alone: layers, shapes, parameters, FLOPs.
        var compilation = Compilation();
        foreach (var d in compilation.Diagnostics) console.WriteLine(d.ToString());
        var summary = ModelSummary.Create(compilation.Find("digits_poolformer")!, maxDepth: 1);
        console.Write(SummaryTable.Create(summary));

        // 2. The data: 1,797 real 8x8 digits, a deterministic stratified 80/20 split.
        var digits = Digits.Load();
        var (trainIdx, testIdx) = digits.Split(0.2, options.Seed);
        var (xTrain, yTrain) = digits.Tensors(trainIdx, device);
        var (xTest, yTest) = digits.Tensors(testIdx, device);
        console.MarkupLine($"Data: {digits.Count} UCI handwritten digits (examples/data/{Digits.FileName}): {trainIdx.Length} train, {testIdx.Length} test.");

        // 3. Train the generated class.
        Devices.Seed(options.Seed);
        using var model = new DigitsPoolformer();
        model.to(device);
        long parameters = model.parameters().Sum(p => p.numel());
        var watch = Stopwatch.StartNew();
        var history = Classifier.Train(model, xTrain, yTrain, xTest, yTest, new ClassifierOptions
        {
            Epochs = options.Epochs, BatchSize = options.BatchSize, LearningRate = options.LearningRate, Seed = options.Seed,
            Title = "digits", Progress = options.Progress, Log = console.Profile.Out.Writer,
        });
        double trainSeconds = watch.Elapsed.TotalSeconds;

        // 4. Evaluate on the held-out images.
        var (testLoss, testAcc) = Classifier.Evaluate(model, xTest, yTest);
        console.MarkupLine($"[bold]Test accuracy: {100 * testAcc:F2}%[/] ({(int)Math.Round(testAcc * testIdx.Length)}/{testIdx.Length} held-out digits, loss {testLoss:F4}) after {options.Epochs} epochs in {trainSeconds:F1} s.");

        // 5. Save a safetensors checkpoint, load it into a fresh instance, compare predictions.
        Directory.CreateDirectory(options.Output);
        var checkpoint = Path.GetFullPath(Path.Combine(options.Output, "digits_poolformer.safetensors"));
        model.to(torch.CPU);
        CheckpointLoader.Save(model, checkpoint, new Dictionary<string, string> { ["model"] = "digits_poolformer", ["source"] = "examples/Quickstart/digits.mix" });
        using var reloaded = new DigitsPoolformer();
        var report = CheckpointLoader.Load(reloaded, checkpoint, strict: true);
        model.to(device);
        reloaded.to(device);
        using var before = Classifier.Predict(model, xTest);
        using var after = Classifier.Predict(reloaded, xTest);
        bool identical = before.eq(after).all().item<bool>();
        using var predBefore = before.argmax(1).cpu();
        using var predAfter = after.argmax(1).cpu();
        var pb = predBefore.data<long>().ToArray();
        var pa = predAfter.data<long>().ToArray();
        int same = pb.Zip(pa).Count(p => p.First == p.Second);
        console.MarkupLine($"Checkpoint: {report.LoadedKeys.Count} tensors saved and reloaded strictly into a fresh DigitsPoolformer; " +
                           $"{same}/{pa.Length} test predictions identical, logits {(identical ? "bit-identical" : "differ")}.");
        var labels = testIdx.Take(12).Select(i => digits.Labels[i]).ToArray();
        console.MarkupLine($"  first 12 labels     {string.Join(' ', labels)}");
        console.MarkupLine($"  trained model says  {string.Join(' ', pb.Take(12))}");
        console.MarkupLine($"  reloaded model says {string.Join(' ', pa.Take(12))}");

        // 6. Plot the curves.
        string? plot = null;
        if (options.Plot)
            plot = Plots.SaveTrainingCurves(Path.Combine(options.Output, "training.png"), history,
                $"digits_poolformer on UCI digits: {100 * testAcc:F1}% test accuracy", heldOut: "test");

        console.MarkupLine("Files:");
        console.MarkupLine($"  checkpoint  {Markup.Escape(checkpoint)}");
        if (plot is not null) console.MarkupLine($"  plot        {Markup.Escape(plot)}");
        console.MarkupLine($"Done in {total.Elapsed.TotalSeconds:F1} s.");

        foreach (var t in new[] { xTrain, yTrain, xTest, yTest }) t.Dispose();
        return new QuickstartResult(testAcc, testIdx.Length, parameters, summary.TotalFlops, trainSeconds, checkpoint, plot, identical && same == pa.Length, history);
    }
}
