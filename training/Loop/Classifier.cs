using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training;

/// <summary>Settings for <see cref="Classifier.Train"/>.</summary>
public sealed record ClassifierOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 20;
    /// <summary>Samples per step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Peak learning rate (AdamW, linear warm-up for one epoch, then cosine decay).</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.05;
    /// <summary>Seed of the batch order.</summary>
    public int Seed { get; init; }
    /// <summary>Shown left of the progress bar.</summary>
    public string Title { get; init; } = "train";
    /// <summary>How progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
    /// <summary>Where per-epoch lines go when progress is not live.</summary>
    public System.IO.TextWriter? Log { get; init; }
    /// <summary>The weight of each auxiliary loss the model records (a mixture of experts' load balancing, by name;
    /// <see cref="Mix.Runtime.Builtins.MixAux"/>), added to the cross-entropy; null: none is added.</summary>
    public Func<string, double>? AuxLossWeight { get; init; }
}

/// <summary>Trains and evaluates image (or any) classifiers: cross-entropy, AdamW, warm-up + cosine schedule.</summary>
public static class Classifier
{
    /// <summary>Trains <paramref name="model"/> on (<paramref name="xTrain"/>, <paramref name="yTrain"/>),
    /// validating on (<paramref name="xVal"/>, <paramref name="yVal"/>) after each epoch. Tensors must be on the
    /// model's device.</summary>
    public static List<EpochStats> Train(nn.Module<Tensor, Tensor> model, Tensor xTrain, Tensor yTrain, Tensor xVal, Tensor yVal,
        ClassifierOptions options)
    {
        long n = xTrain.shape[0];
        int steps = (int)((n + options.BatchSize - 1) / options.BatchSize);
        int totalSteps = steps * options.Epochs;
        using var optimizer = torch.optim.AdamW(model.parameters(), lr: options.LearningRate, weight_decay: options.WeightDecay);
        var rng = new Random(options.Seed);
        var device = xTrain.device;
        Tensor? order = null;
        var loop = new TrainLoop
        {
            Title = options.Title, Epochs = options.Epochs, StepsPerEpoch = steps, Unit = "img", Mode = options.Progress, Log = options.Log,
        };
        try
        {
            return loop.Run((epoch, step) =>
            {
                if (step == 0)
                {
                    var perm = Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
                    rng.Shuffle(perm);
                    order?.Dispose();
                    order = torch.tensor(perm, device: device);
                }
                SetLearningRate(optimizer, Schedule(options.LearningRate, epoch * steps + step, steps, totalSteps));
                model.train();
                using var scope = torch.NewDisposeScope();
                var idx = order!.narrow(0, (long)step * options.BatchSize, Math.Min(options.BatchSize, n - (long)step * options.BatchSize));
                var x = xTrain.index_select(0, idx);
                var y = yTrain.index_select(0, idx);
                optimizer.zero_grad();
                var logits = model.call(x);
                var loss = nn.functional.cross_entropy(logits, y);
                if (options.AuxLossWeight is { } weight && Mix.Runtime.Builtins.MixAux.TotalLoss(model, weight) is { } aux) loss = loss + aux;
                loss.backward();
                optimizer.step();
                long correct = logits.argmax(1).eq(y).sum().item<long>();
                return new StepResult(loss.item<float>(), idx.shape[0], correct);
            }, _ =>
            {
                var (loss, acc) = Evaluate(model, xVal, yVal, options.BatchSize * 4);
                return new EvalResult(loss, acc);
            });
        }
        finally { order?.Dispose(); }
    }

    /// <summary>Mean cross-entropy and accuracy of <paramref name="model"/> (in eval mode, no gradients).</summary>
    public static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, int batchSize = 256)
    {
        using var logits = Predict(model, x, batchSize);
        using var scope = torch.NewDisposeScope();
        var loss = nn.functional.cross_entropy(logits, y).item<float>();
        var acc = logits.argmax(1).eq(y).to_type(ScalarType.Float32).mean().item<float>();
        return (loss, acc);
    }

    /// <summary>The logits for every row of <paramref name="x"/>, in eval mode without gradients.</summary>
    public static Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor x, int batchSize = 256)
    {
        model.eval();
        using var _ = torch.no_grad();
        var parts = new List<Tensor>();
        for (long i = 0; i < x.shape[0]; i += batchSize)
            parts.Add(model.call(x.narrow(0, i, Math.Min(batchSize, x.shape[0] - i))));
        var all = torch.cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    /// <summary>Linear warm-up over the first epoch, then cosine decay to 5% of the peak.</summary>
    public static double Schedule(double peak, int step, int stepsPerEpoch, int totalSteps)
    {
        int warm = Math.Min(stepsPerEpoch, Math.Max(1, totalSteps / 10));
        if (step < warm) return peak * (step + 1) / warm;
        double t = (double)(step - warm) / Math.Max(1, totalSteps - warm);
        return peak * (0.05 + 0.95 * 0.5 * (1 + Math.Cos(Math.PI * t)));
    }

    /// <summary>Sets every parameter group's learning rate.</summary>
    public static void SetLearningRate(optim.Optimizer optimizer, double lr)
    {
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
    }
}
