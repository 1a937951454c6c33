using System;
using System.IO;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime.Scans;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Mixers written in .mix on <c>ssd_scan</c>, <c>causal_conv1d</c> and <c>gla_scan</c> with <c>param</c> weights
/// (tests/Mix.Generator.Tests/Models/scans.mix), compiled by the generator into this project: their forwards equal the
/// same computations written by hand against the runtime's sequential references, and they train on the CPU.
/// </summary>
public class ScanGeneratorTests
{
    static Tensor Linear(nn.Module m, string prefix, Tensor x)
    {
        var sd = m.state_dict();
        return torch.nn.functional.linear(x, sd[prefix + ".weight"], sd[prefix + ".bias"]);
    }

    [Fact]
    public void Generated_ssd_mixer_equals_the_hand_written_scan()
    {
        using var model = new SsdTiny();
        model.eval();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { 2, 5, 8 }, generator: new torch.Generator(7));
        var y = model.call(x);

        var sd = model.state_dict();
        long heads = 2, headDim = 3, state = 4;
        var parts = Linear(model, "mixer.in_proj", x).split(new[] { heads * headDim, heads * headDim, state, state, heads }, -1);
        var (xc, _) = CausalConv1d.Reference(parts[0].transpose(1, 2), sd["mixer.conv_weight"], sd["mixer.conv_bias"], "silu");
        var (scan, _) = SsdScan.SequentialScan(xc.transpose(1, 2).reshape(2, 5, heads, headDim), parts[4], -sd["mixer.A_log"].exp(),
            parts[2].reshape(2, 5, 1, state), parts[3].reshape(2, 5, 1, state), D: sd["mixer.D"],
            z: parts[1].reshape(2, 5, heads, headDim), dtBias: sd["mixer.dt_bias"], dtSoftplus: true);
        var expected = Linear(model, "mixer.out_proj", scan.reshape(2, 5, heads * headDim));
        Assert.Equal(expected.shape, y.shape);
        double err = (y - expected).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max |generated − hand-written| = {err}");
        Assert.Equal(new[] { 1.0f, 2.0f }, sd["mixer.A_log"].exp().data<float>().ToArray()); // init = log(arange(1, heads + 1))
    }

    [Fact]
    public void Generated_gla_mixer_equals_the_hand_written_scan()
    {
        using var model = new GlaTiny();
        model.eval();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { 1, 9, 8 }, generator: new torch.Generator(5));
        var y = model.call(x);
        var sd = model.state_dict();
        Tensor P(string name, long width) => torch.nn.functional.linear(x, sd[$"mixer.{name}.weight"]).reshape(1, 9, 2, width);
        var g = torch.nn.functional.logsigmoid(Linear(model, "mixer.g_proj", x).reshape(1, 9, 2, 4)) / 16;
        var (o, _) = GlaScan.SequentialScan(P("q_proj", 4), P("k_proj", 4), P("v_proj", 3), g);
        var expected = torch.nn.functional.linear(o.reshape(1, 9, 6), sd["mixer.o_proj.weight"]);
        double err = (y - expected).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max |generated − hand-written| = {err}");
    }

    [Theory]
    [InlineData("ssd")]
    [InlineData("gla")]
    public void Generated_scan_mixers_train_on_the_cpu(string which)
    {
        using nn.Module<Tensor, Tensor> model = which == "ssd" ? new SsdTiny() : new GlaTiny();
        model.train();
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { 1, 7, 8 }, generator: new torch.Generator(3));
        model.call(x).square().sum().backward();
        foreach (var (name, p) in model.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name} has no gradient");
            Assert.True(p.grad!.abs().sum().item<float>() > 0, $"{name} has a zero gradient");
        }
    }

    [Fact]
    public void Optional_tensors_are_passed_by_name_in_the_generated_code()
    {
        var text = new InMemoryText(Harness.Root + "scans.mix", File.ReadAllText(Path.Combine(Harness.TestDir(), "Models", "scans.mix")));
        var result = Harness.Run(new[] { text }, out var output);
        Assert.Empty(result.Diagnostics);
        var source = result.Results.Single().GeneratedSources.Single(s => s.HintName == "scans.mix.g.cs").SourceText.ToString();
        Assert.Contains("Fn.SsdScan(", source);
        Assert.Contains("Fn.GlaScan(", source);
        Assert.Contains("Fn.CausalConv1d(", source);
        // gla_scan's scale is left out, so chunk_size follows by name.
        Assert.Contains("chunkSize: options.Chunk)", source);
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "scans.mix.g.cs"), source);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning));
    }
}
