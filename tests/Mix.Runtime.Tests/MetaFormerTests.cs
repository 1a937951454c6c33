using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Builtins;
using Mix.Zoo;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The zoo's generated MetaFormers (models/metaformer.mix and the files aliasing it) against timm: every state-dict key
/// and shape of timm's <c>poolformer_s12</c>, <c>convformer_s18</c>, <c>caformer_s18</c> and sail-sg's
/// <c>identityformer_s12</c>, <c>randformer_s12</c> (Expected/*.keys.txt, written by gen_metaformer_keys.py from timm),
/// the reference parameter counts, and forward / backward / training behaviour of a small CAFormer-shaped model.
/// </summary>
public class MetaFormerTests
{
    private static void AssertMatchesExpected(Func<nn.Module> build, string file, double referenceMillions)
    {
        using var noGrad = torch.no_grad();
        using var model = build();
        var expected = TestUtil.ExpectedLines(file);
        var actual = TestUtil.KeyLines(model);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);

        long expectedCount = expected.Sum(l => l[(l.IndexOf('[') + 1)..^1].Split(',')
            .Aggregate(1L, (a, s) => a * long.Parse(s, System.Globalization.CultureInfo.InvariantCulture)));
        long count = TestUtil.ParameterCount(model) + model.buffers().Sum(b => b.numel());
        Assert.Equal(expectedCount, count);
        Assert.InRange(count / 1e6, referenceMillions * 0.995, referenceMillions * 1.005);
    }

    // Reference parameter counts: timm's model cards / the MetaFormer papers.
    [Fact] public void PoolFormerS12MatchesTimmKeysAndCount() => AssertMatchesExpected(() => new PoolformerS12(), "poolformer_s12.keys.txt", 11.9);
    [Fact] public void ConvFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => new ConvformerS18(), "convformer_s18.keys.txt", 26.8);
    [Fact] public void CAFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => new CaformerS18(), "caformer_s18.keys.txt", 26.3);
    [Fact] public void IdentityFormerS12KeysAndCount() => AssertMatchesExpected(() => new IdentityformerS12(), "identityformer_s12.keys.txt", 11.9);
    // RandFormer-S12: 11.9 M trainable + 0.2 M frozen random-matrix entries (196² + 49²).
    [Fact] public void RandFormerS12KeysAndCount() => AssertMatchesExpected(() => new RandformerS12(), "randformer_s12.keys.txt", 12.13);

    [Fact]
    public void DeeperPoolFormersScale()
    {
        using var noGrad = torch.no_grad();
        using var s24 = new PoolformerS24();
        using var s36 = new PoolformerS36();
        Assert.InRange(TestUtil.ParameterCount(s24) / 1e6, 21.3, 21.5);
        Assert.InRange(TestUtil.ParameterCount(s36) / 1e6, 30.8, 31.0);
        Assert.Contains("stages.2.blocks.17.layer_scale2.scale", TestUtil.Keys(s36));
        TestUtil.AssertClose(Enumerable.Repeat(1e-6f, 320).ToArray(),
            TestUtil.Values(s36.state_dict()["stages.2.blocks.17.layer_scale2.scale"]));
    }

    /// <summary>A CAFormer-shaped model (caformer_s18's mixers, norms and layouts) small enough for quick tests.</summary>
    internal static Metaformer TinyCAFormer(long numClasses = 10, double dropPathRate = 0.0) => new(new Metaformer.Options
    {
        NumClasses = numClasses,
        Depths = new long[] { 1, 1, 2, 1 },
        Dims = new long[] { 8, 16, 24, 32 },
        TokenMixers = new MixerFactory[] { d => Builtin.SepConv(d), d => Builtin.SepConv(d), d => Builtin.Attention(d, headDim: 8), d => Builtin.Attention(d, headDim: 8) },
        UseNchw = new[] { true, true, false, false },
        Norms = new NormFactory[] { d => Builtin.LayerNorm2dNoBias(d), d => Builtin.LayerNorm2dNoBias(d), d => Builtin.LayerNormNoBias(d, eps: 1e-6), d => Builtin.LayerNormNoBias(d, eps: 1e-6) },
        DropPathRate = dropPathRate,
    });

    [Fact]
    public void TinyModelShapes()
    {
        using var model = TinyCAFormer();
        model.eval();
        using var x = TestUtil.Det(new long[] { 2, 3, 64, 64 });
        using var y = model.forward(x);
        Assert.Equal(new long[] { 2, 10 }, y.shape);
        // Generated forwards do not scope their intermediates (the hand-written MetaFormer did): inside a dispose
        // scope, only the result moved out survives.
        long before = TestUtil.LiveTensors;
        using (var scope = torch.NewDisposeScope()) model.forward(x).MoveToOuterDisposeScope().Dispose();
        Assert.Equal(before, TestUtil.LiveTensors);
        Assert.Equal(new long[] { 10, 32 * 4 }, model.state_dict()["head.fc.fc2.weight"].shape);
    }

    [Fact]
    public void HeadIsTimmsSequentialAndMatchesLoops()
    {
        using var model = new PoolformerS12(new PoolformerS12.Options { NumClasses = 3 });
        var head = (nn.Module<Tensor, Tensor>)model.named_children().Single(c => c.name == "head").module;
        var children = head.named_children().ToDictionary(c => c.name, c => c.module);
        Assert.Equal(new[] { "global_pool", "norm", "flatten", "drop", "fc" }, head.named_children().Select(c => c.name).ToArray());
        var sd = model.state_dict();
        // head: mean over H·W, LayerNorm over C (eps 1e-6, weight 1, bias 0), Linear.
        var xs = TestUtil.DetValues(1 * 512 * 2 * 2);
        using var x = torch.tensor(xs).reshape(1, 512, 2, 2);
        using var noGrad = torch.no_grad();
        using var y = head.call(x);
        var pooled = Enumerable.Range(0, 512).Select(c => (xs[c * 4] + xs[c * 4 + 1] + xs[c * 4 + 2] + xs[c * 4 + 3]) / 4f).ToArray();
        var normed = TestUtil.LayerNormRef(pooled, 1, 512, TestUtil.Values(sd["head.norm.weight"]), TestUtil.Values(sd["head.norm.bias"]), 1e-6);
        TestUtil.AssertClose(TestUtil.LinearRef(normed, 1, 512, TestUtil.Values(sd["head.fc.weight"]), 3, TestUtil.Values(sd["head.fc.bias"])), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void RandFormerAndIdentityFormerRunAt224()
    {
        using var noGrad = torch.no_grad();
        using var rand = new RandformerS12(new RandformerS12.Options { NumClasses = 5 });
        rand.eval();
        using var x = TestUtil.Det(new long[] { 1, 3, 224, 224 });
        using var y = rand.forward(x);
        Assert.Equal(new long[] { 1, 5 }, y.shape);
        Assert.False(rand.state_dict()["stages.3.blocks.0.token_mixer.random_matrix"].requires_grad);
        using var id = new IdentityformerS12(new IdentityformerS12.Options { NumClasses = 5 });
        using var x2 = TestUtil.Det(new long[] { 1, 3, 64, 64 });
        using var y2 = id.forward(x2);
        Assert.Equal(new long[] { 1, 5 }, y2.shape);
    }

    [Fact]
    public void BackwardReachesEveryTrainableParameter()
    {
        using var model = TinyCAFormer(dropPathRate: 0.1);
        using var x = TestUtil.Det(new long[] { 2, 3, 32, 32 });
        TestUtil.AssertBackward(model, x);
    }

    [Fact]
    public void TrainingLoopDoesNotGrowLiveTensors()
    {
        using var model = TinyCAFormer(dropPathRate: 0.1);
        model.train();
        using var x = TestUtil.Det(new long[] { 2, 3, 32, 32 });
        using var target = torch.tensor(new long[] { 1, 7 });
        using var opt = torch.optim.SGD(model.parameters(), 0.01);
        var live = new List<long>();
        for (int step = 0; step < 6; step++) {
            using (var scope = torch.NewDisposeScope()) {
                opt.zero_grad();
                var logits = model.forward(x);
                var loss = nn.functional.cross_entropy(logits, target);
                loss.backward();
                opt.step();
            }
            live.Add(TestUtil.LiveTensors);
        }
        // The first steps may allocate gradients; after that the count must be flat.
        Assert.True(live.Skip(2).All(v => v == live[2]), "live tensor counts per step: " + string.Join(", ", live));
    }

    [Fact]
    public void RunsOnCudaWhenAvailable()
    {
        if (!torch.cuda.is_available()) Assert.Skip("CUDA is not available (TorchSharp-cpu build).");
        var cuda = torch.CUDA;
        using var model = TinyCAFormer();
        model.to(cuda);
        using var x = TestUtil.Det(new long[] { 2, 3, 32, 32 }).to(cuda);
        using var y = model.forward(x);
        Assert.Equal(DeviceType.CUDA, y.device_type);
        TestUtil.AssertBackward(model, x);
    }
}
