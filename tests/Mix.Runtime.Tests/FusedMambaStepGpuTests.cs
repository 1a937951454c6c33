using System;
using Mix.Zoo;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The fused Mamba decoding step (<see cref="FusedMambaStep"/>) in the zoo's generated Mamba LM decoding through
/// <see cref="CausalModel"/>: a prompt, then tokens one at a time (the fused step: four kernels per layer, the block's
/// RMSNorm and residual add folded in), against the same model's full forward over the whole sequence (the reference
/// path). Tolerances (relative L2 of the logits): float32 1e-5, bfloat16 3e-2 (the reference rounds every
/// intermediate to bfloat16, the fused step keeps them in float32).
/// </summary>
[Trait("Category", "Gpu")]
public class FusedMambaStepGpuTests
{
    [Theory]
    [InlineData("f32", 1, 48)]    // batch-1 decode, rows of whole 16-byte vectors
    [InlineData("f32", 11, 48)]   // two block rows of the batch, the second partial
    [InlineData("f32", 3, 30)]    // rows that are not whole vectors
    [InlineData("f32", 9, 768)]   // mamba-130m's width: staged rows near the 48 KiB of shared memory
    [InlineData("bf16", 1, 64)]
    [InlineData("bf16", 5, 40)]
    public void DecodeStepsEqualTheFullForward(string dtype, int batch, int dModel)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(batch * 100 + dModel);
        using var model = new Mamba130m(new Mamba130m.Options { VocabSize = 97, DModel = dModel, NLayer = 3 });
        // non-trivial skip and state decay everywhere (the defaults are ones and log(1..n))
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith(".D", StringComparison.Ordinal) || name.EndsWith("A_log", StringComparison.Ordinal))
                p.copy_(torch.randn_like(p) * 0.5);
        model.to(Gpu.Device);
        if (io != ScalarType.Float32) model.to(io);
        model.eval();
        var lm = new CausalModel(model, 97);
        const int prompt = 5, steps = 4;
        var ids = torch.randint(0, 97, new long[] { batch, prompt + steps }, dtype: ScalarType.Int64, device: Gpu.Device);
        var full = model.call(ids);

        long before = FusedMambaStep.Steps;
        using var cache = lm.CreateCache(batch);
        var logits = lm.Forward(ids.narrow(1, 0, prompt), cache);
        Assert.InRange(Gpu.RelErr(logits, full.narrow(1, 0, prompt)), 0, Gpu.Tol(io, 1e-5, 3e-2, 3e-2));
        for (int t = prompt; t < prompt + steps; t++)
        {
            long was = FusedMambaStep.Steps;
            var step = lm.Forward(ids.narrow(1, t, 1), cache);
            Assert.True(FusedMambaStep.Steps - was >= 3, $"step {t}: {FusedMambaStep.Steps - was} fused layers of 3; last decline: {FusedMambaStep.LastDecline}");
            Assert.InRange(Gpu.RelErr(step, full.narrow(1, t, 1)), 0, Gpu.Tol(io, 1e-5, 3e-2, 3e-2));
        }
        // every layer of every step took the fused kernels (not a silent fallback to the reference)
        Assert.True(FusedMambaStep.Steps - before >= 3 * steps, $"{FusedMambaStep.Steps - before} fused steps for {3 * steps} layer steps; last decline: {FusedMambaStep.LastDecline}");
    }
}
