using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Quantization;
using Mix.Runtime.Tests.Caches;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

public class AwqBlockSearchTests
{
    /// <summary>Norm weights with a few large channels, so the layers after them see outlier input channels (as in LLMs).</summary>
    private static void AddOutlierChannels(nn.Module model)
    {
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith("norm_f.weight", StringComparison.Ordinal)
                || name.EndsWith("attn_norm.weight", StringComparison.Ordinal) || name.EndsWith("mlp_norm.weight", StringComparison.Ordinal))
                foreach (int c in new[] { 3, 17 }) p[c] = p[c] * 12f;
    }

    /// <summary>Σ‖block_q(x) − block(x)‖² / Σ‖block(x)‖² over <paramref name="inputs"/>.</summary>
    private static double BlockError(nn.Module<Tensor, Tensor> reference, nn.Module<Tensor, Tensor> quantized, List<Tensor> inputs)
    {
        double err = 0, energy = 0;
        foreach (var x in inputs)
        {
            using var scope = torch.NewDisposeScope();
            var y = reference.forward(x);
            err += (quantized.forward(x) - y).square().sum().item<float>();
            energy += y.square().sum().item<float>();
        }
        return err / energy;
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("attention")]
    [InlineData("hybrid")]
    public void BlockObjectiveNeverLosesToPerLayerSearchOrRounding(string kind)
    {
        using var noGrad = torch.no_grad();
        torch.manual_seed(11);
        using var fp = CacheInvariantTests.Build(kind);
        AddOutlierChannels(fp);
        fp.eval();
        nn.Module<Tensor, Tensor> Copy()
        {
            var m = CacheInvariantTests.Build(kind);
            m.load_state_dict(fp.state_dict());
            m.eval();
            return m;
        }
        using var rounding = Copy();
        using var perLayer = Copy();
        using var block = Copy();
        using var calib = RandomIds(2, 32, 40, 77);
        // a coarser α grid than the default 21 points keeps the block search (a block forward per candidate) quick
        var o = new QuantizationOptions { GroupSize = 32, AwqAlphaGrid = Enumerable.Range(0, 11).Select(i => i / 10.0).ToArray() };
        Quantizer.Quantize(rounding, o);
        var layerReport = Quantizer.Quantize(perLayer, o with { CalibrationInputs = new[] { calib }, AwqObjective = AwqObjective.Layer });
        var report = Quantizer.Quantize(block, o with { CalibrationInputs = new[] { calib } });
        Assert.Empty(layerReport.BlockErrors);
        int expectedBlocks = kind == "hybrid" ? 4 : 2;
        Assert.Equal(expectedBlocks, report.BlockErrors.Count);
        Assert.Equal(report.Folded.Keys.OrderBy(k => k), layerReport.Folded.Keys.OrderBy(k => k));

        // the float model's block inputs on the calibration data, measured independently of the quantizer
        var fpModules = fp.named_modules().ToDictionary(p => p.name, p => p.module);
        var inputs = report.BlockErrors.ToDictionary(b => b.Block, _ => new List<Tensor>());
        var hooks = report.BlockErrors.Select(b => ((nn.Module<Tensor, Tensor>)fpModules[b.Block]).register_forward_pre_hook((_, x) =>
        {
            inputs[b.Block].Add(x.detach().clone().DetachFromDisposeScope());
            return x;
        })).ToList();
        fp.forward(calib).Dispose();
        foreach (var h in hooks) h.remove();

        foreach (var b in report.BlockErrors)
        {
            Assert.Single(inputs[b.Block]);
            var reference = (nn.Module<Tensor, Tensor>)fpModules[b.Block];
            nn.Module<Tensor, Tensor> Of(nn.Module m) => (nn.Module<Tensor, Tensor>)m.named_modules().First(p => p.name == b.Block).module;
            double eRound = BlockError(reference, Of(rounding), inputs[b.Block]);
            double eLayer = BlockError(reference, Of(perLayer), inputs[b.Block]);
            double eBlock = BlockError(reference, Of(block), inputs[b.Block]);
            Record($"AWQ block objective, {kind} {b.Block} (int4 g32, outlier norm channels): block rel. sq. error rounding {eRound:E3}, per-layer AWQ {eLayer:E3}, block AWQ {eBlock:E3}");
            // what the search measured is what the quantized layers (folded scales, input scales, packed codes) do
            Assert.InRange(eBlock, b.Chosen * 0.99 - 1e-9, b.Chosen * 1.01 + 1e-9);
            Assert.InRange(eRound, b.Rounding * 0.99 - 1e-9, b.Rounding * 1.01 + 1e-9);
            Assert.True(eBlock <= eLayer * 1.001 + 1e-12, $"{b.Block}: block {eBlock} > per-layer {eLayer}");
            Assert.True(eBlock <= eRound * 1.001 + 1e-12, $"{b.Block}: block {eBlock} > rounding {eRound}");
        }
        using (var logitsRef = fp.forward(calib))
        using (var yLayer = perLayer.forward(calib))
        using (var yBlock = block.forward(calib))
        using (var yRound = rounding.forward(calib))
            Record($"AWQ {kind} logits rel. L2 (calibration ids): rounding {RelNorm(yRound, logitsRef):F4}, per-layer {RelNorm(yLayer, logitsRef):F4}, block {RelNorm(yBlock, logitsRef):F4}");
        foreach (var list in inputs.Values) foreach (var x in list) x.Dispose();
    }
}
