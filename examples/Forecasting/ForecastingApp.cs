using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Examples.Data;
using Mix.Examples.Forecasting.Models;
using Mix.Training.Summary;
using Mix.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Forecasting;

/// <summary>Settings of the forecasting example.</summary>
public sealed record ForecastingOptions
{
    /// <summary>Quarters of history the models see.</summary>
    public int Context { get; init; } = 16;
    /// <summary>Quarters to forecast.</summary>
    public int Horizon { get; init; } = 4;
    /// <summary>Training epochs.</summary>
    public int Epochs { get; init; } = 150;
    /// <summary>Seed.</summary>
    public int Seed { get; init; }
    /// <summary>Force the CPU.</summary>
    public bool Cpu { get; init; }
    /// <summary>CPU threads (0: one per core).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Output folder.</summary>
    public string Output { get; init; } = Path.Combine("artifacts", "forecasting");
    /// <summary>How training progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
}

/// <summary>A model's (or the baseline's) test errors on the standardized series.</summary>
public sealed record ForecastResult(string Model, long Parameters, double Mse, double Mae, double Seconds);

/// <summary>TSMixer, PatchTSMixer and TSM2 against the naive last-value forecast on the US macro series.</summary>
public static class ForecastingApp
{
    /// <summary>The series used: log levels of the real aggregates and prices, and the unemployment rate.</summary>
    public static readonly (string Column, bool Log)[] Series =
    {
        ("realgdp", true), ("realcons", true), ("realinv", true), ("realgovt", true), ("realdpi", true), ("cpi", true), ("unemp", false),
    };

