using System;
using Mix.Generated.Models;
using Mix.Runtime.Builtins;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// iFormer's and FFNet's library definitions and zoo models off the parity fixtures' sizes: batch 1 (each sample is
/// computed alone: a row of a batch equals the same sample run alone), odd and non-square maps where the official
/// accepts them (FFNet everywhere, the Inception mixer without pooling), gradients to every parameter. (FFNet's deploy
/// form against its training form at odd sizes: Mix.Models.Tests' FfnetReparameterizationTests.) Parity with the official code: Catalog3cParityTests; the
/// shape contracts (what is refused): Mix.Dsl.Tests' Catalog3cContractTests.
/// </summary>
public class Catalog3cLibraryTests
{
    static void Redraw(nn.Module module, long seed)
    {
        var g = new torch.Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            var r = torch.randn(p.shape, generator: g);
            if (name.EndsWith("weight") && (name.Contains("norm") || name.Contains(".bn."))) p.copy_(r * 0.2 + 1);
            else if (p.dim() >= 2) p.copy_(r / Math.Sqrt(p.numel() / p.shape[0]));
            else p.copy_(r * 0.3);
        }
        foreach (var (name, b) in module.named_buffers())
            if (name.EndsWith("running_mean")) b.copy_(torch.randn(b.shape, generator: g) * 0.2);
            else if (name.EndsWith("running_var")) b.copy_(torch.rand(b.shape, generator: g) + 0.5);
    }

    static void AssertRowsAreAlone(nn.Module<Tensor, Tensor> m, Tensor x)
    {
        using var _ = torch.no_grad();
        var all = m.call(x);
        for (long i = 0; i < x.shape[0]; i++)
        {
            var alone = m.call(x[TensorIndex.Slice(i, i + 1)]);
            double err = (alone - all[TensorIndex.Slice(i, i + 1)]).abs().max().item<float>();
            Assert.True(err <= 1e-5 * Math.Max(1.0, all.abs().max().item<float>()), $"row {i} alone differs by {err:G3}");
        }
    }

    [Theory]
    [InlineData(8, 2)]     // pooled attention, 4 × 4 tokens
    [InlineData(7, 1)]     // odd side without pooling (stages 3-4)
    [InlineData(1, 1)]     // one token
    [InlineData(9, 3)]
    public void Inception_mixer_computes_each_sample_alone(long side, long pool)
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.InceptionMixer(new Std.InceptionMixer.Options(16) { NumHeads = 4, AttentionHead = 2, PoolSize = pool, QkvBias = true });
        Redraw(m, 3);
        m.eval();
        var x = torch.randn(new long[] { 3, side, side, 16 }, generator: new torch.Generator(5));
        Assert.Equal(new long[] { 3, side, side, 16 }, m.call(x).shape);
        AssertRowsAreAlone(m, x);
    }

    [Fact]
    public void Inception_mixer_trains()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.InceptionMixer(new Std.InceptionMixer.Options(16) { NumHeads = 4, AttentionHead = 2, QkvBias = true, AttnDrop = 0.1 });
        Redraw(m, 7);
        m.train();
        var x = torch.randn(new long[] { 2, 6, 6, 16 }, generator: new torch.Generator(9), requires_grad: true);
        m.call(x).square().sum().backward();
        Assert.True(x.grad is not null && x.grad.abs().sum().item<float>() > 0);
        foreach (var (name, p) in m.named_parameters())
            Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, $"{name} got no gradient");
    }

    [Fact]
    public void Iformer_computes_each_image_alone()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new IformerFixture(new IformerFixture.Options());
        Redraw(m, 11);
        m.eval();
        var x = torch.randn(new long[] { 2, 3, 64, 64 }, generator: new torch.Generator(13));
        Assert.Equal(new long[] { 2, 10 }, m.call(x).shape);
        AssertRowsAreAlone(m, x);
    }

    [Theory]
    [InlineData(1, 37, 45)]    // batch 1, odd and non-square: the strided convs take ceil(n / 2)
    [InlineData(3, 17, 16)]
    public void Ffnet_takes_odd_sizes_in_both_forms(long batch, long h, long w)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { batch, 3, h, w }, generator: new torch.Generator(19));
        foreach (var deploy in new[] { false, true })
        {
            using var m = new FfnetLsFixture(new FfnetLsFixture.Options { Deploy = deploy });
            Redraw(m, 17);
            m.eval();
            using (torch.no_grad()) Assert.Equal(new long[] { batch, 10 }, m.call(x).shape);
            AssertRowsAreAlone(m, torch.cat(new[] { x, x.flip(0) + 0.5 }, 0));
        }
    }

    [Fact]
    public void Ffnet_trains_without_a_norm_before_its_mixers()
    {
        using var scope = torch.NewDisposeScope();
        // ffnet_fixture's widths without stochastic depth: in training a dropped branch gets no gradient, and the drop is
        // drawn from libtorch's process-wide generator, which tests on other threads move (this failed once in CI).
        using var m = new Ffnet(new Ffnet.Options
        {
            NumClasses = 10, EmbedDim = new long[] { 8, 16, 32, 32 }, InDim = 8, Depth = new long[] { 2, 1, 2, 1 },
            KernelSizes = new long[] { 3, 3, 3, 3 }, KernelSizes1 = new long[] { 3, 3, 7, 7 }, KernelSizes2 = new long[] { 3, 3, 7, 7 },
            DropPathRate = 0.0,
        });
        Redraw(m, 23);
        m.train();
        var x = torch.randn(new long[] { 2, 3, 32, 32 }, generator: new torch.Generator(29), requires_grad: true);
        m.call(x).square().sum().backward();
        foreach (var (name, p) in m.named_parameters())
            Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, $"{name} got no gradient");
    }

    [Fact]
    public void Interpolate_to_the_same_size_is_an_exact_copy_and_nearest_repeats()
    {
        // iformer relies on the first: at its img_size the resized positional embedding is the embedding itself.
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { 1, 3, 5, 7 }, generator: new torch.Generator(31));
        foreach (var mode in new[] { "bilinear", "bicubic", "nearest" })
            Assert.True((x - Fn.Interpolate(x, new long[] { 5, 7 }, mode)).abs().max().item<float>() == 0f, mode);
        var up = Fn.Interpolate(x, new long[] { 10, 14 }, "nearest");
        Assert.True((up - x.repeat_interleave(2, 2).repeat_interleave(2, 3)).abs().max().item<float>() == 0f);
        var down = Fn.Interpolate(x, new long[] { 3, 4 }, "bilinear");
        Assert.Equal(new long[] { 1, 3, 3, 4 }, down.shape);
        Assert.Throws<ArgumentException>(() => Fn.Interpolate(x, new long[] { 3, 4 }, "area"));
    }
}
