using System;
using System.IO;
using System.Linq;
using Mix.Examples.Distillation;
using Mix.Examples.Distillation.Models;
using Mix.Training;
using Mix.Training.Distillation;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Examples.Tests;

/// <summary>
/// The distillation loop (Mix.Training.Distillation.Distiller) on tiny models: the layer-wise stage trains only the
/// feature maps and lowers its loss, an interrupted stage resumes from its checkpoint (weights and optimizer) to the
/// weights of an uninterrupted run, a finished stage is loaded instead of retrained; and the example end to end in a
/// tiny configuration, whose rerun resumes every stage.
/// </summary>
public class DistillerTests
{
    const long Vocab = 11;

    static string TempDir() => Path.Combine(Path.GetTempPath(), "mix-distill-test-" + Guid.NewGuid().ToString("N"));

    static (CharAttention Teacher, CharHedgehog Student) Pair()
    {
        torch.manual_seed(1);
        var teacher = new CharAttention(new CharAttention.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, HeadDim = 4 });
        using (torch.no_grad())
            foreach (var (_, p) in teacher.named_parameters()) p.add_(torch.randn(p.shape) * 0.5);
        torch.manual_seed(2);
        var student = new CharHedgehog(new CharHedgehog.Options { VocabSize = Vocab, DModel = 16, NLayer = 2, HeadDim = 4 });
        StudentSurgery.Stage1(teacher, student);
        return (teacher, student);
    }

    static Tensor Batch(int step) => torch.randint(0, Vocab, new long[] { 4, 9 }, generator: new Generator((ulong)(100 + step)));

    [Fact]
    public void Attention_transfer_trains_only_the_feature_maps_and_lowers_its_loss()
    {
        var (teacher, student) = Pair();
        using var _t = teacher;
        using var _s = student;
        var before = student.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var result = new Distiller { Teacher = teacher, Batch = _ => Batch(0), Mode = ProgressMode.Quiet }
            .AttentionTransfer(student, new DistillationStage { Name = "at", Steps = 30, LearningRate = 3e-2 });
        Assert.True(result.History[^1].TrainLoss < result.History[0].TrainLoss - 0.01,
            string.Join(", ", result.History.Select(h => h.TrainLoss.ToString("F4"))));
        foreach (var (key, value) in student.state_dict())
        {
            bool moved = (value - before[key]).abs().max().item<float>() > 0;
            Assert.True(moved == key.Contains("feature_map"), $"{key} moved: {moved}");
        }
    }

    [Fact]
    public void An_interrupted_stage_resumes_to_the_weights_of_an_uninterrupted_run()
    {
        var straight = TempDir();
        var broken = TempDir();
        try
        {
            var stage = new DistillationStage { Name = "e2e", Steps = 6, LearningRate = 1e-2 };
            var (t1, s1) = Pair();
            new Distiller { Teacher = t1, Batch = Batch, CheckpointDirectory = straight, Mode = ProgressMode.Quiet, Seed = 3 }
                .EndToEnd(s1, stage, StudentSurgery.HedgehogMarker);

            var (t2, s2) = Pair();
            // Steps per epoch: 6 / 10 → 1, so every step is checkpointed; the batch of step 4 fails.
            var failing = new Distiller
            {
                Teacher = t2, Batch = s => s == 4 ? throw new IOException("disk gone") : Batch(s), CheckpointDirectory = broken,
                Mode = ProgressMode.Quiet, Seed = 3,
            };
            Assert.Throws<IOException>(() => failing.EndToEnd(s2, stage, StudentSurgery.HedgehogMarker));
            Assert.Equal(4, Distiller.SavedStep(Path.Combine(broken, "e2e.safetensors"), stage));

            var (t3, s3) = Pair();
            var resumed = new Distiller { Teacher = t3, Batch = Batch, CheckpointDirectory = broken, Mode = ProgressMode.Quiet, Seed = 3 }
                .EndToEnd(s3, stage, StudentSurgery.HedgehogMarker);
            Assert.Equal(4, resumed.ResumedFrom);
            Assert.Equal(2, resumed.Steps);
            var expected = s1.state_dict();
            foreach (var (key, value) in s3.state_dict())
                Assert.True((value - expected[key]).abs().max().item<float>() < 1e-6, key);

            // Finished: a fourth run loads the checkpoint and trains nothing.
            var (t4, s4) = Pair();
            var done = new Distiller { Teacher = t4, Batch = _ => throw new InvalidOperationException("no batch needed"), CheckpointDirectory = broken, Mode = ProgressMode.Quiet }
                .EndToEnd(s4, stage, StudentSurgery.HedgehogMarker);
            Assert.Equal(0, done.Steps);
            Assert.True((s4.state_dict()["lm_head.weight"] - expected["lm_head.weight"]).abs().max().item<float>() < 1e-6);
            var other = Assert.Throws<InvalidOperationException>(() => Distiller.SavedStep(Path.Combine(broken, "e2e.safetensors"), stage with { Steps = 8 }));
            Assert.Contains("6 steps", other.Message);
            foreach (var m in new nn.Module[] { t1, s1, t2, s2, t3, s3, t4, s4 }) m.Dispose();
        }
        finally
        {
            foreach (var d in new[] { straight, broken }) if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    [Fact]
    public void The_example_distils_both_students_and_a_rerun_resumes_every_stage()
    {
        var dir = TempDir();
        var (console, text) = QuickstartTests.PlainConsole();
        try
        {
            var options = new DistillationOptions
            {
                TeacherSteps = 20, AttentionSteps = 5, Stage1Steps = 5, Stage2Steps = 5, Baselines = new[] { "mamba", "linear_mamba" }, BaselineSteps = 5,
                DModel = 32, Context = 32, BatchSize = 8, Output = dir, Cpu = true, Progress = ProgressMode.Quiet,
            };
            var run = DistillationApp.Run(options, console);
            Assert.Equal(new[] { "char_attention", "char_hedgehog", "char_linear_mamba", "char_mamba", "char_linear_mamba" }, run.Results.Select(r => r.Model));
            Assert.All(run.Results, r => Assert.True(double.IsFinite(r.BitsPerChar) && r.BitsPerChar < Math.Log2(84), $"{r}\n{text}"));
            Assert.Equal(4, run.Stage1Surgery.New.Count);
            Assert.Equal(10, run.Stage2Surgery.New.Count);
            var output = text.ToString();
            Assert.Contains("stage 2 student right after the surgery", output);
            Assert.Contains("perplexity/char", output);
            Assert.True(File.Exists(Path.Combine(dir, "stage2-end-to-end.safetensors")));

            var again = DistillationApp.Run(options, QuickstartTests.PlainConsole().Console);
            Assert.All(again.Stages, s => Assert.Equal(0, s.Steps));
            Assert.Equal(run.Results.Select(r => Math.Round(r.BitsPerChar, 4)), again.Results.Select(r => Math.Round(r.BitsPerChar, 4)));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
