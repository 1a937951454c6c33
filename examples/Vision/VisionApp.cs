using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Examples.Data;
using Mix.Training.Summary;
using Mix.Training;
using Mix.Examples.Vision.Models;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Vision;

/// <summary>Settings of the vision comparison.</summary>
public sealed record VisionOptions
{
    /// <summary>Epochs per model.</summary>
    public int Epochs { get; init; } = 15;
    /// <summary>Which models (names from vision.mix); empty: all.</summary>
    public IReadOnlyList<string> Models { get; init; } = Array.Empty<string>();
    /// <summary>Seed.</summary>
    public int Seed { get; init; }
    /// <summary>Force the CPU.</summary>
    public bool Cpu { get; init; }
    /// <summary>CPU threads (0: one per core).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Output folder.</summary>
    public string Output { get; init; } = Path.Combine("artifacts", "vision");
    /// <summary>How training progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
}

/// <summary>One model's result.</summary>
public sealed record VisionResult(string Model, string Mixer, long Parameters, double? Flops, double TestAccuracy, double Seconds,
    IReadOnlyList<EpochStats> History);

/// <summary>Trains each model of vision.mix on the digits and compares them.</summary>
public static class VisionApp
{
    /// <summary>The models, their mixer in words, and how to build them (generated classes).</summary>
    public static readonly (string Name, string Mixer, Func<nn.Module<Tensor, Tensor>> Create)[] Catalog =
    {
        ("digits_identityformer", "none (identity)", () => new DigitsIdentityformer()),
        ("digits_poolformer", "pooling", () => new DigitsPoolformer()),
        ("digits_convformer", "separable conv", () => new DigitsConvformer()),
        ("digits_caformer", "conv + attention", () => new DigitsCaformer()),
        ("digits_moe", "conv + attention, MoE MLP", () => new DigitsMoe()),
        ("digits_mambaout", "gated CNN (MambaOut)", () => new DigitsMambaout()),
        ("digits_casvit", "additive (CAS-ViT)", () => new DigitsCasvit()),
        ("digits_dsm", "DCT spectrum (DSM)", () => new DigitsDsm()),
        ("digits_iformer", "Inception mixer (iFormer)", () => new DigitsIformer()),
        ("digits_ffnet", "FFNified attention (FFNet)", () => new DigitsFfnet()),
        ("digits_msmlp", "mix-shift (MS-MLP)", () => new DigitsMsmlp()),
        ("digits_raftmlp", "raft token MLP (RaftMLP)", () => new DigitsRaftmlp()),
        ("digits_wavemix", "Haar wavelets (WaveMix)", () => new DigitsWavemix()),
    };

    /// <summary>The weight of the auxiliary losses a model records (the mixture of experts' load balancing).</summary>
    static double AuxLossWeight(string name) => name == "balance_loss" ? 0.01 : 0.0;

