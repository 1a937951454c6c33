using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Examples.Distillation.Models;
using Mix.Runtime.Checkpoints;
using Mix.Training.Distillation;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Examples.Tests;

/// <summary>
/// The weight surgery of the Attention-to-Mamba recipe (Mix.Training.Distillation.StudentSurgery): keys and shapes of
/// both stages and their reports, the fused GPT-NeoX and grouped Llama layouts, the stage-1 student with an
/// identity feature map computing the teacher's linear-attention limit by hand, the C# attention maps against the
/// mixers, and the stage-2 student starting as the stage-1 one.
/// </summary>
public class DistillationSurgeryTests
{
    const long Vocab = 11;

    static CharAttention Teacher(long dModel = 16, long headDim = 4, long layers = 2)
    {
        torch.manual_seed(1);
        return new CharAttention(new CharAttention.Options { VocabSize = Vocab, DModel = dModel, NLayer = layers, HeadDim = headDim });
    }

    static CharHedgehog Hedgehog(long dModel = 16, long headDim = 4, long layers = 2, bool linear = false)
    {
        torch.manual_seed(2);
        return new CharHedgehog(new CharHedgehog.Options { VocabSize = Vocab, DModel = dModel, NLayer = layers, HeadDim = headDim, LinearFeatures = linear });
    }

    static CharLinearMamba LinearMamba(long dModel = 16, long headDim = 4, long layers = 2)
    {
        torch.manual_seed(3);
        return new CharLinearMamba(new CharLinearMamba.Options { VocabSize = Vocab, DModel = dModel, NLayer = layers, HeadDim = headDim });
    }

    static nn.Module<Tensor, Tensor> Mixer(nn.Module model, string path) =>
        (nn.Module<Tensor, Tensor>)model.named_modules().Single(m => m.name == path).module;

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void Stage1_copies_the_teacher_and_lists_every_tensor()
    {
        using var teacher = Teacher();
        using var student = Hedgehog();
        var report = StudentSurgery.Stage1(teacher, student, teacherHeads: 4);
        var keys = student.state_dict().Keys.ToList();
        Assert.Equal(keys.Count, report.Count);
        Assert.Equal(keys.OrderBy(k => k), report.Mapped.Select(m => m.Key).Concat(report.New.Select(n => n.Key)).OrderBy(k => k));
        Assert.Equal(new[]
        {
            "backbone.layers.0.mixer.feature_map_q", "backbone.layers.0.mixer.feature_map_k",
            "backbone.layers.1.mixer.feature_map_q", "backbone.layers.1.mixer.feature_map_k",
        }.OrderBy(k => k), report.New.Select(n => n.Key).OrderBy(k => k));
        Assert.All(report.New, n => Assert.Equal(new long[] { 4, 4, 4 }, n.Shape));
        Assert.Empty(report.Unused);
        var qkv = report.Mapped.Single(m => m.Key == "backbone.layers.1.mixer.qkv.weight");
        Assert.Equal(new long[] { 48, 16 }, qkv.Shape);
        Assert.Contains("backbone.layers.1.mixer.qkv.weight rows 16..31", qkv.Source);
        var t = teacher.state_dict();
        foreach (var (key, value) in student.state_dict().Where(kv => !kv.Key.Contains("feature_map")))
            Assert.Equal(0.0, MaxDiff(value, t[key]));
        var fm = student.state_dict()["backbone.layers.0.mixer.feature_map_k"];
        Assert.Equal(0.0, MaxDiff(fm, torch.eye(4).expand(4, 4, 4)));
        var text = report.ToString();
        Assert.Contains("4 new", text);
        Assert.Contains("new    backbone.layers.0.mixer.feature_map_q [4, 4, 4]: identity per head", text);
    }

