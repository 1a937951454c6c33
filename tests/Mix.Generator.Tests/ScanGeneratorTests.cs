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
/// A mixer written in .mix on <c>ssd_scan</c> (tests/Mix.Generator.Tests/Models/scans.mix), compiled by the generator
/// into this project: its forward equals the same computation written by hand against the runtime, and it trains.
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
        var gen = new torch.Generator(7);
        var x = torch.randn(new long[] { 2, 5, 8 }, generator: gen);
        var y = model.call(x);

        long heads = 2, headDim = 3, state = 4;
        var parts = Linear(model, "mixer.in_proj", x).split(new[] { heads * headDim, heads * headDim, state, state, heads }, -1);
        var a = Linear(model, "mixer.rates", x).mean(new long[] { 0, 1 });
        var (scan, _) = SsdScan.SequentialScan(parts[0].reshape(2, 5, heads, headDim), parts[4], a, parts[2].reshape(2, 5, 1, state),
            parts[3].reshape(2, 5, 1, state), D: a, z: parts[1].reshape(2, 5, heads, headDim), dtSoftplus: true);
        var expected = Linear(model, "mixer.out_proj", scan.reshape(2, 5, heads * headDim));
        Assert.Equal(expected.shape, y.shape);
        double err = (y - expected).abs().max().item<float>();
        Assert.True(err < 1e-5, $"max |generated − hand-written| = {err}");
    }

    [Fact]
    public void Generated_ssd_mixer_trains_on_the_cpu()
    {
        using var model = new SsdTiny();
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
        // chunk_size, D and z bind in order; dt_bias is skipped, so dt_softplus follows by name.
        Assert.Contains("dtSoftplus: true)", source);
        File.WriteAllText(Path.Combine(Path.GetTempPath(), "scans.mix.g.cs"), source);
        Assert.Empty(output.GetDiagnostics(TestContext.Current.CancellationToken).Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning));
    }
}
