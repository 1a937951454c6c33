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
// Toggles the global fusion switches: never beside another test that relies on them (a decode test once took the
// reference path while the zoo-wide comparison had MixDispatch.FusedEnabled off).
[Collection(nameof(FusedSwitchCollection))]
public class FusedMambaStepGpuTests
{
    [Theory]
    [InlineData("f32", 1, 48, false)]    // batch-1 decode, rows of whole 16-byte vectors
    [InlineData("f32", 11, 48, false)]   // two block rows of the batch, the second partial
    [InlineData("f32", 11, 48, true)]    // the same with library GEMMs for in_proj / out_proj
    [InlineData("f32", 3, 30, false)]    // rows that are not whole vectors
    [InlineData("f32", 3, 30, true)]
    [InlineData("f32", 9, 768, false)]   // mamba-130m's width: staged rows near the 48 KiB of shared memory
    [InlineData("f32", 9, 768, true)]
    [InlineData("bf16", 1, 64, false)]
    [InlineData("bf16", 5, 40, false)]
    [InlineData("bf16", 5, 40, true)]
    public void DecodeStepsEqualTheFullForward(string dtype, int batch, int dModel, bool libraryProjections)
    {
        Gpu.Require();
        using var mode = LibraryProjections(libraryProjections ? 1 : int.MaxValue);
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

        long before = FusedMambaStep.Steps, replays = FusedMambaStack.Replays, persistentLaunches = FusedMambaStack.PersistentLaunches;
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
        // the first step watched the layers, the others ran them as one unit: by default the persistent kernel at batch 1,
        // the graph above it; library GEMMs cannot be recorded
        if (libraryProjections)
            Assert.Equal(replays, FusedMambaStack.Replays);
        else if (FusedMambaStack.Persistent && batch <= FusedMambaStack.PersistentMaxBatch)
            Assert.True(FusedMambaStack.PersistentLaunches - persistentLaunches >= steps - 1,
                $"{FusedMambaStack.PersistentLaunches - persistentLaunches} persistent launches for {steps - 1} steps; last decline: {FusedMambaStack.LastPersistentDecline}");
        else
            Assert.True(FusedMambaStack.Replays - replays >= steps - 1, $"{FusedMambaStack.Replays - replays} graph replays for {steps - 1} steps");
    }

    /// <summary>Sets <see cref="FusedMambaStep.LibraryProjectionsFromBatch"/> until disposed.</summary>
    internal static IDisposable LibraryProjections(int fromBatch)
    {
        int saved = FusedMambaStep.LibraryProjectionsFromBatch;
        FusedMambaStep.LibraryProjectionsFromBatch = fromBatch;
        return new Restore(() => FusedMambaStep.LibraryProjectionsFromBatch = saved);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    /// <summary>
    /// The layers replayed as one CUDA graph per token (<see cref="FusedMambaStack"/>) give the same logits as the same
    /// fused kernels launched layer by layer (the graph runs those kernels on the same buffers: equal to rounding, 1e-6),
    /// over a greedy decode of twelve tokens with two caches taking turns (each keeps its own graphs, whose state
    /// buffers alternate every step), and a cache reset in the middle.
    /// </summary>
    [Theory]
    [InlineData("f32", 1)]
    [InlineData("f32", 4)]
    [InlineData("bf16", 2)]
    public void LayerGraphReplayEqualsLayerByLayer(string dtype, int batch)
    {
        Gpu.Require();
        using var mode = LibraryProjections(int.MaxValue);   // the step's own kernels, which the graph records
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31 + batch);
        using var model = new Mamba130m(new Mamba130m.Options { VocabSize = 101, DModel = 64, NLayer = 5 });
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith(".D", StringComparison.Ordinal) || name.EndsWith("A_log", StringComparison.Ordinal))
                p.copy_(torch.randn_like(p) * 0.5);
        model.to(Gpu.Device);
        if (io != ScalarType.Float32) model.to(io);
        model.eval();
        var lm = new CausalModel(model, 101);
        var prompts = new[]
        {
            torch.randint(0, 101, new long[] { batch, 6 }, dtype: ScalarType.Int64, device: Gpu.Device),
            torch.randint(0, 101, new long[] { batch, 3 }, dtype: ScalarType.Int64, device: Gpu.Device),
        };