    [Fact]
    public void Stage2_maps_x_B_C_from_v_k_q_and_lists_the_new_tensors()
    {
        using var stage1 = Hedgehog();
        using (torch.no_grad())
            foreach (var (_, w) in stage1.named_parameters()) w.add_(torch.randn(w.shape) * 0.1);
        using var student = LinearMamba();
        var report = StudentSurgery.Stage2(stage1, student);
        var s1 = stage1.state_dict();
        var s2 = student.state_dict();
        const string p = "backbone.layers.0.mixer.";
        var inProj = s2[p + "in_proj.weight"];
        Assert.Equal(new long[] { 3 * 16 + 4, 16 }, inProj.shape);
        var qkv = s1[p + "qkv.weight"];
        Assert.Equal(0.0, MaxDiff(inProj.narrow(0, 0, 16), qkv.narrow(0, 32, 16)));   // x ← v
        Assert.Equal(0.0, MaxDiff(inProj.narrow(0, 16, 16), qkv.narrow(0, 16, 16)));  // B ← k
        Assert.Equal(0.0, MaxDiff(inProj.narrow(0, 32, 16), qkv.narrow(0, 0, 16)));   // C ← q
        Assert.Equal(0.0, inProj.narrow(0, 48, 4).abs().max().item<float>());          // dt rows
        Assert.Equal(0.0, MaxDiff(s2[p + "out_proj.weight"], s1[p + "proj.weight"]));
        Assert.Equal(0.0, MaxDiff(s2[p + "feature_map_b"], s1[p + "feature_map_k"]));
        Assert.Equal(0.0, MaxDiff(s2[p + "feature_map_c"], s1[p + "feature_map_q"]));
        var conv = s2[p + "conv1d.weight"];
        Assert.Equal(new long[] { 48, 1, 4 }, conv.shape);
        Assert.Equal(48.0, conv.sum().item<float>());
        Assert.Equal(48.0, conv.select(2, 3).sum().item<float>());
        Assert.Equal(Math.Log(Math.E - 1), s2[p + "dt_bias"][0].item<float>(), 5);
        Assert.Equal(Math.Log(1e-4), s2[p + "A_log"][0].item<float>(), 4);
        var newKeys = new[] { "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D" };
        Assert.Equal(new[] { 0, 1 }.SelectMany(l => newKeys.Select(k => $"backbone.layers.{l}.mixer.{k}")).OrderBy(k => k),
            report.New.Select(n => n.Key).OrderBy(k => k));
        Assert.Equal(s2.Count, report.Count);
        Assert.Empty(report.Unused);
        Assert.Contains(report.Mapped, m => m.Key == "lm_head.weight" && m.Rule == "copied");
    }

    [Fact]
    public void The_stage2_student_starts_as_the_stage1_student()
    {
        using var _ = torch.no_grad();
        using var stage1 = Hedgehog();
        foreach (var (_, p) in stage1.named_parameters()) p.add_(torch.randn(p.shape) * 0.1);
        using var student = LinearMamba();
        // Decay 1e-12: exactly no decay in float32; the recipe's default 1e-4 forgets a little (checked below).
        StudentSurgery.Stage2(stage1, student, new Stage2Init { DecayRate = 1e-12 });
        stage1.eval();
        student.eval();
        var ids = torch.randint(0, Vocab, new long[] { 2, 10 });
        var expected = stage1.call(ids);
        Assert.True(MaxDiff(student.call(ids), expected) < 1e-4, "stage 2 at init vs stage 1");
        using var decaying = LinearMamba();
        StudentSurgery.Stage2(stage1, decaying);
        var d = MaxDiff(decaying.call(ids), expected);
        Assert.True(d > 0 && d < 1e-2, $"with A = -1e-4 the outputs differ by {d}");
    }