    /// <summary>The command line.</summary>
    public static int RunCommandLine(string[] args, IAnsiConsole? console = null, TextWriter? helpOutput = null)
    {
        var epochs = new Option<int>("--epochs") { Description = "Epochs per model", DefaultValueFactory = _ => 15 };
        var models = new Option<string[]>("--models") { Description = "Models to train (default: all): " + string.Join(", ", Catalog.Select(c => c.Name)), AllowMultipleArgumentsPerToken = true };
        var seed = new Option<int>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var cpu = new Option<bool>("--cpu") { Description = "Run on the CPU even when CUDA is available" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the plot", DefaultValueFactory = _ => Path.Combine("artifacts", "vision") };
        var root = new RootCommand("Mix vision example: PoolFormer, ConvFormer and CAFormer-style models, a CAFormer with MoE MLPs and the catalog's MambaOut, CAS-ViT, DSM, iFormer, FFNet, MS-MLP, RaftMLP and WaveMix blocks (vision.mix) trained from scratch on the UCI digits, compared in one table.")
        {
            epochs, models, seed, cpu, threads, output,
        };
        root.SetAction(p => Devices.Run(console, () =>
        {
            Run(new VisionOptions
            {
                Epochs = p.GetValue(epochs), Models = p.GetValue(models) ?? Array.Empty<string>(), Seed = p.GetValue(seed),
                Cpu = p.GetValue(cpu), Threads = p.GetValue(threads), Output = p.GetValue(output)!,
            }, console);
            return 0;
        }));
        var invocation = new InvocationConfiguration();
        if (helpOutput is not null) { invocation.Output = helpOutput; invocation.Error = helpOutput; }
        return root.Parse(args).Invoke(invocation);
    }

    /// <summary>Trains the selected models and prints the comparison.</summary>
    public static IReadOnlyList<VisionResult> Run(VisionOptions options, IAnsiConsole? console = null)
    {
        console ??= ConsoleOutput.Default;
        Devices.SetThreads(options.Threads);
        var device = Devices.Pick(options.Cpu);
        var compilation = MixSources.Compile(typeof(VisionApp).Assembly);
        var digits = Digits.Load();
        var (trainIdx, testIdx) = digits.Split(0.2, options.Seed);
        var (xTrain, yTrain) = digits.Tensors(trainIdx, device);
        var (xTest, yTest) = digits.Tensors(testIdx, device);
        console.MarkupLine($"[bold]Mix vision[/]: {trainIdx.Length} train / {testIdx.Length} test digits, {options.Epochs} epochs per model, {Devices.Describe(device)}");

        var results = new List<VisionResult>();
        foreach (var (name, mixer, create) in Catalog.Where(c => options.Models.Count == 0 || options.Models.Contains(c.Name)))
        {
            var summary = ModelSummary.Create(compilation.Find(name) ?? throw new InvalidOperationException($"vision.mix has no model {name}"));
            Devices.Seed(options.Seed);
            using var model = create();
            model.to(device);
            var watch = Stopwatch.StartNew();
            var history = Classifier.Train(model, xTrain, yTrain, xTest, yTest, new ClassifierOptions
            {
                Epochs = options.Epochs, Seed = options.Seed, Title = name, Progress = options.Progress, Log = console.Profile.Out.Writer,
                AuxLossWeight = AuxLossWeight,
            });
            var seconds = watch.Elapsed.TotalSeconds;
            var (_, acc) = Classifier.Evaluate(model, xTest, yTest);
            long parameters = model.parameters().Sum(p => p.numel());
            results.Add(new VisionResult(name, mixer, parameters, summary.TotalFlops, acc, seconds, history));
            console.MarkupLine($"{name}: [bold]{100 * acc:F2}%[/] test accuracy in {seconds:F1} s");
        }

        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Token mixers on the UCI digits[/] (trained from scratch)");
        table.AddColumn("model");
        table.AddColumn("token mixer");
        table.AddColumn(new TableColumn("params").RightAligned());
        table.AddColumn(new TableColumn("FLOPs").RightAligned());
        table.AddColumn(new TableColumn("test acc").RightAligned());
        table.AddColumn(new TableColumn("train time").RightAligned());
        foreach (var r in results)
            table.AddRow(r.Model.Replace("digits_", "", StringComparison.Ordinal), r.Mixer, r.Parameters.ToString("N0", CultureInfo.InvariantCulture), ModelSummary.Human(r.Flops),
                $"{100 * r.TestAccuracy:F2}%", $"{r.Seconds:F1} s");
        console.Write(table);

        if (results.Count > 0)
        {
            var plot = Plots.SaveLines(Path.Combine(options.Output, "vision.png"), "Test accuracy per epoch (UCI digits)", "epoch", "accuracy (%)",
                results.Select(r => (r.Model, r.History.Select(h => (double)h.Epoch).ToArray(), r.History.Select(h => 100 * (h.ValAccuracy ?? 0)).ToArray())));
            console.MarkupLine($"Plot: {Markup.Escape(plot)}");
        }
        foreach (var t in new[] { xTrain, yTrain, xTest, yTest }) t.Dispose();
        return results;
    }
}
