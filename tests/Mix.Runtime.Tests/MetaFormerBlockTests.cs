using System;
using System.Linq;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>The zoo's generated <c>metaformer_block</c> (models/metaformer.mix): timm's keys for the PoolFormer and
/// CAFormer configurations, the CPU math against explicit formulas and loops, gradients.</summary>
public class MetaFormerBlockTests
{
    [Fact]
    public void PoolFormerBlockKeys()
    {
        using var m = ZooBlocks.PoolFormer(4, layerScale: 1e-5);
        Assert.Equal(new[] {
            "norm1.weight [4]", "norm1.bias [4]", "layer_scale1.scale [4]",
            "norm2.weight [4]", "norm2.bias [4]",
            "mlp.fc1.weight [16,4,1,1]", "mlp.fc1.bias [16]", "mlp.fc2.weight [4,16,1,1]", "mlp.fc2.bias [4]",
            "layer_scale2.scale [4]" }, TestUtil.KeyLines(m));
        TestUtil.AssertClose(Enumerable.Repeat(1e-5f, 4).ToArray(), TestUtil.Values(m.state_dict()["layer_scale1.scale"]));
    }

    [Fact]
    public void PoolFormerBlockMatchesTheExplicitFormulaOnCpu()
    {
        // The fused CUDA sub-block path must leave the CPU math as it is: x1 = x + ls·(pool(gn(x)) − gn(x)),
        // y = x1 + ls2·mlp(gn2(x1)).
        using var m = ZooBlocks.PoolFormer(6, layerScale: 0.3);
        m.eval();
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var sd = m.state_dict();
        sd["norm1.weight"].copy_(torch.linspace(0.5, 1.5, 6));
        sd["norm1.bias"].copy_(torch.linspace(-0.2, 0.2, 6));
        sd["layer_scale1.scale"].copy_(torch.linspace(0.1, 0.6, 6));
        var x = torch.randn(2, 6, 5, 7);
        var n = nn.functional.group_norm(x, 1, sd["norm1.weight"], sd["norm1.bias"], 1e-5);
        var p = nn.functional.avg_pool2d(n, 3, 1, 1, count_include_pad: false);
        var x1 = x + sd["layer_scale1.scale"].view(6, 1, 1) * (p - n);
        var expected = x1 + sd["layer_scale2.scale"].view(6, 1, 1) * m.mlp.call(m.norm2.call(x1));
        var y = m.forward(x);
        Assert.True((y - expected).abs().max().item<float>() < 1e-5f);
    }

    [Fact]
    public void CAFormerAttentionBlockKeys()
    {
        using var m = ZooBlocks.MetaFormer(64, d => Builtin.Attention(d), d => Builtin.LayerNormNoBias(d, eps: 1e-6), useNchw: false, resScale: 1.0);
        Assert.Equal(new[] {
            "norm1.weight [64]", "token_mixer.qkv.weight [192,64]", "token_mixer.proj.weight [64,64]", "res_scale1.scale [64]",
            "norm2.weight [64]", "mlp.fc1.weight [256,64]", "mlp.act.scale [1]", "mlp.act.bias [1]", "mlp.fc2.weight [64,256]",
            "res_scale2.scale [64]" }, TestUtil.KeyLines(m));
        using var x = TestUtil.Det(new long[] { 2, 64, 3, 3 });
        using var y = m.forward(x);
        Assert.Equal(new long[] { 2, 64, 3, 3 }, y.shape);
    }

    [Fact]
    public void DefaultsAreTimms()
    {
        using var m = new Mix.Zoo.MetaformerBlock(new Mix.Zoo.MetaformerBlock.Options(8));
        Assert.IsType<LayerNorm2dNoBias>(m.norm1);
        Assert.IsType<Identity>(m.token_mixer);
        Assert.Contains(m.mlp.modules(), x => x is StarReLU);
        Assert.IsType<Identity>(m.layer_scale1);
        Assert.IsType<Identity>(m.res_scale2);
    }

    [Fact]
    public void ResidualsScalesAndMlpMatchLoops()
    {
        // Identity mixer and norms, ReLU MLP: y1 = rs·x + ls·x; y = rs·y1 + ls·mlp(y1).
        using var m = ZooBlocks.MetaFormer(2, d => Builtin.Identity(d), d => Builtin.Identity(d), () => Builtin.ReLU(), layerScale: 0.5, resScale: 2.0);
        var xs = TestUtil.DetValues(1 * 2 * 2 * 2);
        using var x = torch.tensor(xs).reshape(1, 2, 2, 2);
        using var y = m.forward(x);
        var y1 = xs.Select(v => 2.5f * v).ToArray();
        var rows = TestUtil.NchwToRows(y1, 1, 2, 2, 2);
        var sd = m.state_dict();
        var h = TestUtil.LinearRef(rows, 4, 2, TestUtil.Values(sd["mlp.fc1.weight"]), 8).Select(v => Math.Max(v, 0f)).ToArray();
        var mlp = TestUtil.RowsToNchw(TestUtil.LinearRef(h, 4, 8, TestUtil.Values(sd["mlp.fc2.weight"]), 2), 1, 2, 2, 2);
        var expected = y1.Select((v, i) => 2f * v + 0.5f * mlp[i]).ToArray();
        TestUtil.AssertClose(expected, TestUtil.Values(y), 1e-5);
    }

    [Fact]
    public void Backward()
    {
        using var m = ZooBlocks.MetaFormer(8, d => Builtin.SepConv(d), d => Builtin.LayerNorm2dNoBias(d), resScale: 1.0, layerScale: 1e-2, dropPath: 0.2);
        using var x = TestUtil.Det(new long[] { 2, 8, 5, 5 });
        TestUtil.AssertBackward(m, x);
    }
}
