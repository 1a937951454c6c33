using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Zoo;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// The decoding-graph checks (<see cref="CausalModel.CudaGraphs"/>), run on the GPU with real CUDA graphs
/// (<see cref="DecodeGraphGpuTests"/>) and on the CPU with an emulated recorder (<see cref="DecodeGraphEmulationTests"/>):
/// graph steps against the same steps run eagerly in another cache (fp32 ≤ 1e-5 relative, bf16 ≤ 2e-2) and against
/// the full forward, the counts of every slot, the reports (one warm-up and one recording per cache, a new recording
/// when a KV buffer grows), a reset and a new prefill, padded rows, generation with host ids and masks.
/// </summary>
internal static class DecodeGraphScenarios
{
    private const long Vocab = 61;

    private static nn.Module<Tensor, Tensor> Model(string name, ScalarType dtype, Device device)
    {
        torch.manual_seed(11);
        nn.Module<Tensor, Tensor> m = name switch
        {
            "mamba2_lm" => new Mamba2Lm(new Mamba2Lm.Options { VocabSize = Vocab, DModel = 64, NLayer = 3, DState = 16, Headdim = 16, Ngroups = 2, ChunkSize = 8 }),
            "gla_lm" => new GlaLm(new GlaLm.Options { VocabSize = Vocab, DModel = 64, NLayer = 3, NumHeads = 4, NumKvHeads = 2, IntermediateSize = 96 }),
            // attention every second layer: the recording stops before each attention (its KV cache grows) and goes on after
            _ => new HybridLm(new HybridLm.Options { VocabSize = Vocab, DModel = 64, NLayer = 4, AttnEvery = 2 }),
        };
        using (torch.no_grad())
            foreach (var (key, p) in m.named_parameters())
                if (p.dim() == 1 && !key.EndsWith("A_log", StringComparison.Ordinal) && !key.EndsWith("dt_bias", StringComparison.Ordinal))
                    p.add_(torch.randn(p.shape) * 0.2);
        m.to(device);
        if (dtype != ScalarType.Float32) m.to(dtype);
        m.eval();
        return m;
    }