        Tensor[][] Decode(bool graph)
        {
            bool saved = FusedMambaStack.Enabled, savedPersistent = FusedMambaStack.Persistent;
            FusedMambaStack.Enabled = graph;
            FusedMambaStack.Persistent = false; // the graph is what this test replays
            try
            {
                using var a = lm.CreateCache(batch);
                using var b = lm.CreateCache(batch);
                var caches = new[] { a, b };
                var toks = new Tensor[2];
                var outs = new Tensor[2][];
                for (int c = 0; c < 2; c++)
                {
                    toks[c] = lm.Forward(prompts[c], caches[c]).narrow(1, prompts[c].shape[1] - 1, 1).argmax(-1);
                    outs[c] = new Tensor[12];
                }
                for (int t = 0; t < 12; t++)
                {
                    if (t == 7)
                    {
                        // a reset keeps the slots' buffers: the graphs stay valid and must see the zeroed states
                        caches[1].Reset();
                        toks[1] = lm.Forward(prompts[1], caches[1]).narrow(1, prompts[1].shape[1] - 1, 1).argmax(-1);
                    }
                    for (int c = 0; c < 2; c++)
                    {
                        var logits = lm.Forward(toks[c], caches[c]);
                        outs[c][t] = logits.clone();
                        toks[c] = logits.argmax(-1);
                    }
                }
                return outs;
            }
            finally { FusedMambaStack.Enabled = saved; FusedMambaStack.Persistent = savedPersistent; }
        }

