using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Examples.Data;
using Mix.Examples.Distillation.Models;
using Mix.Runtime.Checkpoints;
using Mix.Training;
using Mix.Training.Distillation;
using Mix.Training.Summary;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Distillation;

/// <summary>Settings of the distillation example.</summary>
public sealed record DistillationOptions
{
    /// <summary>Steps that train the teacher (char_attention) from scratch.</summary>
    public int TeacherSteps { get; init; } = 1000;
    /// <summary>Stage 1, layer-wise attention transfer (feature maps only).</summary>
    public int AttentionSteps { get; init; } = 100;
    /// <summary>Stage 1, end to end (logit KL + hidden states).</summary>
    public int Stage1Steps { get; init; } = 100;
    /// <summary>Stage 2, end to end.</summary>
    public int Stage2Steps { get; init; } = 200;
    /// <summary>Steps of each from-scratch baseline (0: the distillation's, attention + stage 1 + stage 2).</summary>
    public int BaselineSteps { get; init; }
    /// <summary>Baselines trained from scratch on the text: mamba (char_mamba), linear_mamba (the stage-2 architecture).</summary>
    public IReadOnlyList<string> Baselines { get; init; } = new[] { "mamba", "linear_mamba" };
    /// <summary>Characters per sequence.</summary>
    public int Context { get; init; } = 64;
    /// <summary>Sequences per step.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Logit-KL temperature.</summary>
    public double Temperature { get; init; } = 2.0;
    /// <summary>Model width (all models).</summary>
    public int DModel { get; init; } = 64;
    /// <summary>Attention head width (teacher and students; heads = DModel / HeadDim).</summary>
    public int HeadDim { get; init; } = 16;
    /// <summary>Layers (all models).</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Seed.</summary>
    public int Seed { get; init; }
    /// <summary>Force the CPU.</summary>
    public bool Cpu { get; init; }
    /// <summary>CPU threads (0: one per core).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Output folder: checkpoints of the teacher and each stage (a rerun resumes from them) and the plot.</summary>
    public string Output { get; init; } = Path.Combine("artifacts", "distillation");
    /// <summary>Start over: delete the output folder's checkpoints first.</summary>
    public bool Fresh { get; init; }
    /// <summary>How training progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
    /// <summary>Print the surgery reports tensor by tensor.</summary>
    public bool ShowSurgery { get; init; } = true;
}

/// <summary>One row of the result table.</summary>
public sealed record DistillationResult(string Model, string How, long Parameters, int Steps, double BitsPerChar, double Seconds)
{
    /// <summary>Perplexity per character, 2^bits.</summary>
    public double Perplexity => Math.Pow(2, BitsPerChar);
}

/// <summary>Everything a run produced: the table rows and the two surgery reports.</summary>
public sealed record DistillationRun(IReadOnlyList<DistillationResult> Results, SurgeryReport Stage1Surgery, SurgeryReport Stage2Surgery,
    IReadOnlyList<StageResult> Stages);

/// <summary>The Attention-to-Mamba recipe on the language example's attention model and <i>The Devil's Dictionary</i>.</summary>
public static class DistillationApp
{
    /// <summary>The text's file name in <c>examples/data/</c>.</summary>
    public const string FileName = "devils_dictionary.txt.gz";

