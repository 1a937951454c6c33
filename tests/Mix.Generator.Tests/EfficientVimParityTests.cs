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
/// EfficientViM against the official code (mlvlab/EfficientViM classification/models/EfficientViM.py): the standard
/// library's <c>hsm_ssd</c> against <c>HSMSSD</c> (both outputs: y and the hidden states h), the zoo's
/// <c>efficientvim</c> at EfficientViM_M1's layout with small widths against <c>EfficientViM</c> (eval: BatchNorm running
/// statistics, the four fused heads). Fixtures: tests/Mix.Runtime.Tests/Fixtures/parity, made by
/// tests/parity/make_catalog2b_fixtures.py on the CPU with the official code imported. Strict loading, fp32, max abs
/// error ≤ 1e-4 × max(1, max |reference|). Also: batch 1, and hsm_ssd on an odd, non-square map (which the official,
/// reading the side as √L, cannot run) against its equations written here.
/// </summary>
public class EfficientVimParityTests
{
    [Fact]
    public void Generated_hsm_ssd_matches_HSMSSD()
    {
        const string name = "hsm_ssd";
        var c = HuggingFaceParityTests.Config(name);
        using var model = new HsmSsdLayer(new HsmSsdLayer.Options
        {
            DModel = c.GetProperty("d_model").GetInt64(),
            SsdExpand = c.GetProperty("ssd_expand").GetDouble(),
            StateDim = c.GetProperty("state_dim").GetInt64(),
        });
        HuggingFaceParityTests.Load(model, name);
        model.eval();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read(name, "x");              // [B, C, L], L = 5·5 tokens
        long side = (long)Math.Round(Math.Sqrt(x.shape[2]));
        Assert.Equal(x.shape[2], side * side);
        using var output = model.call(x.view(x.shape[0], x.shape[1], side, side));
        var parts = output.split(new[] { x.shape[2], c.GetProperty("state_dim").GetInt64() }, 2);
        using var y = HuggingFaceParityTests.Read(name, "y");              // [B, C, 5, 5]
        using var h = HuggingFaceParityTests.Read(name, "h");              // [B, C, state_dim]
        HuggingFaceParityTests.AssertClose(y, parts[0].view(y.shape), "generated hsm_ssd y");
        HuggingFaceParityTests.AssertClose(h, parts[1], "generated hsm_ssd h");
    }

    static EfficientvimFixture FixtureModel()
    {
        var c = HuggingFaceParityTests.Config("efficientvim");
        Assert.Equal(new long[] { 16, 20, 24 }, c.GetProperty("embed_dim").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(new long[] { 2, 1, 2 }, c.GetProperty("depths").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(new long[] { 7, 5, 3 }, c.GetProperty("state_dim").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(2.0, c.GetProperty("mlp_ratio").GetDouble());
        Assert.Equal(1.5, c.GetProperty("ssd_expand").GetDouble());
        Assert.False(c.GetProperty("distillation").GetBoolean());
        var model = new EfficientvimFixture(new EfficientvimFixture.Options { NumClasses = c.GetProperty("num_classes").GetInt64() });
        HuggingFaceParityTests.Load(model, "efficientvim");
        model.eval();
        return model;
    }

    [Fact]
    public void Generated_efficientvim_matches_the_official_EfficientViM()
    {
        using var model = FixtureModel();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read("efficientvim", "x");   // [2, 3, 80, 80]: maps 5, 3, 2
        using var y = model.call(x);
        using var reference = HuggingFaceParityTests.Read("efficientvim", "y");
        HuggingFaceParityTests.AssertClose(reference, y, "generated efficientvim logits");
    }

    [Fact]
    public void Efficientvim_batch_1_is_its_row_of_the_batch()
    {
        using var model = FixtureModel();
        using var _ = torch.no_grad();
        using var x = HuggingFaceParityTests.Read("efficientvim", "x");
        using var reference = HuggingFaceParityTests.Read("efficientvim", "y");
        for (long i = 0; i < x.shape[0]; i++)
        {
            using var y = model.call(x.narrow(0, i, 1));
            HuggingFaceParityTests.AssertClose(reference.narrow(0, i, 1), y, $"efficientvim row {i} alone");
        }
    }

    [Fact]
    public void Hsm_ssd_on_an_odd_non_square_map_is_its_equations()
    {
        using var scope = torch.NewDisposeScope();
        const long dim = 6, n = 4, hgt = 3, wid = 7, inner = 9;                // ssd_expand 1.5
        using var m = new Std.HsmSsd(new Std.HsmSsd.Options(dim) { SsdExpand = 1.5, StateDim = n });
        var g = new torch.Generator(17);
        using (torch.no_grad())
            foreach (var (_, p) in m.named_parameters()) p.copy_(torch.randn(p.shape, generator: g) * 0.5);
        m.eval();
        var sd = m.state_dict();
        var x = torch.randn(new long[] { 1, dim, hgt, wid }, generator: g);
        // HSMSSD.forward with the map's own height and width in place of √L.
        var tokens = x.flatten(2);
        var bcdt = F.conv2d(F.conv1d(tokens, sd["BCdt_proj.conv.weight"]).view(1, 3 * n, hgt, wid), sd["dw.conv.weight"],
            padding: new long[] { 1, 1 }, groups: 3 * n).flatten(2);
        var bcd = bcdt.split(new[] { n, n, n }, 1);
        var a = (bcd[2] + sd["A"].view(1, -1, 1)).softmax(-1);
        var h = tokens.matmul((a * bcd[0]).transpose(-2, -1));
        var hz = F.conv1d(h, sd["hz_proj.conv.weight"]).split(new[] { inner, inner }, 1);
        h = F.conv1d(hz[0] * F.silu(hz[1]) + hz[0] * sd["D"], sd["out_proj.conv.weight"]);
        var expected = torch.cat(new[] { h.matmul(bcd[1]), h }, 2);
        var actual = m.call(x);
        Assert.Equal(new long[] { 1, dim, hgt * wid + n }, actual.shape);
        double err = (expected - actual).abs().max().item<float>();
        Assert.True(err <= 1e-5 * Math.Max(1, expected.abs().max().item<float>()), $"hsm_ssd on 3×7: max abs error {err:G4}");
    }
}
