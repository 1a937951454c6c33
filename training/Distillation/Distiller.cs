using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>Settings of one distillation stage.</summary>
public sealed record DistillationStage
{
    /// <summary>Its name: the progress bar's title and the checkpoint's file name (<c>&lt;name&gt;.safetensors</c>).</summary>
    public string Name { get; init; } = "stage";
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 100;
    /// <summary>Peak learning rate of AdamW (linear warm-up over the first epoch, cosine decay to 5 %).</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; }
    /// <summary>End to end: the logit-KL temperature.</summary>
    public double Temperature { get; init; } = 2.0;
    /// <summary>Layer-wise: weight of the attention-map cross-entropy.</summary>
    public double AttentionWeight { get; init; } = 1.0;
    /// <summary>Weight of the per-layer hidden-state alignment (MSE + (1 − cosine) of the mixer outputs).</summary>
    public double HiddenWeight { get; init; } = 1.0;
    /// <summary>End to end: weight of the logit KL.</summary>
    public double LogitWeight { get; init; } = 1.0;
}

/// <summary>What a stage did: steps run now, the step it resumed from (0: a fresh start), per-epoch history (train
/// loss = the distillation loss, val loss = <see cref="Distiller.Validate"/>'s), seconds, and its checkpoint.</summary>
public sealed record StageResult(string Name, int Steps, int ResumedFrom, IReadOnlyList<EpochStats> History, double Seconds, string? Checkpoint);

/// <summary>
/// The training side of the Attention-to-Mamba recipe. <see cref="AttentionTransfer"/> is stage 1's layer-wise step
/// (Hedgehog's): every <c>hedgehog_attention</c> mixer of the student reads the teacher's input to that layer and learns
/// only its feature maps, so that its attention weights match the teacher's softmax weights (soft cross-entropy) and
/// its output the teacher mixer's (MSE + cosine). <see cref="EndToEnd"/> trains the whole student on the teacher's
/// logits (KL at a temperature) plus the same per-layer hidden-state alignment; it ends stage 1 and is stage 2.
/// Both run under <see cref="TrainLoop"/>'s progress bar, validate after each epoch, and, with a
/// <see cref="CheckpointDirectory"/>, save the student (safetensors, the step in its metadata) and the optimizer after
/// each epoch, and resume from them: a stage whose checkpoint says it finished is loaded and skipped, an unfinished
/// one continues at its step with its optimizer state. Batches come from <see cref="Batch"/> by step number, so a
/// resumed run sees the batches an uninterrupted one would.
/// </summary>
public sealed class Distiller
{
    /// <summary>The teacher (kept in eval mode, never trained); only <see cref="CrossEntropy"/> runs without one.</summary>
    public nn.Module<Tensor, Tensor>? Teacher { get; init; }
    /// <summary>Token ids <c>long[B, L]</c> for a global step; must depend on the step alone (resume).</summary>
    public required Func<int, Tensor> Batch { get; init; }
    /// <summary>Held-out loss of a model after each epoch (nats per token), or null.</summary>
    public Func<nn.Module<Tensor, Tensor>, double>? Validate { get; init; }
    /// <summary>Where checkpoints go (null: none, no resume).</summary>
    public string? CheckpointDirectory { get; init; }
    /// <summary>How progress shows.</summary>
    public ProgressMode Mode { get; init; } = ProgressMode.Auto;
    /// <summary>Where line progress goes.</summary>
    public TextWriter? Log { get; init; }
    /// <summary>Fresh-start seed of a stage (before its first step).</summary>
    public int Seed { get; init; }