    /// <summary>The command line.</summary>
    public static int RunCommandLine(string[] args, IAnsiConsole? console = null, TextWriter? helpOutput = null)
    {
        var d = new DistillationOptions();
        var teacher = new Option<int>("--teacher-steps") { Description = "Steps that train the teacher (char_attention)", DefaultValueFactory = _ => d.TeacherSteps };
        var attention = new Option<int>("--attention-steps") { Description = "Stage 1, layer-wise attention transfer (feature maps only)", DefaultValueFactory = _ => d.AttentionSteps };
        var stage1 = new Option<int>("--stage1-steps") { Description = "Stage 1, end to end (logit KL + hidden states)", DefaultValueFactory = _ => d.Stage1Steps };
        var stage2 = new Option<int>("--stage2-steps") { Description = "Stage 2, end to end", DefaultValueFactory = _ => d.Stage2Steps };
        var baselineSteps = new Option<int>("--baseline-steps") { Description = "Steps of each from-scratch baseline (0: the distillation's total)", DefaultValueFactory = _ => 0 };
        var baselines = new Option<string[]>("--baselines") { Description = "From-scratch baselines: mamba, linear_mamba, none", AllowMultipleArgumentsPerToken = true };
        var temperature = new Option<double>("--temperature") { Description = "Logit-KL temperature", DefaultValueFactory = _ => d.Temperature };
        var seed = new Option<int>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var cpu = new Option<bool>("--cpu") { Description = "Run on the CPU even when CUDA is available" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for checkpoints (a rerun resumes from them) and the plot", DefaultValueFactory = _ => d.Output };
        var fresh = new Option<bool>("--fresh") { Description = "Delete the output folder's checkpoints first" };
        var root = new RootCommand("Mix distillation example: the Attention-to-Mamba recipe. Trains the language example's char_attention on The Devil's Dictionary, " +
                                   "distils it into Hedgehog linear attention (stage 1) and then into a Mamba-like linear_mamba (stage 2), and compares held-out bits per character with from-scratch baselines.")
        {
            teacher, attention, stage1, stage2, baselineSteps, baselines, temperature, seed, cpu, threads, output, fresh,
        };
        root.SetAction(p => Devices.Run(console, () =>
        {
            var chosen = p.GetValue(baselines);
            Run(new DistillationOptions
            {
                TeacherSteps = p.GetValue(teacher), AttentionSteps = p.GetValue(attention), Stage1Steps = p.GetValue(stage1), Stage2Steps = p.GetValue(stage2),
                BaselineSteps = p.GetValue(baselineSteps), Baselines = chosen is null || chosen.Length == 0 ? d.Baselines : chosen.Where(b => b != "none").ToArray(),
                Temperature = p.GetValue(temperature), Seed = p.GetValue(seed), Cpu = p.GetValue(cpu), Threads = p.GetValue(threads),
                Output = p.GetValue(output)!, Fresh = p.GetValue(fresh),
            }, console);
            return 0;
        }));
        var invocation = new InvocationConfiguration();
        if (helpOutput is not null) { invocation.Output = helpOutput; invocation.Error = helpOutput; }
        return root.Parse(args).Invoke(invocation);
    }

    /// <summary>Trains the teacher, runs both stages, trains the baselines, prints the table.</summary>
    public static DistillationRun Run(DistillationOptions o, IAnsiConsole? console = null)
    {
        console ??= ConsoleOutput.Default;
        Devices.SetThreads(o.Threads);
        var device = Devices.Pick(o.Cpu);
        var text = ExampleData.ReadAllText(ExampleData.Find(FileName)).Replace("\r", "", StringComparison.Ordinal);
        var vocab = text.Distinct().OrderBy(c => c).ToArray();
        var index = vocab.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        var ids = text.Select(c => index[c]).ToArray();
        int split = (int)(ids.Length * 0.9);
        var train = ids[..split];
        var valid = ids[split..];
        if (o.Fresh && Directory.Exists(o.Output))
            foreach (var f in Directory.GetFiles(o.Output, "*.safetensors").Concat(Directory.GetFiles(o.Output, "*.optimizer.dat"))) File.Delete(f);
        console.MarkupLine($"[bold]Mix distillation[/]: Attention → Hedgehog linear attention → Mamba-like linear_mamba on The Devil's Dictionary " +
                           $"({train.Length:N0} train / {valid.Length:N0} held-out characters, {vocab.Length} distinct); {o.BatchSize} × {o.Context} characters per step, " +
                           $"seed {o.Seed}, {Devices.Describe(device)}");

        int evalWindows = 64;
        var evalStarts = Enumerable.Range(0, evalWindows).Select(i => (long)i * (valid.Length - o.Context - 1) / evalWindows).ToArray();
        var (xVal, yVal) = Batch(valid, evalStarts, o.Context, device);
        double HeldOut(nn.Module<Tensor, Tensor> m) => Evaluate(m, xVal, yVal, vocab.Length);
        Tensor Inputs(int salt, int step)
        {
            var rng = new Random(HashCode.Combine(o.Seed, salt, step));
            var starts = Enumerable.Range(0, o.BatchSize).Select(_ => (long)rng.Next(train.Length - o.Context - 2)).ToArray();
            // One character longer than the context: cross-entropy stages predict characters 1..L from 0..L-1.
            var (x, y) = Batch(train, starts, o.Context + 1, device);
            y.Dispose();
            return x;
        }

        var scanBefore = (Mix.Runtime.SelectiveScan.DefaultAlgorithm, Mix.Runtime.SelectiveScan.DefaultChunkLength);
        Mix.Runtime.SelectiveScan.DefaultAlgorithm = Mix.Runtime.SelectiveScanAlgorithm.Sequential;
        var results = new List<DistillationResult>();
        var stages = new List<StageResult>();
        try
        {
            Devices.Seed(o.Seed);
            using var teacher = new CharAttention(new CharAttention.Options { VocabSize = vocab.Length, DModel = o.DModel, NLayer = o.Layers, HeadDim = o.HeadDim });
            teacher.to(device);
            var teacherWatch = Stopwatch.StartNew();
            var teacherStage = TrainFromScratch(teacher, "teacher", o.TeacherSteps, o, step => Inputs(1, step), HeldOut, console);
            stages.Add(teacherStage);
            results.Add(new DistillationResult("char_attention", "teacher, trained from scratch", Count(teacher), o.TeacherSteps, HeldOut(teacher) / Math.Log(2), teacherWatch.Elapsed.TotalSeconds));
            teacher.eval();

            var distiller = new Distiller
            {
                Teacher = teacher, Batch = step => Inputs(2, step), Validate = HeldOut, CheckpointDirectory = o.Output, Mode = o.Progress,
                Log = console.Profile.Out.Writer, Seed = o.Seed,
            };

            // Stage 1: surgery, then layer-wise attention transfer, then end to end.
            var watch1 = Stopwatch.StartNew();
            Devices.Seed(o.Seed);
            using var hedgehog = new CharHedgehog(new CharHedgehog.Options { VocabSize = vocab.Length, DModel = o.DModel, NLayer = o.Layers, HeadDim = o.HeadDim });
            hedgehog.to(device);
            var surgery1 = StudentSurgery.Stage1(teacher, hedgehog, teacherHeads: o.DModel / o.HeadDim);
            console.MarkupLine(Markup.Escape(o.ShowSurgery ? surgery1.ToString() : surgery1.ToString().Split('\n')[0]));
            double atInit = HeldOut(hedgehog) / Math.Log(2);
            console.MarkupLine($"stage 1 student right after the surgery (identity feature maps): {atInit:F3} bits/char held out");
            if (o.AttentionSteps > 0)
                stages.Add(distiller.AttentionTransfer(hedgehog, new DistillationStage { Name = "stage1-attention", Steps = o.AttentionSteps, LearningRate = 1e-2 }));
            if (o.Stage1Steps > 0)
                stages.Add(distiller.EndToEnd(hedgehog, new DistillationStage { Name = "stage1-end-to-end", Steps = o.Stage1Steps, LearningRate = 1e-3, Temperature = o.Temperature },
                    StudentSurgery.HedgehogMarker));
            results.Add(new DistillationResult("char_hedgehog", "stage 1: hedgehog_attention, distilled", Count(hedgehog), o.AttentionSteps + o.Stage1Steps,
                HeldOut(hedgehog) / Math.Log(2), watch1.Elapsed.TotalSeconds));

            // Stage 2: surgery from the stage-1 student, then end to end against the teacher.
            var watch2 = Stopwatch.StartNew();
            Devices.Seed(o.Seed);
            using var linearMamba = new CharLinearMamba(new CharLinearMamba.Options { VocabSize = vocab.Length, DModel = o.DModel, NLayer = o.Layers, HeadDim = o.HeadDim });
            linearMamba.to(device);
            var surgery2 = StudentSurgery.Stage2(hedgehog, linearMamba);
            console.MarkupLine(Markup.Escape(o.ShowSurgery ? surgery2.ToString() : surgery2.ToString().Split('\n')[0]));
            console.MarkupLine($"stage 2 student right after the surgery: {HeldOut(linearMamba) / Math.Log(2):F3} bits/char held out (stage 1 student: {results[^1].BitsPerChar:F3})");
            if (o.Stage2Steps > 0)
                stages.Add(distiller.EndToEnd(linearMamba, new DistillationStage { Name = "stage2-end-to-end", Steps = o.Stage2Steps, LearningRate = 1e-3, Temperature = o.Temperature },
                    StudentSurgery.LinearMambaMarker));
            results.Add(new DistillationResult("char_linear_mamba", "stage 2: linear_mamba, distilled", Count(linearMamba), o.Stage2Steps,
                HeldOut(linearMamba) / Math.Log(2), watch2.Elapsed.TotalSeconds));

            int baselineSteps = o.BaselineSteps > 0 ? o.BaselineSteps : o.AttentionSteps + o.Stage1Steps + o.Stage2Steps;
            foreach (var b in o.Baselines)
            {
                Devices.Seed(o.Seed);
                using nn.Module<Tensor, Tensor> model = b switch
                {
                    "mamba" => new CharMamba(new CharMamba.Options { VocabSize = vocab.Length, DModel = o.DModel, NLayer = o.Layers }),
                    "linear_mamba" => new CharLinearMamba(new CharLinearMamba.Options { VocabSize = vocab.Length, DModel = o.DModel, NLayer = o.Layers, HeadDim = o.HeadDim }),
                    _ => throw new ArgumentException($"Unknown baseline '{b}' (mamba, linear_mamba, none)."),
                };
                model.to(device);
                var w = Stopwatch.StartNew();
                stages.Add(TrainFromScratch(model, "scratch-" + b, baselineSteps, o, step => Inputs(1, step), HeldOut, console));
                results.Add(new DistillationResult(b == "mamba" ? "char_mamba" : "char_linear_mamba", "from scratch (cross-entropy)", Count(model), baselineSteps,
                    HeldOut(model) / Math.Log(2), w.Elapsed.TotalSeconds));
            }

            var table = new Table().Border(TableBorder.Rounded).Title("[bold]Attention → Mamba distillation[/], held out on The Devil's Dictionary");
            table.AddColumn("model");
            table.AddColumn("how");
            foreach (var h in new[] { "params", "steps", "bits/char", "perplexity/char", "time" }) table.AddColumn(new TableColumn(h).RightAligned());
            foreach (var r in results)
                table.AddRow(r.Model, r.How, r.Parameters.ToString("N0", CultureInfo.InvariantCulture), r.Steps.ToString(CultureInfo.InvariantCulture),
                    r.BitsPerChar.ToString("F3", CultureInfo.InvariantCulture), r.Perplexity.ToString("F2", CultureInfo.InvariantCulture), $"{r.Seconds:F1} s");
            console.Write(table);
            console.MarkupLine($"Checkpoints (a rerun resumes from them; --fresh starts over): {Markup.Escape(Path.GetFullPath(o.Output))}");
            return new DistillationRun(results, surgery1, surgery2, stages);
        }
        finally
        {
            (Mix.Runtime.SelectiveScan.DefaultAlgorithm, Mix.Runtime.SelectiveScan.DefaultChunkLength) = scanBefore;
            xVal.Dispose();
            yVal.Dispose();
        }
    }

    static long Count(nn.Module model) => model.parameters().Sum(p => p.numel());

    /// <summary>Cross-entropy training from scratch, with the distillation stages' checkpoint and resume rules (the
    /// teacher's checkpoint is what lets a rerun skip it).</summary>
    static StageResult TrainFromScratch(nn.Module<Tensor, Tensor> model, string name, int steps, DistillationOptions o, Func<int, Tensor> inputs,
        Func<nn.Module<Tensor, Tensor>, double> heldOut, IAnsiConsole console) =>
        new Distiller { Batch = inputs, Validate = heldOut, CheckpointDirectory = o.Output, Mode = o.Progress, Log = console.Profile.Out.Writer, Seed = o.Seed }
            .CrossEntropy(model, new DistillationStage { Name = name, Steps = steps, LearningRate = 3e-3, WeightDecay = 0.01 });

    static (Tensor X, Tensor Y) Batch(long[] ids, long[] starts, int context, Device device)
    {
        var x = new long[starts.Length * context];
        var y = new long[starts.Length * context];
        for (int b = 0; b < starts.Length; b++)
        {
            Array.Copy(ids, starts[b], x, b * context, context);
            Array.Copy(ids, starts[b] + 1, y, b * context, context);
        }
        return (torch.tensor(x, new long[] { starts.Length, context }, device: device), torch.tensor(y, new long[] { starts.Length, context }, device: device));
    }

    static double Evaluate(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, int vocab)
    {
        bool training = model.training;
        model.eval();
        using var g = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = model.call(x);
        var loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)).item<float>();
        if (training) model.train();
        return loss;
    }
}
