using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MetaFormerTests
{
    private static void AssertMatchesExpected(Func<MetaFormer> build, string file, double referenceMillions)
    {
        using var noGrad = torch.no_grad();
        using var model = build();
        var expected = TestUtil.ExpectedLines(file);
        var actual = TestUtil.KeyLines(model);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);

        long expectedCount = expected.Sum(l => l[(l.IndexOf('[') + 1)..^1].Split(',')
            .Aggregate(1L, (a, s) => a * long.Parse(s, System.Globalization.CultureInfo.InvariantCulture)));
        long count = TestUtil.ParameterCount(model);
        Assert.Equal(expectedCount, count);
        Assert.InRange(count / 1e6, referenceMillions * 0.995, referenceMillions * 1.005);
    }

    // Reference parameter counts: timm's model cards / the MetaFormer papers.
    [Fact] public void PoolFormerS12MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.PoolFormerS12(), "poolformer_s12.keys.txt", 11.9);
    [Fact] public void ConvFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.ConvFormerS18(), "convformer_s18.keys.txt", 26.8);
    [Fact] public void CAFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.CAFormerS18(), "caformer_s18.keys.txt", 26.3);
    [Fact] public void IdentityFormerS12KeysAndCount() => AssertMatchesExpected(() => MetaFormer.IdentityFormerS12(), "identityformer_s12.keys.txt", 11.9);
    // RandFormer-S12: 11.9 M trainable + 0.2 M frozen random-matrix entries (196² + 49²).
    [Fact] public void RandFormerS12KeysAndCount() => AssertMatchesExpected(() => MetaFormer.RandFormerS12(), "randformer_s12.keys.txt", 12.13);

    [Fact]
    public void DeeperPoolFormersScale()
    {
        using var noGrad = torch.no_grad();
        using var s24 = MetaFormer.PoolFormerS24();
        using var s36 = MetaFormer.PoolFormerS36();
        Assert.InRange(TestUtil.ParameterCount(s24) / 1e6, 21.3, 21.5);
        Assert.InRange(TestUtil.ParameterCount(s36) / 1e6, 30.8, 31.0);
        Assert.Contains("stages.2.blocks.17.layer_scale2.scale", TestUtil.Keys(s36));
        TestUtil.AssertClose(Enumerable.Repeat(1e-6f, 320).ToArray(),
            TestUtil.Values(s36.state_dict()["stages.2.blocks.17.layer_scale2.scale"]));
    }

    /// <summary>A CAFormer-shaped model small enough for quick forward/backward tests.</summary>
    internal static MetaFormer TinyCAFormer(int numClasses = 10, string globalPool = "avg", double dropPathRate = 0.0)
    {
        Func<int, double, nn.Module<Tensor, Tensor>> sep = (d, _) => new SepConv(d);
        Func<int, double, nn.Module<Tensor, Tensor>> attn = (d, p) => new Attention(d, headDim: 8, projDrop: p);
        Func<int, nn.Module<Tensor, Tensor>> ln2d = c => new LayerNorm2dNoBias(c);
        Func<int, nn.Module<Tensor, Tensor>> ln = c => new LayerNormNoBias(c);
        return new MetaFormer(numClasses: numClasses, globalPool: globalPool, depths: new[] { 1, 1, 2, 1 }, dims: new[] { 8, 16, 24, 32 },
            tokenMixers: new[] { sep, sep, attn, attn }, normLayers: new[] { ln2d, ln2d, ln, ln }, dropPathRate: dropPathRate);
    }

    [Fact]
    public void TinyModelShapes()
    {
        using var model = TinyCAFormer();
        model.eval();
        using var x = TestUtil.Det(new long[] { 2, 3, 64, 64 });
        using var y = model.forward(x);
        Assert.Equal(new long[] { 2, 10 }, y.shape);
        using var f = model.forward_features(x);
        Assert.Equal(new long[] { 2, 32, 2, 2 }, f.shape);
        using var pre = model.forward_head(f, preLogits: true);
        Assert.Equal(new long[] { 2, 32 }, pre.shape);
        using var logits = model.forward_head(f);
        TestUtil.AssertClose(TestUtil.Values(y), TestUtil.Values(logits), 1e-6);
        TestUtil.AssertForwardLeavesOnlyResult(model, x);

        using var noHead = TinyCAFormer(numClasses: 0);
        Assert.IsType<Identity>(noHead.head[4]);
        Assert.DoesNotContain(TestUtil.Keys(noHead), k => k.StartsWith("head.fc", StringComparison.Ordinal));
        using var feats = noHead.forward(x);
        Assert.Equal(new long[] { 2, 32 }, feats.shape);
        using var noPool = TinyCAFormer(numClasses: 0, globalPool: "");
        using var map = noPool.forward(x);
        Assert.Equal(new long[] { 2, 32, 2, 2 }, map.shape);
    }

    [Fact]
    public void HeadIsTimmsSequentialAndMatchesLoops()
    {
        using var model = MetaFormer.PoolFormerS12(numClasses: 3);
        var names = model.head.named_children().Select(c => c.name).ToArray();
        Assert.Equal(new[] { "global_pool", "norm", "flatten", "drop", "fc" }, names);
        var norm = Assert.IsType<LayerNorm2d>(model.head[1]);
        var fc = Assert.IsType<Linear>(model.head[4]);
        // head: mean over H·W, LayerNorm over C (eps 1e-6, weight 1, bias 0), Linear.
        var xs = TestUtil.DetValues(1 * 512 * 2 * 2);
        using var x = torch.tensor(xs).reshape(1, 512, 2, 2);
        using var y = model.forward_head(x);
        var pooled = Enumerable.Range(0, 512).Select(c => (xs[c * 4] + xs[c * 4 + 1] + xs[c * 4 + 2] + xs[c * 4 + 3]) / 4f).ToArray();
        var normed = TestUtil.LayerNormRef(pooled, 1, 512, TestUtil.Values(norm.weight!), TestUtil.Values(norm.bias!), 1e-6);
        TestUtil.AssertClose(TestUtil.LinearRef(normed, 1, 512, TestUtil.Values(fc.weight), 3, TestUtil.Values(fc.bias!)), TestUtil.Values(y), 1e-4);
    }

    [Fact]
    public void WeightsInitializedAsTimm()
    {
        using var model = TinyCAFormer();
        var sd = model.state_dict();
        var w = TestUtil.Values(sd["head.fc.fc1.weight"]); // [128, 32]
        double mean = w.Average(v => (double)v);
        double std = Math.Sqrt(w.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(std, 0.018, 0.022);
        Assert.All(TestUtil.Values(sd["head.fc.fc1.bias"]), v => Assert.Equal(0f, v));
        Assert.All(TestUtil.Values(sd["stem.conv.bias"]), v => Assert.Equal(0f, v));
        Assert.All(TestUtil.Values(sd["stages.2.blocks.0.res_scale1.scale"]), v => Assert.Equal(1f, v));
        Assert.All(TestUtil.Values(sd["stages.0.blocks.0.token_mixer.act1.scale"]), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void DropPathRatesRampLinearlyOverAllBlocks()
    {
        var rates = MetaFormer.DropPathRates(0.3, new[] { 1, 2, 1 });
        Assert.Equal(new[] { 0.0 }, rates[0]);
        Assert.Equal(0.1, rates[1][0], 12);
        Assert.Equal(0.2, rates[1][1], 12);
        Assert.Equal(0.3, rates[2][0], 12);
        using var model = TinyCAFormer(dropPathRate: 0.4); // 5 blocks: 0, .1, .2, .3, .4
        var last = (MetaFormerBlock)((MetaFormerStage)model.stages[3]).blocks[0];
        Assert.Equal(0.4, Assert.IsType<DropPath>(last.drop_path1).DropProb, 12);
        var first = (MetaFormerBlock)((MetaFormerStage)model.stages[0]).blocks[0];
        Assert.IsType<Identity>(first.drop_path1);
    }

    [Fact]
    public void RandFormerAndIdentityFormerRunAt224()
    {
        using var noGrad = torch.no_grad();
        using var rand = MetaFormer.RandFormerS12(numClasses: 5);
        rand.eval();
        using var x = TestUtil.Det(new long[] { 1, 3, 224, 224 });
        using var y = rand.forward(x);
        Assert.Equal(new long[] { 1, 5 }, y.shape);
        Assert.False(rand.state_dict()["stages.3.blocks.0.token_mixer.random_matrix"].requires_grad);
        using var id = MetaFormer.IdentityFormerS12(numClasses: 5);
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
        using var direct = MetaFormer.CAFormerS18(numClasses: 10, device: cuda);
        Assert.All(direct.parameters(), p => Assert.Equal(DeviceType.CUDA, p.device_type));
    }
}