    /// <summary>Stage 1, layer-wise: trains only the feature maps of the student's <c>hedgehog_attention</c> mixers
    /// (their q, k, v and output projections are the teacher's and stay frozen), each on the teacher's input to its
    /// layer, to match the teacher's attention weights and mixer output.</summary>
    public StageResult AttentionTransfer(nn.Module<Tensor, Tensor> student, DistillationStage stage)
    {
        var teacher = TeacherOrThrow();
        var paths = MixerCapture.MixerPaths(student, StudentSurgery.HedgehogMarker);
        if (paths.Count == 0) throw new ArgumentException("The student has no hedgehog_attention mixer.");
        var mixers = student.named_modules().ToDictionary(m => m.name, m => m.module);
        var teacherWeights = teacher.state_dict();
        var trainable = student.named_parameters()
            .Where(p => p.name.EndsWith(".feature_map_q", StringComparison.Ordinal) || p.name.EndsWith(".feature_map_k", StringComparison.Ordinal))
            .Select(p => p.parameter).ToList();
        using var capture = new MixerCapture(teacher, paths);
        return Run(student, stage, trainable, ids =>
        {
            capture.Clear();
            using (torch.no_grad()) teacher.call(ids);
            Tensor loss = torch.zeros(1, device: ids.device);
            for (int i = 0; i < paths.Count; i++)
            {
                var p = paths[i] + ".";
                var x = capture.Input(i);
                var mixer = (nn.Module<Tensor, Tensor>)mixers[paths[i]];
                var sWeights = student.named_parameters().Where(n => n.name.StartsWith(p, StringComparison.Ordinal))
                    .ToDictionary(n => n.name[p.Length..], n => (Tensor)n.parameter);
                int heads = (int)sWeights["feature_map_q"].shape[0];
                Tensor tMap;
                using (torch.no_grad()) tMap = AttentionMaps.Softmax(x, teacherWeights[p + "qkv.weight"], teacherWeights.GetValueOrDefault(p + "qkv.bias"), heads);
                var sMap = AttentionMaps.Hedgehog(x, sWeights["qkv.weight"], sWeights.GetValueOrDefault("qkv.bias"), sWeights["feature_map_q"], sWeights["feature_map_k"]);
                loss = loss + stage.AttentionWeight * DistillationLosses.AttentionCrossEntropy(tMap, sMap);
                if (stage.HiddenWeight > 0)
                {
                    var y = mixer.call(x);
                    var target = capture.Output(i);
                    loss = loss + stage.HiddenWeight * (DistillationLosses.HiddenMse(target, y) + DistillationLosses.HiddenCosine(target, y));
                }
            }
            return (loss / paths.Count).squeeze();
        });
    }

    /// <summary>End to end (end of stage 1, and stage 2): trains every parameter of the student on
    /// <see cref="DistillationLosses.LogitKl"/> against the teacher at the stage's temperature, plus the hidden-state
    /// alignment of each student mixer (keys ending in <paramref name="marker"/>: <c>feature_map_q</c> for
    /// hedgehog_attention, <c>feature_map_b</c> for linear_mamba) with the teacher's mixer at the same path.</summary>
    public StageResult EndToEnd(nn.Module<Tensor, Tensor> student, DistillationStage stage, string marker)
    {
        var teacher = TeacherOrThrow();
        var paths = stage.HiddenWeight > 0 ? MixerCapture.MixerPaths(student, marker) : Array.Empty<string>();
        using var studentCapture = new MixerCapture(student, paths);
        using var teacherCapture = new MixerCapture(teacher, paths);
        return Run(student, stage, student.parameters().Where(p => p.requires_grad).ToList(), ids =>
        {
            studentCapture.Clear();
            teacherCapture.Clear();
            Tensor teacherLogits;
            using (torch.no_grad()) teacherLogits = teacher.call(ids);
            var logits = student.call(ids);
            var loss = stage.LogitWeight * DistillationLosses.LogitKl(teacherLogits, logits, stage.Temperature);
            for (int i = 0; i < paths.Count; i++)
            {
                var target = teacherCapture.Output(i);
                var y = studentCapture.Output(i);
                loss = loss + stage.HiddenWeight / paths.Count * (DistillationLosses.HiddenMse(target, y) + DistillationLosses.HiddenCosine(target, y));
            }
            return loss;
        });
    }

