using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using Mix.Examples.Language.Models;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// Greedy decode tokens/s of the language example's attention LM (<c>char_attention</c>, examples/Language/language.mix)
/// with float16 and bfloat16 weights and with int8 / int4 weight-only linears (<see cref="Quantizer"/>: every linear
/// but <c>lm_head</c>; bf16 activations, so decode rows take the tensor-core kernel), at batch 1 and 8, through
/// <see cref="CausalModel"/>'s KV cache (the unquantized cache in the model's dtype, as the example's generation uses
/// it). Two sizes: the example's default (d = 64, 2 layers: host-bound, weights are a few hundred KB) and a larger one
/// where the weights dominate (d = 2048, 8 layers, head_dim 128: 2.7 GB of fp32 parameters, 0.67 GB in bf16). The
/// timed part is 64 decode steps after an untimed 16-token prefill; median over ≥ 3 runs. <c>--only lm-quant</c>.
/// </summary>
internal static class LmQuantBench
{
    private const int Steps = 64;
    private const int Prompt = 16;
    private const long Vocab = 84;

    public static void Run(bool quick)
    {
        var sizes = new (string name, CharAttention.Options options, int group)[]
        {
            ("char_attention d64 x2 (example)", new CharAttention.Options { VocabSize = Vocab }, 64),
            ("char_attention d2048 x8", new CharAttention.Options { VocabSize = Vocab, DModel = 2048, NLayer = 8, HeadDim = 128 }, 128),
        };
        foreach (var (name, options, group) in sizes)
        {
            try { Size(name, options, group, quick); }
            catch (Exception e)
            {
                ModelBench.Notes.Add($"{name}: failed: {e.GetType().Name}: {e.Message}");
                Console.Error.WriteLine(ModelBench.Notes[^1]);
            }
        }
    }

    private static void Size(string name, CharAttention.Options options, int group, bool quick)
    {
        torch.manual_seed(0);
        using var source = new CharAttention(options);
        var weights = source.state_dict();
        torch.manual_seed(1);
        var prompts = new Dictionary<int, Tensor>();
        foreach (var b in new[] { 1, 8 })
            prompts[b] = torch.randint(0, Vocab, new long[] { b, Prompt }, dtype: ScalarType.Int64, device: torch.CUDA).DetachFromDisposeScope();
        Tensor? bf16Logits = null;
        foreach (var (label, dtype, mode) in new (string, ScalarType, WeightQuantMode?)[]
                 {
                     ("fp16 weights", ScalarType.Float16, null),
                     ("bf16 weights", ScalarType.BFloat16, null),
                     ("int8 weights, bf16 activations", ScalarType.BFloat16, WeightQuantMode.Int8PerChannel),
                     ($"int4 g{group} weights, bf16 activations", ScalarType.BFloat16, WeightQuantMode.Int4Grouped),
                 })
        {
            try
            {
                using var model = new CharAttention(options);
                model.load_state_dict(weights);
                model.to(torch.CUDA);
                model.to(dtype);
                model.eval();
                string impl = $"CausalModel KV cache, {label}";
                if (mode is { } m)
                {
                    var report = Quantizer.Quantize(model, new QuantizationOptions { Mode = m, GroupSize = group });
                    impl += $" ({report.Quantized.Count} linears quantized)";
                }
                // what quantization does to the logits of the prompt (against the bf16 model)
                using (var scope = torch.NewDisposeScope())
                {
                    var logits = model.call(prompts[1]).to(ScalarType.Float64, torch.CPU);
                    if (dtype == ScalarType.BFloat16 && mode is null) bf16Logits = logits.DetachFromDisposeScope();
                    else if (bf16Logits is not null && mode is not null)
                        ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture,
                            $"{name}, {label}: prompt logits rel. L2 vs the bf16 model {ModelBench.RelErr(logits, bf16Logits):E2}"));
                }
                foreach (var b in new[] { 1, 8 })
                    foreach (bool graphs in new[] { false, true })
                        Decode(name, graphs ? impl + ", one CUDA graph a step" : impl, model, dtype, b, prompts[b], quick,
                            expectKernel: mode is not null, graphs);
            }
            catch (Exception e)
            {
                ModelBench.Notes.Add($"{name}, {label}: failed: {e.GetType().Name}: {e.Message}");
                Console.Error.WriteLine(ModelBench.Notes[^1]);
            }
        }
        bf16Logits?.Dispose();
        foreach (var p in prompts.Values) p.Dispose();
    }

    private static void Decode(string name, string impl, nn.Module<Tensor, Tensor> model, ScalarType dtype, int batch, Tensor prompt, bool quick,
        bool expectKernel, bool graphs)
    {
        // graphs: CausalModel.CudaGraphs (each run's cache warms up and records in its first two steps, inside the timing)
        var lm = new CausalModel(model, Vocab) { CudaGraphs = graphs };
        // the cached step reproduces the full forward's logits (prompt + one token)
        double stepErr;
        using (var scope = torch.NewDisposeScope())
        {
            using var cache = lm.CreateCache(batch);
            // three steps, so that a graph's replay is the one compared
            var seq = prompt;
            var tok = lm.Forward(prompt, cache).narrow(1, Prompt - 1, 1).argmax(-1);
            Tensor step = tok;
            for (int i = 0; i < 3; i++)
            {
                seq = torch.cat(new[] { seq, tok }, 1);
                step = lm.Forward(tok, cache);
                tok = step.argmax(-1);
            }
            var full = model.call(seq).narrow(1, seq.shape[1] - 1, 1);
            stepErr = ModelBench.RelErr(step, full);
            if (graphs && !lm.DecodeGraphReport(cache).Any(r => r.Ready))
                impl += $" [no graph: {lm.DecodeGraphReport(cache).FirstOrDefault()?.Failure ?? "none made"}]";
        }
        double target = quick ? 0.5 : 2.0;
        var samples = new List<double>();
        var gpu = new List<double>();
        using var timer = new CudaTimer();
        var sw = new Stopwatch();
        var total = Stopwatch.StartNew();
        long launchesBefore = QuantizedGemm.Launches;
        for (int run = 0; samples.Count < 10 && (samples.Count < 3 || total.Elapsed.TotalSeconds < target); run++)
        {
            using var scope = torch.NewDisposeScope();
            using var cache = lm.CreateCache(batch);
            var tok = lm.Forward(prompt, cache).narrow(1, Prompt - 1, 1).argmax(-1);
            torch.cuda.synchronize();
            sw.Restart();
            timer.Start();
            for (int t = 0; t < Steps; t++) tok = lm.Forward(tok, cache).argmax(-1);
            double g = timer.StopMilliseconds();
            torch.cuda.synchronize();
            double ms = sw.Elapsed.TotalMilliseconds;
            if (run == 0) continue;   // warm-up
            samples.Add(ms);
            gpu.Add(g);
        }
        long launches = QuantizedGemm.Launches - launchesBefore;
        samples.Sort();
        gpu.Sort();
        if (expectKernel && launches == 0) impl += " [no tensor-core launch]";
        ModelBench.Add(name, impl, dtype, batch, Steps, (samples[samples.Count / 2], samples[0], samples.Count, gpu[gpu.Count / 2]),
            Steps * batch, "tok/s", stepErr);
    }
}
