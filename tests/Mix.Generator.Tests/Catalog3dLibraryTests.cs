using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// MS-MLP's <c>mix_shift</c> and <c>mix_shift_block</c> (standard library) against a reference written here from the
/// official forward (JegZheng/MS-MLP <c>MixShiftBlock.forward</c>: torch.chunk, torch.roll, per-group depthwise convs)
/// at odd sizes and batch 1, the options the parity fixture does not cover, and gradients; RaftMLP's
/// <c>raft_token_mixer</c> (two <c>raft_permuted_block</c>s) against the official layouts (RaftShrink, PermutedBlock,
/// RaftExpansion: einops' strings as view + permute) on non-square maps; WaveMix's <c>wave_mixer</c> at levels 1 to 4
/// against the official Waveblocks' forward (successive db1 DWT levels in pytorch_wavelets' band order) and the
/// <c>conv_transpose2d</c> built-in against torch's.
/// </summary>
public class Catalog3dLibraryTests
{
    static void Redraw(nn.Module module, long seed)
    {
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            var r = torch.randn(p.shape, generator: g);
            if (name.StartsWith("norm") && name.EndsWith("weight")) p.copy_(r * 0.2 + 1);
            else if (p.dim() >= 2) p.copy_(r / Math.Sqrt(p.numel() / p.shape[0]));
            else p.copy_(r * 0.3);
        }
    }

    // The official mixing: torch.chunk's groups, each rolled by its distance along W (lr) and H (td) and convolved.
    static Tensor ReferenceMixShift(Tensor x, System.Collections.Generic.Dictionary<string, Tensor> sd, long[] dist, long[] mix, string prefix = "")
    {
        var xs = x.chunk(dist.Length, 1);
        Assert.Equal(dist.Length, xs.Length);
        Tensor Conv(Tensor t, string key, long k) => F.conv2d(t, sd[prefix + key + ".weight"], sd[prefix + key + ".bias"],
            padding: new[] { k / 2, k / 2 }, groups: t.shape[1]);
        var lr = xs.Select((c, i) => Conv(c.roll(dist[i], 3), $"dwconv_lr.{i}", mix[i])).ToArray();
        var td = xs.Select((c, i) => Conv(c.roll(dist[i], 2), $"dwconv_td.{i}", mix[i])).ToArray();
        return torch.cat(lr, 1) + torch.cat(td, 1);
    }

    [Theory]
    [InlineData(13, 1, 5, 7)]    // groups 3, 3, 3, 3, 1; batch 1, odd sizes
    [InlineData(9, 2, 6, 3)]     // groups 2, 2, 2, 2, 1; W smaller than the largest shift's kernel
    public void Mix_shift_is_the_official_chunk_roll_and_depthwise_convs(long dim, long batch, long h, long w)
    {
        using var scope = torch.NewDisposeScope();
        long[] dist = { -2, -1, 0, 1, 2 }, mix = { 1, 3, 3, 5, 7 };
        using var m = new Std.MixShift(new Std.MixShift.Options(dim) { MixSize = mix });
        Redraw(m, 3);
        var sd = m.state_dict();
        Assert.Equal(20, sd.Count);   // dwconv_lr.{0..4} and dwconv_td.{0..4}, weight and bias
        torch.manual_seed(5);
        var x = torch.randn(batch, dim, h, w);
        var y = m.call(x);
        var expected = ReferenceMixShift(x, sd, dist, mix);
        Assert.Equal(expected.shape, y.shape);
        double err = (expected - y).abs().max().item<float>();
        Assert.True(err <= 1e-5, $"mix_shift: max abs error {err:G4}");
    }

    [Fact]
    public void Mix_shift_block_is_the_official_block_with_other_shifts_and_no_layer_scale()
    {
        using var scope = torch.NewDisposeScope();
        long[] dist = { 3, -1, 0 }, mix = { 3, 1, 5 };
        // shift_size 3 over 10 channels: groups 4, 4, 2; mlp_ratio 1.5: hidden 15; layer_scale_init_value 0: no gamma.
        using var m = new Std.MixShiftBlock(new Std.MixShiftBlock.Options(10)
        {
            ShiftSize = 3, ShiftDist = dist, MixSize = mix, MlpRatio = 1.5, LayerScaleInitValue = 0,
        });
        Redraw(m, 7);
        m.eval();
        var sd = m.state_dict();
        Assert.False(sd.ContainsKey("gamma"));
        Assert.Equal(new long[] { 15, 10 }, sd["pwconv1.weight"].shape);
        torch.manual_seed(9);
        var x = torch.randn(1, 10, 5, 4);
        var mixed = ReferenceMixShift(x, sd, dist, mix).permute(0, 2, 3, 1);
        var hn = F.layer_norm(mixed, new long[] { 10 }, sd["norm.weight"], sd["norm.bias"], 1e-6);
        var hm = F.linear(F.gelu(F.linear(hn, sd["pwconv1.weight"], sd["pwconv1.bias"])), sd["pwconv2.weight"], sd["pwconv2.bias"]);
        var expected = x + hm.permute(0, 3, 1, 2);
        var y = m.call(x);
        double err = (expected - y).abs().max().item<float>();
        Assert.True(err <= 1e-5, $"mix_shift_block: max abs error {err:G4}");
    }

    [Fact]
    public void Mix_shift_block_trains()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.MixShiftBlock(new Std.MixShiftBlock.Options(9) { DropPathRate = 0.1 });
        Redraw(m, 5);
        m.train();
        torch.manual_seed(7);
        // eight rows: drop path (p = 0.1, drawn from the process-wide generator) drops all of them with probability 1e-8,
        // where with two rows 1 % of runs left the branch without a gradient
        var x = torch.randn(8, 9, 6, 5, requires_grad: true);
        m.call(x).square().sum().backward();
        Assert.True(x.grad is not null && x.grad.abs().sum().item<float>() > 0);
        foreach (var (name, p) in m.named_parameters())
            Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, $"{name} got no gradient");
    }

    // RaftMLP's serial token mixing as the official writes it, layout by layout (libs/modules.py: RaftShrink,
    // PermutedBlock(ph), the horizontal Rearrange, PermutedBlock(pw), RaftExpansion), with einops' strings spelled as
    // view + permute.
    static Tensor ReferenceRaft(Tensor x, System.Collections.Generic.Dictionary<string, Tensor> sd, long h, long w, long r)
    {
        long b = x.shape[0], c = x.shape[2], co = c / r;
        // PermutedBlock on t = [b, (co o1), (chw o2)]: LayerNorm over (co chw) at each (o1, o2), then fn on the last axis.
        Tensor Permuted(Tensor t, long o1, long o2, string prefix)
        {
            var n = t.view(b, co, o1, r, o2).permute(0, 2, 4, 1, 3).reshape(b, o1 * o2, c);   // b (o1 o2) (c1 c2)
            n = F.layer_norm(n, new[] { c }, sd[prefix + "norm.1.weight"], sd[prefix + "norm.1.bias"], 1e-5);
            n = n.view(b, o1, o2, co, r).permute(0, 3, 1, 4, 2).reshape(b, co * o1, r * o2);  // b (c1 o1) (c2 o2)
            var y = F.linear(F.gelu(F.linear(n, sd[prefix + "fn.0.weight"], sd[prefix + "fn.0.bias"])), sd[prefix + "fn.3.weight"], sd[prefix + "fn.3.bias"]);
            return y + t;
        }
        var s = x.view(b, h, w, r, co).permute(0, 4, 2, 3, 1).reshape(b, co * w, r * h);       // b (co w) (chw h)
        s = Permuted(s, w, h, "vertical.");
        s = s.view(b, co, w, r, h).permute(0, 1, 4, 3, 2).reshape(b, co * h, r * w);           // b (co h) (chw w)
        s = Permuted(s, h, w, "horizontal.");
        return s.view(b, co, h, r, w).permute(0, 2, 4, 3, 1).reshape(b, h * w, c);              // b (h w) (chw co)
    }

    [Theory]
    [InlineData(12, 1, 3, 5, 2)]   // batch 1, h ≠ w (odd), raft 2
    [InlineData(12, 2, 4, 2, 3)]   // raft 3: co = 4
    [InlineData(8, 2, 1, 3, 4)]    // one row
    public void Raft_token_mixer_is_the_official_serial_permuted_blocks(long dim, long batch, long h, long w, long raft)
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.RaftTokenMixer(new Std.RaftTokenMixer.Options(dim, h, w) { RaftSize = raft, ExpansionFactor = 3 });
        Redraw(m, 13);
        m.eval();
        var sd = m.state_dict();
        Assert.Equal(new[] { 3 * raft * h, raft * h }, sd["vertical.fn.0.weight"].shape);
        Assert.Equal(new[] { raft * w, 3 * raft * w }, sd["horizontal.fn.3.weight"].shape);
        torch.manual_seed(17);
        var x = torch.randn(batch, h * w, dim);
        var y = m.call(x);
        var expected = ReferenceRaft(x, sd, h, w, raft);
        Assert.Equal(expected.shape, y.shape);
        double err = (expected - y).abs().max().item<float>();
        Assert.True(err <= 1e-5, $"raft_token_mixer: max abs error {err:G4}");
    }

    // One level of WaveMix's DWT as the official computes it (pytorch_wavelets' afb1d with db1, mode "zero", even
    // sizes): the 2×2 patches a b / c d give LL = (a+b+c+d)/2 and, per channel, the bands (a+b−c−d)/2, (a−b+c−d)/2,
    // (a−b−c+d)/2; Yh[j] reshaped to [b, 3c, h, w] puts a channel's three bands next to each other.
    static (Tensor Low, Tensor Highs) OfficialHaar(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2] / 2, w = x.shape[3] / 2;
        var p = x.view(b, c, h, 2, w, 2);
        Tensor At(long i, long j) => p.select(5, j).select(3, i);
        var (a, bb, cc, d) = (At(0, 0), At(0, 1), At(1, 0), At(1, 1));
        var highs = torch.stack(new[] { (a + bb - cc - d) / 2, (a - bb + cc - d) / 2, (a - bb - cc + d) / 2 }, 2);
        return ((a + bb + cc + d) / 2, highs.reshape(b, 3 * c, h, w));
    }

    static Tensor Branch(Tensor x, System.Collections.Generic.Dictionary<string, Tensor> sd, string key)
    {
        var h = F.conv2d(x, sd[key + ".0.weight"], sd[key + ".0.bias"]);
        h = F.conv2d(F.gelu(h), sd[key + ".3.weight"], sd[key + ".3.bias"]);
        h = F.conv_transpose2d(h, sd[key + ".4.weight"], sd[key + ".4.bias"], strides: new long[] { 2, 2 }, padding: new long[] { 1, 1 });
        return F.batch_norm(h, sd[key + ".5.running_mean"], sd[key + ".5.running_var"], sd[key + ".5.weight"], sd[key + ".5.bias"], false, 0.1, 1e-5);
    }

    [Theory]
    [InlineData(1, false, 1, 4, 6)]
    [InlineData(2, true, 1, 8, 4)]
    [InlineData(3, false, 2, 8, 16)]
    [InlineData(4, true, 1, 16, 16)]
    public void Wave_mixer_is_the_official_waveblock(long level, bool residual, long batch, long h, long w)
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.WaveMixer(new Std.WaveMixer.Options(8) { Level = level, Mult = 2, FfChannel = 6, Residual = residual });
        Redraw(m, 21);
        using (torch.no_grad())
            foreach (var (name, buffer) in m.named_buffers())
                if (name.EndsWith("running_mean")) buffer.copy_(torch.randn(buffer.shape) * 0.2);
                else if (name.EndsWith("running_var")) buffer.copy_(torch.rand(buffer.shape) + 0.5);
        m.eval();
        var sd = m.state_dict();
        torch.manual_seed(23);
        var x = torch.randn(batch, 8, h, w);
        var r = F.conv2d(x, sd["reduction.weight"], sd["reduction.bias"]);
        var levels = new System.Collections.Generic.List<Tensor>();
        var ll = r;
        for (int j = 0; j < level; j++)
        {
            var (low, highs) = OfficialHaar(ll);
            levels.Add(torch.cat(new[] { low, highs }, 1));
            ll = low;
        }
        Tensor y;
        if (level == 1) y = Branch(levels[0], sd, "feedforward");
        else
        {
            y = Branch(levels[(int)level - 1], sd, $"feedforward{level}");
            for (long j = level - 1; j >= 1; j--) y = Branch(torch.cat(new[] { levels[(int)j - 1], y }, 1), sd, $"feedforward{j}");
        }
        if (residual) y = y + x;
        var actual = m.call(x);
        Assert.Equal(y.shape, actual.shape);
        double err = (y - actual).abs().max().item<float>();
        Assert.True(err <= 1e-4, $"wave_mixer level {level}: max abs error {err:G4}");
    }

    [Fact]
    public void Conv_transpose2d_is_torchs()
    {
        using var scope = torch.NewDisposeScope();
        var layer = Mix.Runtime.Builtins.Builtin.ConvTranspose2d(4, 6, 3, stride: 2, padding: 1, outputPadding: 1, groups: 2);
        Assert.Equal(new long[] { 4, 3, 3, 3 }, layer.weight!.shape);
        var x = torch.randn(1, 4, 5, 7);
        var expected = F.conv_transpose2d(x, layer.weight, layer.bias, strides: new long[] { 2, 2 }, padding: new long[] { 1, 1 },
            output_padding: new long[] { 1, 1 }, groups: 2);
        var y = layer.call(x);
        Assert.Equal(new long[] { 1, 6, 10, 14 }, y.shape);
        Assert.True(torch.allclose(expected, y, 1e-5, 1e-6));
    }
}