    [Fact]
    public void An_identity_feature_map_gives_the_teachers_linear_attention_limit_by_hand()
    {
        using var _ = torch.no_grad();
        // One head of 2: q = k = v = x and proj = I, so the mixer outputs the attention-weighted inputs.
        using var teacher = Teacher(dModel: 2, headDim: 2, layers: 1);
        const string p = "backbone.layers.0.mixer.";
        var t = teacher.state_dict();
        t[p + "qkv.weight"].copy_(torch.cat(new[] { torch.eye(2), torch.eye(2), torch.eye(2) }));
        t[p + "proj.weight"].copy_(torch.eye(2));
        using var student = Hedgehog(dModel: 2, headDim: 2, layers: 1, linear: true);
        StudentSurgery.Stage1(teacher, student);
        var x = torch.tensor(new float[] { 1, 0, 1, 1 }, new long[] { 1, 2, 2 });
        // y_0 = v_0; y_1 = (q1·k0 v0 + q1·k1 v1) / (q1·k0 + q1·k1) = (1·[1, 0] + 2·[1, 1]) / 3.
        var y = Mixer(student, "backbone.layers.0.mixer").call(x);
        Assert.True(MaxDiff(y, torch.tensor(new float[] { 1, 0, 1, 2f / 3 }, new long[] { 1, 2, 2 })) < 1e-5, string.Join(", ", y.data<float>().ToArray()));
        var linear = AttentionMaps.Hedgehog(x, t[p + "qkv.weight"], null, torch.eye(2).unsqueeze(0), torch.eye(2).unsqueeze(0), linearFeatures: true);
        Assert.True(MaxDiff(linear, torch.tensor(new float[] { 1, 0, 1f / 3, 2f / 3 }, new long[] { 1, 1, 2, 2 })) < 1e-5);
        // The teacher's own weights: softmax([1, 2] / √2) on row 1, what exp(s) ≈ 1 + s linearises.
        var softmax = AttentionMaps.Softmax(x, t[p + "qkv.weight"], null, 1);
        double e = Math.Exp(1 / Math.Sqrt(2));
        Assert.Equal(1 / (1 + e), softmax[0, 0, 1, 0].item<float>(), 5);
        var teacherOut = Mixer(teacher, "backbone.layers.0.mixer").call(x);
        Assert.True(MaxDiff(teacherOut.select(1, 1), torch.tensor(new float[] { 1, (float)(e / (1 + e)) }).unsqueeze(0)) < 1e-5);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_attention_maps_times_the_values_are_the_mixers_outputs(bool hedgehog)
    {
        using var _ = torch.no_grad();
        using nn.Module model = hedgehog ? Hedgehog() : Teacher();
        foreach (var (_, prm) in model.named_parameters()) prm.add_(torch.randn(prm.shape) * 0.3);
        const string p = "backbone.layers.1.mixer.";
        var w = model.state_dict();
        var x = torch.randn(2, 7, 16);
        var maps = hedgehog
            ? AttentionMaps.Hedgehog(x, w[p + "qkv.weight"], null, w[p + "feature_map_q"], w[p + "feature_map_k"])
            : AttentionMaps.Softmax(x, w[p + "qkv.weight"], null, 4);
        // Rows sum to 1 (Hedgehog's: s / (s + eps), eps = 1e-6 against scores of 1e-3 and up here).
        Assert.True(MaxDiff(maps.sum(-1), torch.ones(2, 4, 7)) < (hedgehog ? 1e-3 : 1e-5));
        Assert.Equal(0.0, maps.triu(1).abs().max().item<float>());
        var v = nn.functional.linear(x, w[p + "qkv.weight"]).chunk(3, -1)[2].reshape(2, 7, 4, 4).transpose(1, 2);
        var expected = nn.functional.linear(torch.matmul(maps, v).transpose(1, 2).reshape(2, 7, 16), w[p + "proj.weight"]);
        var actual = Mixer(model, "backbone.layers.1.mixer").call(x);
        Assert.True(MaxDiff(actual, expected) < 1e-5 * Math.Max(1, expected.abs().max().item<float>()), $"{MaxDiff(actual, expected)} of {expected.abs().max().item<float>()}");
    }

    [Fact]
    public void GptNeoX_fused_query_key_value_is_split_per_head()
    {
        using var _ = torch.no_grad();
        // Row r of query_key_value holds r everywhere: head h's q, k, v are rows h·12 + [0..3], [4..7], [8..11].
        var tensors = new Dictionary<string, Tensor>
        {
            ["gpt_neox.layers.0.attention.query_key_value.weight"] = torch.arange(48, dtype: ScalarType.Float32).unsqueeze(1).expand(48, 16).contiguous(),
            ["gpt_neox.layers.0.attention.query_key_value.bias"] = torch.arange(48, dtype: ScalarType.Float32),
            ["gpt_neox.layers.0.attention.dense.weight"] = torch.randn(16, 16),
            ["gpt_neox.layers.0.attention.dense.bias"] = torch.randn(16),
            ["gpt_neox.layers.0.attention.rotary_emb.inv_freq"] = torch.ones(2),
        };
        var dir = Path.Combine(Path.GetTempPath(), "mix-neox-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var path = Path.Combine(dir, "model.safetensors");
            SafeTensors.Save(path, tensors.Select(kv => (kv.Key, kv.Value)));
            var a = AttentionWeights.FromGptNeoX(AttentionWeights.ReadSafeTensors(path), "gpt_neox.layers.0.attention.", heads: 4);
            Assert.Equal(4, a.HeadDim);
            var rows = Enumerable.Range(0, 4).SelectMany(h => Enumerable.Range(0, 4).Select(i => (float)(h * 12 + i))).ToArray();
            Assert.Equal(rows, a.Q.select(1, 0).data<float>().ToArray());
            Assert.Equal(rows.Select(r => r + 4), a.K.select(1, 5).data<float>().ToArray());
            Assert.Equal(rows.Select(r => r + 8), a.VBias!.data<float>().ToArray());

            // A student without biases is refused, naming the flag.
            torch.manual_seed(4);
            using var plain = new CharHedgehog(new CharHedgehog.Options { VocabSize = Vocab, DModel = 16, NLayer = 1, HeadDim = 4 });
            var error = Assert.Throws<ArgumentException>(() => StudentSurgery.Stage1(a, plain, "backbone.layers.0.mixer."));
            Assert.Contains("qkv_bias = true", error.Message);

            // One with biases takes the block; the report lists the mixer's tensors only, rotary_emb is not read.
            using var student = new CharHedgehog(new CharHedgehog.Options { VocabSize = Vocab, DModel = 16, NLayer = 1, HeadDim = 4, Bias = true });
            var report = StudentSurgery.Stage1(a, student, "backbone.layers.0.mixer.");
            Assert.Equal(new[] { "qkv.weight", "qkv.bias", "proj.weight", "proj.bias" }.Select(k => "backbone.layers.0.mixer." + k).OrderBy(k => k),
                report.Mapped.Select(m => m.Key).OrderBy(k => k));
            Assert.Equal(2, report.New.Count);
            var qkvBias = student.state_dict()["backbone.layers.0.mixer.qkv.bias"];
            Assert.Equal(rows.Concat(rows.Select(r => r + 4)).Concat(rows.Select(r => r + 8)), qkvBias.data<float>().ToArray());

            // Stage 2 carries the biases into in_proj as [v | k | q | 0 for dt].
            torch.manual_seed(5);
            using var mamba = new CharLinearMamba(new CharLinearMamba.Options { VocabSize = Vocab, DModel = 16, NLayer = 1, HeadDim = 4, Bias = true });
            var report2 = StudentSurgery.Stage2(student, mamba);
            var inBias = mamba.state_dict()["backbone.layers.0.mixer.in_proj.bias"].data<float>().ToArray();
            Assert.Equal(rows.Select(r => r + 8).Concat(rows.Select(r => r + 4)).Concat(rows).Concat(new float[4]), inBias);
            Assert.Contains(report2.Mapped, m => m.Key == "backbone.layers.0.mixer.out_proj.bias" && m.Source == "backbone.layers.0.mixer.proj.bias");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Llama_projections_with_grouped_keys_map_into_a_hedgehog_mixer()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(6);
        var tensors = new Dictionary<string, Tensor>
        {
            ["model.layers.0.self_attn.q_proj.weight"] = torch.randn(16, 16),
            ["model.layers.0.self_attn.k_proj.weight"] = torch.randn(8, 16),
            ["model.layers.0.self_attn.v_proj.weight"] = torch.randn(8, 16),
            ["model.layers.0.self_attn.o_proj.weight"] = torch.randn(16, 16),
        };
        var a = AttentionWeights.FromLlama(tensors, "model.layers.0.self_attn.", heads: 4, kvHeads: 2);
        // Query heads 0 and 1 read key head 0, heads 2 and 3 key head 1.
        var k = tensors["model.layers.0.self_attn.k_proj.weight"];
        Assert.Equal(0.0, MaxDiff(a.K.narrow(0, 4, 4), k.narrow(0, 0, 4)));
        Assert.Equal(0.0, MaxDiff(a.K.narrow(0, 8, 4), k.narrow(0, 4, 4)));
        using var student = Hedgehog(layers: 1);
        var before = student.state_dict()["backbone.embeddings.weight"].clone();
        var report = StudentSurgery.Stage1(a, student, "backbone.layers.0.mixer.");
        Assert.Equal(new[] { "backbone.layers.0.mixer.qkv.weight", "backbone.layers.0.mixer.proj.weight" }, report.Mapped.Select(m => m.Key));
        Assert.Equal(new[] { "backbone.layers.0.mixer.feature_map_q", "backbone.layers.0.mixer.feature_map_k" }, report.New.Select(n => n.Key));
        Assert.Contains("repeated for 2 query heads", report.Mapped[0].Source);
        var s = student.state_dict();
        Assert.Equal(0.0, MaxDiff(s["backbone.layers.0.mixer.qkv.weight"].narrow(0, 0, 16), tensors["model.layers.0.self_attn.q_proj.weight"]));
        Assert.Equal(0.0, MaxDiff(s["backbone.layers.0.mixer.proj.weight"], tensors["model.layers.0.self_attn.o_proj.weight"]));
        Assert.Equal(0.0, MaxDiff(s["backbone.embeddings.weight"], before));
        var missing = Assert.Throws<KeyNotFoundException>(() => AttentionWeights.FromLlama(tensors, "model.layers.1.self_attn.", 4, 2));
        Assert.Contains("model.layers.1.self_attn.q_proj.weight", missing.Message);
    }

    [Fact]
    public void A_student_of_another_width_is_refused_before_anything_changes()
    {
        using var teacher = Teacher();
        using var student = Hedgehog(dModel: 16, headDim: 8);
        var before = student.state_dict()["lm_head.weight"].clone();
        var e = Assert.Throws<ArgumentException>(() => StudentSurgery.Stage1(teacher, student, teacherHeads: 4));
        Assert.Contains("heads", e.Message);
        Assert.Equal(0.0, MaxDiff(student.state_dict()["lm_head.weight"], before));
    }
}
