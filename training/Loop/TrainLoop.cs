using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using Spectre.Console;

namespace Mix.Training;

/// <summary>What one training step reports: its mean loss, how many samples it saw and how many it got right
/// (-1 when accuracy does not apply).</summary>
public readonly record struct StepResult(double Loss, long Samples, long Correct = -1);

/// <summary>What validation reports after an epoch: mean loss and accuracy (null when it does not apply).</summary>
public readonly record struct EvalResult(double Loss, double? Accuracy);

/// <summary>One epoch of training and its validation.</summary>
public sealed record EpochStats(int Epoch, double TrainLoss, double? TrainAccuracy, double ValLoss, double? ValAccuracy,
    double Seconds, double SamplesPerSecond);

/// <summary>How the loop shows its progress.</summary>
public enum ProgressMode
{
    /// <summary>A live Spectre.Console bar when the console is interactive, else one line per epoch.</summary>
    Auto,
    /// <summary>Always the live bar.</summary>
    Live,
    /// <summary>One line per epoch on <see cref="TrainLoop.Log"/>.</summary>
    Lines,
    /// <summary>Nothing.</summary>
    Quiet,
}

/// <summary>
/// Runs epochs of steps with a live progress bar (loss, accuracy, throughput, ETA) and validates after each epoch.
/// The step and validation functions do the model's work; this class only counts, times and shows.
/// </summary>
public sealed class TrainLoop
{
    /// <summary>Shown left of the bar.</summary>
    public string Title { get; init; } = "train";
    /// <summary>Number of epochs.</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>Steps in one epoch.</summary>
    public int StepsPerEpoch { get; init; } = 1;
    /// <summary>What a sample is, for the throughput ("img", "seq", "tok").</summary>
    public string Unit { get; init; } = "samples";
    /// <summary>How progress shows.</summary>
    public ProgressMode Mode { get; init; } = ProgressMode.Auto;
    /// <summary>Where <see cref="ProgressMode.Lines"/> writes (default: the console).</summary>
    public TextWriter? Log { get; init; }

    /// <summary>Trains: for each epoch, every step, then validation.</summary>
    /// <param name="step">Runs step <c>s</c> of epoch <c>e</c> (both from 0).</param>
    /// <param name="validate">Validates after epoch <c>e</c>.</param>
    public List<EpochStats> Run(Func<int, int, StepResult> step, Func<int, EvalResult> validate)
    {
        var mode = Mode;
        if (mode == ProgressMode.Auto)
            mode = AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected ? ProgressMode.Live : ProgressMode.Lines;
        var history = new List<EpochStats>();
        if (mode != ProgressMode.Live)
        {
            var log = Log ?? Console.Out;
            RunEpochs(step, validate, history, (_, _) => { }, stats => { if (mode == ProgressMode.Lines) log.WriteLine(Line(stats)); });
            return history;
        }
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(Title), maxValue: Epochs * StepsPerEpoch);
                RunEpochs(step, validate, history,
                    (description, done) => { task.Description = description; task.Value = done; },
                    stats => AnsiConsole.MarkupLine(Markup.Escape(Line(stats))));
                task.StopTask();
            });
        return history;
    }

    void RunEpochs(Func<int, int, StepResult> step, Func<int, EvalResult> validate, List<EpochStats> history,
        Action<string, double> progress, Action<EpochStats> epochDone)
    {
        int done = 0;
        var total = Stopwatch.StartNew();
        for (int epoch = 0; epoch < Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            double lossSum = 0;
            long samples = 0, correct = 0;
            bool hasAccuracy = true;
            for (int s = 0; s < StepsPerEpoch; s++)
            {
                var r = step(epoch, s);
                lossSum += r.Loss * r.Samples;
                samples += r.Samples;
                if (r.Correct < 0) hasAccuracy = false; else correct += r.Correct;
                done++;
                var rate = samples / Math.Max(watch.Elapsed.TotalSeconds, 1e-9);
                var acc = hasAccuracy ? $" acc {100.0 * correct / Math.Max(samples, 1):F1}%" : "";
                progress($"{Markup.Escape(Title)} epoch {epoch + 1}/{Epochs} loss {lossSum / Math.Max(samples, 1):F4}{acc} {rate:N0} {Unit}/s", done);
            }
            var trainSeconds = watch.Elapsed.TotalSeconds;
            var v = validate(epoch);
            var stats = new EpochStats(epoch + 1, lossSum / Math.Max(samples, 1), hasAccuracy ? (double)correct / Math.Max(samples, 1) : null,
                v.Loss, v.Accuracy, watch.Elapsed.TotalSeconds, samples / Math.Max(trainSeconds, 1e-9));
            history.Add(stats);
            epochDone(stats);
        }
    }

    string Line(EpochStats s)
    {
        var trainAcc = s.TrainAccuracy is double a ? $" acc {100 * a:F1}%" : "";
        var valAcc = s.ValAccuracy is double b ? $" acc {100 * b:F1}%" : "";
        return $"{Title} epoch {s.Epoch,3}/{Epochs}  train loss {s.TrainLoss:F4}{trainAcc}  val loss {s.ValLoss:F4}{valAcc}  " +
               $"{s.SamplesPerSecond:N0} {Unit}/s  {s.Seconds:F1}s";
    }
}