    /// <summary>Plain language-model training, for baselines and the teacher: next-token cross-entropy on
    /// <see cref="Batch"/>'s ids (positions 0..L−2 predict 1..L−1), with the same progress, checkpoints and resume.</summary>
    public StageResult CrossEntropy(nn.Module<Tensor, Tensor> model, DistillationStage stage) =>
        Run(model, stage, model.parameters().Where(p => p.requires_grad).ToList(), ids =>
        {
            long L = ids.shape[1];
            var logits = model.call(ids.narrow(1, 0, L - 1));
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), ids.narrow(1, 1, L - 1).reshape(-1));
        });

    nn.Module<Tensor, Tensor> TeacherOrThrow() =>
        Teacher ?? throw new InvalidOperationException("Distillation needs a Teacher.");

    StageResult Run(nn.Module<Tensor, Tensor> student, DistillationStage stage, IList<TorchSharp.Modules.Parameter> parameters, Func<Tensor, Tensor> lossOf)
    {
        if (stage.Steps <= 0) throw new ArgumentOutOfRangeException(nameof(stage), $"Stage '{stage.Name}' needs at least one step.");
        if (Teacher is not null && !ReferenceEquals(Teacher, student)) Teacher.eval();
        int stepsPerEpoch = StepsPerEpoch(stage.Steps);
        string? weightsPath = CheckpointDirectory is null ? null : Path.Combine(CheckpointDirectory, stage.Name + ".safetensors");
        string? optimizerPath = weightsPath is null ? null : Path.ChangeExtension(weightsPath, ".optimizer.dat");
        using var optimizer = torch.optim.AdamW(parameters, lr: stage.LearningRate, weight_decay: stage.WeightDecay);
        int start = 0;
        if (weightsPath is not null && File.Exists(weightsPath))
        {
            start = SavedStep(weightsPath, stage);
            CheckpointLoader.Load(student, weightsPath);
            if (start < stage.Steps && optimizerPath is not null && File.Exists(optimizerPath)) optimizer.load_state_dict(optimizerPath);
        }
        else torch.manual_seed(Seed);
        var watch = Stopwatch.StartNew();
        var history = new List<EpochStats>();
        if (start < stage.Steps)
        {
            history = new TrainLoop
            {
                Title = start == 0 ? stage.Name : $"{stage.Name} (resumed at step {start})",
                Epochs = (stage.Steps - start) / stepsPerEpoch, StepsPerEpoch = stepsPerEpoch, Unit = "tok", Mode = Mode, Log = Log,
            }.Run((epoch, s) =>
            {
                int global = start + epoch * stepsPerEpoch + s;
                Classifier.SetLearningRate(optimizer, Classifier.Schedule(stage.LearningRate, global, stepsPerEpoch, stage.Steps));
                student.train();
                using var scope = torch.NewDisposeScope();
                var ids = Batch(global);
                optimizer.zero_grad();
                var loss = lossOf(ids);
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                return new StepResult(loss.item<float>(), ids.numel());
            }, epoch =>
            {
                int done = start + (epoch + 1) * stepsPerEpoch;
                if (weightsPath is not null)
                {
                    Directory.CreateDirectory(CheckpointDirectory!);
                    CheckpointLoader.Save(student, weightsPath, new Dictionary<string, string>
                    {
                        ["stage"] = stage.Name,
                        ["step"] = done.ToString(CultureInfo.InvariantCulture),
                        ["steps"] = stage.Steps.ToString(CultureInfo.InvariantCulture),
                    });
                    optimizer.save_state_dict(optimizerPath!);
                }
                double val = Validate is null ? double.NaN : Validate(student);
                return new EvalResult(val, null);
            });
        }
        return new StageResult(stage.Name, stage.Steps - start, start, history, watch.Elapsed.TotalSeconds, weightsPath);
    }

    /// <summary>The step a stage checkpoint was saved at (its metadata), checked against the stage.</summary>
    public static int SavedStep(string path, DistillationStage stage)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("stage", out var name) || name != stage.Name || !file.Metadata.TryGetValue("step", out var step)
            || !file.Metadata.TryGetValue("steps", out var steps))
            throw new InvalidOperationException($"'{path}' is not a checkpoint of stage '{stage.Name}' (its metadata has no matching stage, step, steps).");
        if (int.Parse(steps, CultureInfo.InvariantCulture) != stage.Steps)
            throw new InvalidOperationException($"'{path}' was saved by a run of {steps} steps; this stage has {stage.Steps}: delete it or run the same steps.");
        return int.Parse(step, CultureInfo.InvariantCulture);
    }

    /// <summary>About a tenth of the steps per epoch (an epoch ends with validation and a checkpoint), dividing them.</summary>
    public static int StepsPerEpoch(int steps)
    {
        int per = Math.Max(1, steps / 10);
        while (steps % per != 0) per--;
        return per;
    }
}