        var layerByLayer = Decode(graph: false);
        long replays = FusedMambaStack.Replays;
        var replayed = Decode(graph: true);
        Assert.True(FusedMambaStack.Replays - replays >= 2 * 10, $"{FusedMambaStack.Replays - replays} graph replays for 24 steps");
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < 12; t++)
                Assert.InRange(Gpu.RelErr(replayed[c][t], layerByLayer[c][t]), 0, 1e-6);
    }

    /// <summary>
    /// The persistent kernel (<see cref="FusedMambaStack.Persistent"/>: a segment's layers in one cooperative launch per
    /// token, phases separated by a grid barrier) against the layer graph and the layer-by-layer fused step: twelve greedy
    /// steps with two caches taking turns and a reset in the middle, every mode fed the tokens the layer-by-layer run chose
    /// (so that a near-tie cannot send the runs apart). The persistent grid splits the weight rows over warps as it suits
    /// its size, so its sums run in another order: float32 1e-5, bfloat16 3e-2 relative (the graph equals the layer-by-layer
    /// step to 1e-6). mamba-130m's width at batch 3 stages the widest rows the kernel takes; one and two blocks per
    /// multiprocessor. <paramref name="variant"/>: the kernel's builds, "" the counter-and-generation barrier and four
    /// phases, "fb" <see cref="FusedMambaStack.PersistentFastBarrier"/>, "fx" <see cref="FusedMambaStack.PersistentFoldXProj"/>
    /// (x_proj summed per block, then over the blocks: another order again, the same tolerances), "fb+fx" both (the
    /// default since run 18a).
    /// </summary>
    [Theory]
    [InlineData("f32", 1, 64, 2, "")]
    [InlineData("f32", 2, 48, 1, "")]
    [InlineData("f32", 3, 768, 2, "")]
    [InlineData("bf16", 1, 64, 2, "")]
    [InlineData("bf16", 2, 64, 4, "")]
    [InlineData("f32", 1, 64, 2, "fb")]
    [InlineData("f32", 1, 768, 1, "fx")]
    [InlineData("f32", 3, 768, 2, "fb+fx")]
    [InlineData("bf16", 1, 64, 2, "fx")]
    [InlineData("bf16", 1, 768, 2, "fb+fx")]
    public void PersistentKernelEqualsGraphAndLayerByLayer(string dtype, int batch, int dModel, int blocksPerSm, string variant)
    {
        Gpu.Require();
        using var mode = LibraryProjections(int.MaxValue);
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(53 + batch + dModel);
        using var model = new Mamba130m(new Mamba130m.Options { VocabSize = 103, DModel = dModel, NLayer = 5 });
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith(".D", StringComparison.Ordinal) || name.EndsWith("A_log", StringComparison.Ordinal))
                p.copy_(torch.randn_like(p) * 0.5);
        model.to(Gpu.Device);
        if (io != ScalarType.Float32) model.to(io);
        model.eval();
        var lm = new CausalModel(model, 103);
        var prompts = new[]
        {
            torch.randint(0, 103, new long[] { batch, 6 }, dtype: ScalarType.Int64, device: Gpu.Device),
            torch.randint(0, 103, new long[] { batch, 3 }, dtype: ScalarType.Int64, device: Gpu.Device),
        };
        const int steps = 12;
        var fed = new Tensor[2][];

        // graph / persistent as the mode; the layer-by-layer run (both off) chooses the tokens the others are fed
        Tensor[][] Decode(bool graph, bool persistent)
        {
            bool savedGraph = FusedMambaStack.Enabled, savedPersistent = FusedMambaStack.Persistent;
            bool savedFast = FusedMambaStack.PersistentFastBarrier, savedFold = FusedMambaStack.PersistentFoldXProj;
            int savedBlocks = FusedMambaStack.PersistentBlocksPerSm, savedMaxBatch = FusedMambaStack.PersistentMaxBatch;
            FusedMambaStack.Enabled = graph;
            FusedMambaStack.Persistent = persistent;
            FusedMambaStack.PersistentFastBarrier = variant.Contains("fb", StringComparison.Ordinal);
            FusedMambaStack.PersistentFoldXProj = variant.Contains("fx", StringComparison.Ordinal);
            FusedMambaStack.PersistentMaxBatch = PersistentMambaSegment.MaxBatch;
            FusedMambaStack.PersistentBlocksPerSm = blocksPerSm;
            try
            {
                using var a = lm.CreateCache(batch);
                using var b = lm.CreateCache(batch);
                var caches = new[] { a, b };
                var outs = new Tensor[2][];
                bool choose = fed[0] is null;
                Tensor Last(Tensor logits) => logits.narrow(1, logits.shape[1] - 1, 1).argmax(-1);
                for (int c = 0; c < 2; c++)
                {
                    outs[c] = new Tensor[steps];
                    if (choose) fed[c] = new Tensor[steps];
                    var first = lm.Forward(prompts[c], caches[c]);
                    if (choose) fed[c][0] = Last(first);
                }
                for (int t = 0; t < steps; t++)
                {
                    if (t == 7)
                    {
                        // a reset keeps the slots' buffers (and so the persistent kernel's table) and zeroes the states
                        caches[1].Reset();
                        var again = lm.Forward(prompts[1], caches[1]);
                        if (choose) fed[1][7] = Last(again);
                    }
                    for (int c = 0; c < 2; c++)
                    {
                        var logits = lm.Forward(fed[c][t], caches[c]);
                        outs[c][t] = logits.clone();
                        if (choose && t + 1 < steps && !(c == 1 && t + 1 == 7)) fed[c][t + 1] = Last(logits);
                    }
                }
                return outs;
            }
            finally
            {
                FusedMambaStack.Enabled = savedGraph;
                FusedMambaStack.Persistent = savedPersistent;
                FusedMambaStack.PersistentBlocksPerSm = savedBlocks;
                FusedMambaStack.PersistentMaxBatch = savedMaxBatch;
                FusedMambaStack.PersistentFastBarrier = savedFast;
                FusedMambaStack.PersistentFoldXProj = savedFold;
            }
        }

        var layerByLayer = Decode(graph: false, persistent: false);
        var graphed = Decode(graph: true, persistent: false);
        long launches = FusedMambaStack.PersistentLaunches;
        var persistentRun = Decode(graph: true, persistent: true);
        Assert.True(FusedMambaStack.PersistentLaunches - launches >= 2 * 10,
            $"{FusedMambaStack.PersistentLaunches - launches} persistent launches for 24 steps; last decline: {FusedMambaStack.LastPersistentDecline}");
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < steps; t++)
            {
                Assert.InRange(Gpu.RelErr(graphed[c][t], layerByLayer[c][t]), 0, 1e-6);
                Assert.InRange(Gpu.RelErr(persistentRun[c][t], layerByLayer[c][t]), 0, Gpu.Tol(io, 1e-5, 3e-2, 3e-2));
            }
    }

    /// <summary>With <see cref="FusedMambaStack.Persistent"/> on, an int8 copy of the LM (which the persistent kernel does
    /// not read) keeps the layer graph: no persistent launch, graph replays, the same logits as its full forward.</summary>
    [Fact]
    public void PersistentKernelLeavesQuantizedLayersToTheGraph()
    {
        Gpu.Require();
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var model = new Mamba130m(new Mamba130m.Options { VocabSize = 89, DModel = 64, NLayer = 3 });
        model.to(Gpu.Device);
        model.eval();
        Mix.Runtime.Quantization.Quantizer.Quantize(model, new Mix.Runtime.Quantization.QuantizationOptions
        {
            Mode = Mix.Runtime.Quantization.WeightQuantMode.Int8PerChannel,
        });
        var lm = new CausalModel(model, 89);
        var ids = torch.randint(0, 89, new long[] { 1, 8 }, dtype: ScalarType.Int64, device: Gpu.Device);
        var full = model.call(ids);
        bool saved = FusedMambaStack.Persistent;
        FusedMambaStack.Persistent = true;
        try
        {
            long launches = FusedMambaStack.PersistentLaunches, replays = FusedMambaStack.Replays;
            using var cache = lm.CreateCache(1);
            lm.Forward(ids.narrow(1, 0, 4), cache);
            for (int t = 4; t < 8; t++)
                Assert.InRange(Gpu.RelErr(lm.Forward(ids.narrow(1, t, 1), cache), full.narrow(1, t, 1)), 0, 1e-4);
            Assert.Equal(launches, FusedMambaStack.PersistentLaunches);
            Assert.True(FusedMambaStack.Replays - replays >= 3, $"{FusedMambaStack.Replays - replays} graph replays for 4 steps");
            Assert.Contains("quantized", FusedMambaStack.LastPersistentDecline ?? "", StringComparison.Ordinal);
        }
        finally { FusedMambaStack.Persistent = saved; }
    }

    /// <summary>
    /// An int8 (per-channel) or int4 (grouped) copy of the LM decodes through the fused step too (in_proj, x_proj and
    /// out_proj read their codes, scales and zero points in the kernels; dt_proj and the head stay full precision, the
    /// quantizer's default), against the same quantized model's full forward (the reference path dequantizes): float32
    /// 1e-4, bfloat16 3e-2 relative. int4 groups of 32 take the 16-byte loads, groups of 8 the scalar ones.
    /// </summary>
    [Theory]
    [InlineData("int8", "f32", 1, 64)]
    [InlineData("int8", "f32", 3, 40)]
    [InlineData("int8", "bf16", 2, 64)]
    [InlineData("int4", "f32", 1, 64)]
    [InlineData("int4", "f32", 3, 40)]
    [InlineData("int4", "bf16", 2, 64)]
    public void QuantizedDecodeStepsEqualTheFullForward(string mode, string dtype, int batch, int dModel)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7 * batch + dModel);
        using var model = new Mamba130m(new Mamba130m.Options { VocabSize = 89, DModel = dModel, NLayer = 3 });
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith(".D", StringComparison.Ordinal) || name.EndsWith("A_log", StringComparison.Ordinal))
                p.copy_(torch.randn_like(p) * 0.5);
        model.to(Gpu.Device);
        if (io != ScalarType.Float32) model.to(io);
        model.eval();
        Mix.Runtime.Quantization.Quantizer.Quantize(model, new Mix.Runtime.Quantization.QuantizationOptions
        {
            Mode = mode == "int8" ? Mix.Runtime.Quantization.WeightQuantMode.Int8PerChannel : Mix.Runtime.Quantization.WeightQuantMode.Int4Grouped,
            GroupSize = dModel % 32 == 0 ? 32 : 8,
        });
        var lm = new CausalModel(model, 89);
        const int prompt = 4, steps = 4;
        var ids = torch.randint(0, 89, new long[] { batch, prompt + steps }, dtype: ScalarType.Int64, device: Gpu.Device);
        var full = model.call(ids);
        long before = FusedMambaStep.Steps;
        using var cache = lm.CreateCache(batch);
        lm.Forward(ids.narrow(1, 0, prompt), cache);
        for (int t = prompt; t < prompt + steps; t++)
        {
            var step = lm.Forward(ids.narrow(1, t, 1), cache);
            Assert.InRange(Gpu.RelErr(step, full.narrow(1, t, 1)), 0, Gpu.Tol(io, 1e-4, 3e-2, 3e-2));
        }
        Assert.True(FusedMambaStep.Steps - before >= 3 * steps, $"{FusedMambaStep.Steps - before} fused steps for {3 * steps} layer steps; last decline: {FusedMambaStep.LastDecline}");
    }
}
