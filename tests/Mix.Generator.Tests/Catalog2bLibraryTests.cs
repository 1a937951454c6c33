using System;
using System.Linq;
using Mix.Generated.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// The library's Monarch Mixer parts against references written here from the official code (HazyResearch/m2
/// hyena_utils.py, blockdiag_linear.py): the initial values of the positional embedding and the modulation (the
/// official linspace formulas), the block-diagonal product with a padded block, and the shared Sin frequency (one
/// Parameter under each of its keys, so a gradient step moves them together).
/// </summary>
public class Catalog2bLibraryTests
{
    static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double err = (expected - actual).abs().max().to_type(ScalarType.Float64).item<double>();
        Assert.True(err <= tolerance, $"{what}: max abs error {err:G4} > {tolerance:G4}");
    }

    [Theory]
    [InlineData(3L, 16L)]
    [InlineData(5L, 16L)]
    [InlineData(7L, 9L)]
    public void Positional_embedding_starts_as_the_official_linspace_formulas(long embDim, long seqLen)
    {
        using var scope = torch.NewDisposeScope();
        using var pe = new Std.HyenaPositionalEmbedding(new Std.HyenaPositionalEmbedding.Options(embDim, seqLen));
        long bands = (embDim - 1) / 2;
        var t = torch.linspace(0, 1, seqLen).view(1, seqLen, 1);
        var w = 2 * Math.PI * torch.linspace(0, seqLen - 1, seqLen).view(1, seqLen, 1) / seqLen;
        var f = torch.linspace(1e-4, bands - 1, bands).view(1, 1, bands);
        var expected = torch.cat(new[] { t, torch.cos(f * w), -torch.sin(f * w) }, -1);
        AssertClose(expected, pe.z, 1e-5, "z");
        AssertClose(t, pe.t, 1e-6, "t");
        var x = torch.zeros(2, 3, seqLen - 2);
        AssertClose(expected.narrow(1, 0, seqLen - 2), pe.call(x), 1e-5, "z[:, :L]");
    }

    [Fact]
    public void Modulation_decays_as_the_official()
    {
        using var scope = torch.NewDisposeScope();
        using var m = new Std.ExponentialModulation(new Std.ExponentialModulation.Options(12));
        double max = Math.Log(1e-2) / 0.3, min = Math.Log(1e-2) / 1.5;
        var deltas = torch.linspace(min, max, 12).view(1, 1, 12);
        var named = m.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        AssertClose(deltas, named["deltas"], 1e-5, "deltas");
        var t = torch.linspace(0, 1, 7).view(1, 7, 1);
        var h = torch.randn(1, 7, 12);
        AssertClose(h * torch.exp(-t * deltas.abs()), m.call(t, h), 1e-5, "h ⊙ exp(−t·|deltas|)");
    }

    [Theory]
    [InlineData(16L, 12L, 4L, true)]
    [InlineData(10L, 7L, 4L, true)]   // 10 inputs pad to 12 (blocks of 3), 8 outputs trimmed to 7
    [InlineData(9L, 9L, 3L, false)]
    public void Blockdiag_linear_is_a_block_diagonal_matrix(long inF, long outF, long nblocks, bool bias)
    {
        using var scope = torch.NewDisposeScope();
        using var layer = new Std.BlockdiagLinear(new Std.BlockdiagLinear.Options(inF, outF) { Nblocks = nblocks, Bias = bias });
        var keys = layer.state_dict().Keys.OrderBy(k => k).ToArray();
        Assert.Equal(bias ? new[] { "bias", "weight" } : new[] { "weight" }, keys);
        long inBlock = (inF + nblocks - 1) / nblocks, outBlock = (outF + nblocks - 1) / nblocks;
        Assert.Equal(new[] { nblocks, outBlock, inBlock }, layer.weight.shape);
        // The official init: U(±1/√(in/nblocks)) per block.
        Assert.True(layer.weight.abs().max().item<float>() <= 1 / Math.Sqrt(inBlock) + 1e-6);
        using (torch.no_grad()) layer.weight.copy_(torch.randn(layer.weight.shape));
        var dense = torch.block_diag(layer.weight.unbind(0));                        // [nblocks·out, nblocks·in]
        var x = torch.randn(2, 5, inF);
        var expected = F.pad(x, new[] { 0L, nblocks * inBlock - inF }).matmul(dense.t()).narrow(-1, 0, outF);
        if (bias) expected = expected + layer.named_parameters().Single(p => p.name == "bias").parameter;
        AssertClose(expected, layer.call(x), 1e-5, "blockdiag_linear");
    }

    [Fact]
    public void The_shared_sin_frequency_is_one_parameter_under_six_keys()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new M2Bert(new M2Bert.Options
        {
            VocabSize = 16, HiddenSize = 8, NumHiddenLayers = 1, IntermediateSize = 8, MaxPositionEmbeddings = 8,
            LongConvLMax = 8, HyenaFilterOrder = 4, HiddenDropoutProb = 0,
        });
        const string f = "encoder.layer.0.attention.filter_fn.";
        var sd = model.state_dict();
        var slots = new[] { "implicit_filter.1", "implicit_filter.3", "implicit_filter.5", "implicit_filter_rev.1",
                            "implicit_filter_rev.3", "implicit_filter_rev.5" }.Select(s => sd[f + s + ".freq"]).ToArray();
        // One tensor: writing through one key shows under all six; the other filter (filter_fn2) has its own.
        var other = sd["encoder.layer.0.attention.filter_fn2.implicit_filter.1.freq"];
        var otherBefore = other.clone();
        using (torch.no_grad()) slots[2].fill_(3.5f);
        Assert.All(slots, s => Assert.True(s.eq(3.5f).all().item<bool>()));
        Assert.True(other.eq(otherBefore).all().item<bool>());
        // One gradient step: the frequency gets the gradient of all six slots and every key shows the new value.
        model.train();
        var optimizer = torch.optim.SGD(model.parameters(), 0.1);
        var before = slots[0].clone();
        var y = model.call(torch.randint(0, 16, new long[] { 2, 6 }));
        (y * torch.randn(y.shape)).sum().backward();   // a random direction: LayerNorm makes sum(y²) constant
        optimizer.step();
        Assert.True((slots[0] - before).abs().max().item<float>() > 0);
        var after = model.state_dict();
        foreach (var s in new[] { "implicit_filter.3", "implicit_filter_rev.5" })
            Assert.True(after[f + s + ".freq"].eq(after[f + "implicit_filter.1.freq"]).all().item<bool>());
        Assert.Equal(model.parameters().Count(), model.parameters().Select(p => p.Handle).Distinct().Count());
    }

    [Fact]
    public void Lmu_buffers_are_built_as_the_official_ones()
    {
        // The fixture holds the official A, B (scipy's zoh in float64, cast to float32), H (A^t·B by repeated float32
        // products) and fft_H; the library builds them itself (matrix_exp), before any checkpoint is loaded.
        using var scope = torch.NewDisposeScope();
        var c = HuggingFaceParityTests.Config("lmu_cell");
        using var cell = new LmuCell(new LmuCell.Options
        {
            InputSize = c.GetProperty("input_size").GetInt64(),
            HiddenSize = c.GetProperty("hidden_size").GetInt64(),
            MemorySize = c.GetProperty("memory_size").GetInt64(),
            SeqLen = c.GetProperty("seq_len").GetInt64(),
            Theta = c.GetProperty("theta").GetDouble(),
        });
        var own = cell.state_dict();
        using var file = Mix.Runtime.Checkpoints.SafeTensorsFile.Open(HuggingFaceParityTests.Fixture("lmu_cell.weights.safetensors"));
        foreach (var (key, tolerance) in new[] { ("A", 1e-5), ("B", 1e-5), ("H", 1e-5) })
        {
            var official = file.Read(key);
            double scale = Math.Max(1.0, official.abs().max().item<float>());
            AssertClose(official, own[key], tolerance * scale, key);
        }
        var fftH = file.Read("fft_H");
        Assert.Equal(ScalarType.ComplexFloat32, own["fft_H"].dtype);
        AssertClose(torch.view_as_real(fftH), torch.view_as_real(own["fft_H"]), 1e-4, "fft_H");
        // Only the official keys are persistent (the continuous system and its exponential are not).
        Assert.Equal(new[] { "A", "B", "H", "W_h.bias", "W_h.weight", "W_u.bias", "W_u.weight", "fft_H" },
            own.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void Lmu_memory_follows_the_official_recurrence()
    {
        // LMUFFTCell.forward_recurrent: m_t = A·m_{t−1} + B·u_t, h_t = relu(W_h [m_t, x_t]). The library convolves with
        // H = [A^t·B] instead; within seq_len steps both are the same memory.
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        using var cell = new LmuCell(new LmuCell.Options { InputSize = 5, HiddenSize = 7, MemorySize = 6, SeqLen = 9, Theta = 9 });
        var sd = cell.state_dict();
        var x = torch.randn(3, 9, 5);
        var m = torch.zeros(3, 6);
        var steps = new System.Collections.Generic.List<Tensor>();
        for (int t = 0; t < 9; t++)
        {
            var xt = x.select(1, t);
            var u = F.relu(F.linear(xt, sd["W_u.weight"], sd["W_u.bias"]));
            m = m.matmul(sd["A"].t()) + u.matmul(sd["B"].t());
            steps.Add(F.relu(F.linear(torch.cat(new[] { m, xt }, -1), sd["W_h.weight"], sd["W_h.bias"])));
        }
        AssertClose(torch.stack(steps, 1), cell.call(x), 1e-5, "recurrent h");
    }

    [Fact]
    public void Matrix_exp_is_the_exponential_series()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(2);
        var a = torch.randn(2, 4, 4, dtype: ScalarType.Float64) * 0.5;
        var sum = torch.eye(4, dtype: ScalarType.Float64).expand(2, 4, 4).clone();
        var term = sum.clone();
        for (int k = 1; k < 30; k++) { term = term.matmul(a) / k; sum = sum + term; }
        AssertClose(sum, Mix.Runtime.Builtins.Fn.MatrixExp(a), 1e-10, "matrix_exp");
    }
}