    /// <summary>The command line.</summary>
    public static int RunCommandLine(string[] args, IAnsiConsole? console = null, TextWriter? helpOutput = null)
    {
        var context = new Option<int>("--context") { Description = "Quarters of history the models see", DefaultValueFactory = _ => 16 };
        var horizon = new Option<int>("--horizon") { Description = "Quarters to forecast", DefaultValueFactory = _ => 4 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs per model", DefaultValueFactory = _ => 150 };
        var seed = new Option<int>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var cpu = new Option<bool>("--cpu") { Description = "Run on the CPU even when CUDA is available" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the plot", DefaultValueFactory = _ => Path.Combine("artifacts", "forecasting") };
        var root = new RootCommand("Mix forecasting example: TSMixer, PatchTSMixer and TSM2 (forecasting.mix) on statsmodels' US macro data, against the naive last-value forecast.")
        {
            context, horizon, epochs, seed, cpu, threads, output,
        };
        root.SetAction(p => Devices.Run(console, () =>
        {
            Run(new ForecastingOptions
            {
                Context = p.GetValue(context), Horizon = p.GetValue(horizon), Epochs = p.GetValue(epochs), Seed = p.GetValue(seed),
                Cpu = p.GetValue(cpu), Threads = p.GetValue(threads), Output = p.GetValue(output)!,
            }, console);
            return 0;
        }));
        var invocation = new InvocationConfiguration();
        if (helpOutput is not null) { invocation.Output = helpOutput; invocation.Error = helpOutput; }
        return root.Parse(args).Invoke(invocation);
    }

    /// <summary>Trains the models and prints MSE/MAE against the naive baseline.</summary>
    public static IReadOnlyList<ForecastResult> Run(ForecastingOptions o, IAnsiConsole? console = null)
    {
        console ??= ConsoleOutput.Default;
        Devices.SetThreads(o.Threads);
        var device = Devices.Pick(o.Cpu);
        var data = MacroData.Load();
        int T = data.Count, C = Series.Length;

        // Log levels, then standardize each series with the statistics of the training years only.
        var raw = Series.Select(s => data.Column(s.Column).Select(v => s.Log ? Math.Log(v) : v).ToArray()).ToArray();
        int testStart = (int)(T * 0.8);                        // forecasts whose first quarter is here or later are test
        var values = new float[T, C];
        for (int c = 0; c < C; c++)
        {
            var train = raw[c].Take(testStart).ToArray();
            double mean = train.Average(), std = Math.Sqrt(train.Select(v => (v - mean) * (v - mean)).Average());
            for (int t = 0; t < T; t++) values[t, c] = (float)((raw[c][t] - mean) / std);
        }

        // Windows: context quarters in, horizon quarters out. Train: targets entirely before testStart.
        var trainStarts = new List<int>();
        var testStarts = new List<int>();
        for (int s = 0; s + o.Context + o.Horizon <= T; s++)
        {
            int firstTarget = s + o.Context;
            if (firstTarget + o.Horizon <= testStart) trainStarts.Add(s);
            else if (firstTarget >= testStart) testStarts.Add(s);
        }
        var (xTrain, yTrain) = Windows(values, trainStarts, o.Context, o.Horizon, device);
        var (xTest, yTest) = Windows(values, testStarts, o.Context, o.Horizon, device);
        console.MarkupLine($"[bold]Mix forecasting[/]: {C} US macro series ({string.Join(", ", Series.Select(s => s.Log ? $"log {s.Column}" : s.Column))}), " +
                           $"{data.Quarter(0)}–{data.Quarter(T - 1)}; {o.Context} quarters in, {o.Horizon} out; " +
                           $"{trainStarts.Count} training windows, {testStarts.Count} test windows (forecasts from {data.Quarter(testStart)}), {Devices.Describe(device)}");

        var results = new List<ForecastResult>();
        // The naive forecast: the last observed quarter, repeated.
        using (var naive = xTest.narrow(1, o.Context - 1, 1).expand(-1, o.Horizon, -1))
            results.Add(Errors("naive (last value)", 0, naive, yTest, 0));

        var models = new (string Name, Func<nn.Module<Tensor, Tensor>> Create)[]
        {
            ("TSMixer", () => new TsmixerForecaster(new TsmixerForecaster.Options { SeqLen = o.Context, PredLen = o.Horizon, Channels = C })),
            ("PatchTSMixer", () => new PatchtsmixerForecaster(new PatchtsmixerForecaster.Options { ContextLength = o.Context, PredLen = o.Horizon, NumChannels = C })),
            ("TSM2", () => new Tsm2Forecaster(new Tsm2Forecaster.Options { SeqLen = o.Context, PredLen = o.Horizon, Channels = C })),
        };
        var predictions = new Dictionary<string, Tensor>();
        foreach (var (name, create) in models)
        {
            Devices.Seed(o.Seed);
            var model = create();
            model.to(device);
            var watch = Stopwatch.StartNew();
            Train(model, xTrain, yTrain, xTest, yTest, o, name, console);
            var seconds = watch.Elapsed.TotalSeconds;
            model.eval();
            using (torch.no_grad())
            {
                var pred = model.call(xTest);
                results.Add(Errors(name, model.parameters().Sum(p => p.numel()), pred, yTest, seconds));
                predictions[name] = pred;
            }
        }

        var naiveMse = results[0].Mse;
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]Test errors[/], standardized series, {o.Horizon}-quarter horizon");
        table.AddColumn("model");
        table.AddColumn(new TableColumn("params").RightAligned());
        table.AddColumn(new TableColumn("MSE").RightAligned());
        table.AddColumn(new TableColumn("MAE").RightAligned());
        table.AddColumn(new TableColumn("MSE vs naive").RightAligned());
        table.AddColumn(new TableColumn("train time").RightAligned());
        foreach (var r in results)
            table.AddRow(r.Model, r.Parameters.ToString("N0", CultureInfo.InvariantCulture), r.Mse.ToString("F4", CultureInfo.InvariantCulture),
                r.Mae.ToString("F4", CultureInfo.InvariantCulture), $"{100 * (r.Mse / naiveMse - 1):+0.0;-0.0;0.0}%", $"{r.Seconds:F1} s");
        console.Write(table);

        // Plot: one-quarter-ahead forecasts of log real GDP over the test years.
        double[] xs = testStarts.Select(s => (double)(s + o.Context)).Select(t => data.Rows[(int)t][0] + (data.Rows[(int)t][1] - 1) / 4).ToArray();
        double[] Series0(Tensor t) { using var c = t.select(1, 0).select(1, 0).cpu(); return c.data<float>().Select(v => (double)v).ToArray(); }
        var lines = new List<(string, double[], double[])> { ("actual", xs, Series0(yTest)) };
        using (var naive = xTest.narrow(1, o.Context - 1, 1)) lines.Add(("naive (last value)", xs, Series0(naive)));
        foreach (var (name, pred) in predictions) lines.Add((name, xs, Series0(pred)));
        var plot = Plots.SaveLines(Path.Combine(o.Output, "forecasting.png"), "Log real GDP (standardized): one quarter ahead, test years", "year", "standardized log real GDP", lines);
        console.MarkupLine($"Plot: {Markup.Escape(plot)}");
        foreach (var p in predictions.Values) p.Dispose();
        foreach (var t in new[] { xTrain, yTrain, xTest, yTest }) t.Dispose();
        return results;
    }

    static void Train(nn.Module<Tensor, Tensor> model, Tensor xTrain, Tensor yTrain, Tensor xTest, Tensor yTest, ForecastingOptions o, string title, IAnsiConsole console)
    {
        const int batch = 32;
        long n = xTrain.shape[0];
        int steps = (int)((n + batch - 1) / batch);
        using var optimizer = torch.optim.AdamW(model.parameters(), lr: 3e-3, weight_decay: 1e-4);
        var rng = new Random(o.Seed);
        long[] order = Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
        new TrainLoop { Title = title, Epochs = o.Epochs, StepsPerEpoch = steps, Unit = "windows", Mode = o.Progress, Log = console.Profile.Out.Writer }
            .Run((epoch, step) =>
            {
                if (step == 0) rng.Shuffle(order);
                Classifier.SetLearningRate(optimizer, Classifier.Schedule(3e-3, epoch * steps + step, steps, steps * o.Epochs));
                model.train();
                using var scope = torch.NewDisposeScope();
                var idx = torch.tensor(order.Skip(step * batch).Take(batch).ToArray(), device: xTrain.device);
                var x = xTrain.index_select(0, idx);
                var y = yTrain.index_select(0, idx);
                optimizer.zero_grad();
                var loss = nn.functional.mse_loss(model.call(x), y);
                loss.backward();
                optimizer.step();
                return new StepResult(loss.item<float>(), idx.shape[0]);
            }, _ =>
            {
                model.eval();
                using var g = torch.no_grad();
                using var scope = torch.NewDisposeScope();
                return new EvalResult(nn.functional.mse_loss(model.call(xTest), yTest).item<float>(), null);
            });
    }

    static ForecastResult Errors(string name, long parameters, Tensor prediction, Tensor target, double seconds)
    {
        using var scope = torch.NewDisposeScope();
        var diff = prediction - target;
        return new ForecastResult(name, parameters, diff.square().mean().item<float>(), diff.abs().mean().item<float>(), seconds);
    }

    static (Tensor X, Tensor Y) Windows(float[,] values, List<int> starts, int context, int horizon, Device device)
    {
        int C = values.GetLength(1);
        var x = new float[starts.Count * context * C];
        var y = new float[starts.Count * horizon * C];
        for (int i = 0; i < starts.Count; i++)
        {
            for (int t = 0; t < context; t++)
                for (int c = 0; c < C; c++) x[(i * context + t) * C + c] = values[starts[i] + t, c];
            for (int t = 0; t < horizon; t++)
                for (int c = 0; c < C; c++) y[(i * horizon + t) * C + c] = values[starts[i] + context + t, c];
        }
        return (torch.tensor(x, new long[] { starts.Count, context, C }, device: device), torch.tensor(y, new long[] { starts.Count, horizon, C }, device: device));
    }
}