    public static void RecordedStepsEqualEagerSteps(string name, string dtype, int batch, string kv, Device device, bool emulated)
    {
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name, io, device);
        var eager = new CausalModel(model, Vocab);
        var graphed = new CausalModel(model, Vocab) { CudaGraphs = true };
        const int prompt = 5, steps = 6;
        var ids = torch.randint(0, Vocab, new long[] { batch, prompt + steps }, device: device);
        var full = model.call(ids);
        var options = kv switch
        {
            "small" => new KvCacheOptions { InitialCapacity = 4 },
            "window" => new KvCacheOptions { SlidingWindow = 64 },
            "kivi4" => new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = KvQuantMode.Kivi4 } },
            _ => null,
        };
        bool quantized = kv == "kivi4";

        using var ce = eager.CreateCache(batch, options);
        using var cg = graphed.CreateCache(batch, options);
        for (int round = 0; round < 2; round++)
        {
            // the second round: a reset and a new prefill (an eager step that replaces the states) before the graph again
            eager.Forward(ids.narrow(1, 0, prompt), ce);
            graphed.Forward(ids.narrow(1, 0, prompt), cg);
            for (int t = prompt; t < prompt + steps; t++)
            {
                var e = eager.Forward(ids.narrow(1, t, 1), ce);
                var g = graphed.Forward(ids.narrow(1, t, 1), cg);
                Assert.InRange(Gpu.RelErr(g, e), 0, Gpu.Tol(io, 1e-5, 2e-2, 2e-2));
                if (!quantized) Assert.InRange(Gpu.RelErr(g, full.narrow(1, t, 1)), 0, Gpu.Tol(io, 1e-4, 3e-2, 3e-2));
            }
            Assert.Equal(ce.Slots.Select(s => s.RowTokens), cg.Slots.Select(s => s.RowTokens));
            ce.Reset();
            cg.Reset();
        }
        var report = Assert.Single(graphed.DecodeGraphReport(cg));
        Assert.Null(report.Failure);
        Assert.True(report.Ready);
        if (!emulated) Assert.True(report.Nodes >= 3, $"{report.Nodes} nodes for 3 layers");
        if (kv == "small")
        {
            // 4 → 8 → 16 positions: each growth costs a warm-up step and a new recording
            Assert.True(report.Recordings >= 2, $"{report.Recordings} recordings");
        }
        else
        {
            // one warm-up step, then every step a replay (the recording's step included), in both rounds
            Assert.Equal(2 * steps - 1, report.Replays);
            Assert.Equal(1, report.Recordings);
        }
        // layers left out of the graph split it: the hybrid's two attention layers with a window or a quantized cache
        if (!emulated) Assert.Equal(name == "hybrid_lm" && kv is "window" or "kivi4" ? 3 : 1, report.Segments);
        Console.WriteLine($"{name} {dtype} b{batch} {kv}: {report.Nodes} graph nodes in {report.Segments} segments a step, {report.Recordings} recordings");
    }

    public static void PaddedRowsReplayAGraphOfTheirOwn(string name, Device device)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name, ScalarType.Float32, device);
        var eager = new CausalModel(model, Vocab);
        var graphed = new CausalModel(model, Vocab) { CudaGraphs = true };
        var ids = torch.randint(0, Vocab, new long[] { 2, 10 }, device: device);
        // row 1 has a pad at steps 5 and 7 (a row that waits while the other decodes)
        var mask = torch.ones(2, 10, dtype: ScalarType.Int64, device: device);
        mask[1, 5] = torch.tensor(0L);
        mask[1, 7] = torch.tensor(0L);
        using var ce = eager.CreateCache(2);
        using var cg = graphed.CreateCache(2);
        eager.Forward(ids.narrow(1, 0, 4), ce);
        graphed.Forward(ids.narrow(1, 0, 4), cg);
        for (int t = 4; t < 10; t++)
        {
            var m = mask.narrow(1, t, 1);
            var e = eager.Forward(ids.narrow(1, t, 1), ce, m);
            var g = graphed.Forward(ids.narrow(1, t, 1), cg, m);
            Assert.InRange(Gpu.RelErr(g, e), 0, 1e-5);
        }
        // unmasked steps use the other graph
        for (int t = 0; t < 3; t++)
        {
            var e = eager.Forward(ids.narrow(1, t, 1), ce);
            var g = graphed.Forward(ids.narrow(1, t, 1), cg);
            Assert.InRange(Gpu.RelErr(g, e), 0, 1e-5);
        }
        var reports = graphed.DecodeGraphReport(cg);
        Assert.Equal(2, reports.Count);
        Assert.All(reports, r => Assert.True(r.Ready && r.Failure is null, r.ToString()));
        Assert.Equal(new long[] { 5, 2 }, reports.Select(r => r.Replays));
    }

    public static void GenerationGivesTheEagerTokens(string name, Device device)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name, ScalarType.Float32, device);
        // prompts of different lengths: left padding and a mask every step (host ids and masks, as the generator feeds)
        var prompts = new[] { new long[] { 3, 9, 27, 4, 1 }, new long[] { 7, 2 } };
        var options = new GenerationOptions { MaxNewTokens = 12, Temperature = 0 };
        var eager = TextGenerator.Generate(new CausalModel(model, Vocab), prompts, options);
        var graphed = new CausalModel(model, Vocab) { CudaGraphs = true };
        using var cache = graphed.CreateCache(prompts.Length);
        var withGraphs = TextGenerator.Generate(graphed, prompts, options, cache);
        Assert.Equal(eager.Tokens, withGraphs.Tokens);
        Assert.Contains(graphed.DecodeGraphReport(cache), r => r.Ready && r.Replays > 0);
    }
}
