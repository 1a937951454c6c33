using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Language;

/// <summary>Held-out perplexity of a trained model with one weight-quantization setting.</summary>
/// <param name="Setting">"fp32", "int8", "int4 g64", "int4 g64 + AWQ".</param>
/// <param name="Perplexity">exp(mean cross-entropy) per character on the held-out windows.</param>
/// <param name="DeltaPercent">Relative change against fp32, in percent.</param>
/// <param name="Quantized">Linear layers replaced.</param>
/// <param name="Skipped">Linear layers left in float32 (lm_head and Mamba's dt_proj by default).</param>
/// <param name="ModelBytes">Bytes of the state dict (every parameter and buffer).</param>
/// <param name="Seconds">Time to quantize (AWQ search included) and evaluate.</param>
public sealed record WeightQuantResult(string Setting, double Perplexity, double DeltaPercent, int Quantized, int Skipped, long ModelBytes, double Seconds);

/// <summary>One KV-cache mode on long held-out sequences decoded through the cache.</summary>
/// <param name="Mode">"fp32", "Kivi4", "Kivi2", "VidKv".</param>
/// <param name="BytesPerToken">Cache bytes per token per attention layer (per sequence).</param>
/// <param name="Perplexity">Teacher-forced perplexity through the cache at positions whose history holds quantized blocks.</param>
/// <param name="DeltaPercent">Relative change against the fp32 cache, in percent.</param>
/// <param name="Agreement">Greedy generation: share of new tokens equal to the fp32-cache generation at the same position.</param>
/// <param name="FirstDivergence">Greedy generation: mean index of the first token that differs (the length when none does).</param>
/// <param name="SampledAgreement">The same for seeded sampling at temperature 0.8 (one random stream for every mode, so a
/// token differs only where the quantized logits move it across a sampling boundary, and every later one may then differ).</param>
public sealed record KvQuantResult(string Mode, double BytesPerToken, double Perplexity, double DeltaPercent, double Agreement, double FirstDivergence,
    double SampledAgreement);

/// <summary>
/// The language example's quantization step: validation perplexity of a trained model with its weights quantized
/// (int8 per channel, int4 groups of 32/64/128 with and without AWQ), and teacher-forced perplexity plus greedy-generation
/// agreement with a quantized KV cache (KIVI 4-bit, 2-bit, VidKV 1.x-bit) against the float32 cache.
/// </summary>
public static class QuantizationEvaluation
{
    /// <summary>The weight settings compared, in table order (null: the float32 model).</summary>
    public static IReadOnlyList<(string Name, QuantizationOptions? Options, bool Awq)> WeightSettings { get; } = new (string, QuantizationOptions?, bool)[]
    {
        ("fp32", null, false),
        ("int8", new QuantizationOptions { Mode = WeightQuantMode.Int8PerChannel }, false),
        ("int4 g32", new QuantizationOptions { GroupSize = 32 }, false),
        ("int4 g32 + AWQ", new QuantizationOptions { GroupSize = 32 }, true),
        ("int4 g64", new QuantizationOptions { GroupSize = 64 }, false),
        ("int4 g64 + AWQ", new QuantizationOptions { GroupSize = 64 }, true),
        ("int4 g128", new QuantizationOptions { GroupSize = 128 }, false),
        ("int4 g128 + AWQ", new QuantizationOptions { GroupSize = 128 }, true),
    };

    /// <summary>exp(mean cross-entropy) of next-character prediction on <paramref name="x"/> → <paramref name="y"/>.</summary>
    /// <param name="model">The model (ids → logits).</param>
    /// <param name="x">Inputs <c>[rows, L]</c>.</param>
    /// <param name="y">Targets <c>[rows, L]</c>.</param>
    public static double Perplexity(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        model.eval();
        using var g = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = model.call(x);
        return Math.Exp(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), y.reshape(-1)).item<float>());
    }

    /// <summary>
    /// Quantizes fresh copies of <paramref name="trained"/> with every <see cref="WeightSettings"/> entry and measures
    /// held-out perplexity. AWQ settings calibrate on <paramref name="calibration"/> (token-id batches).
    /// </summary>
    /// <param name="trained">The trained float32 model (left unchanged).</param>
    /// <param name="create">Builds an untrained model of the same architecture (on the CPU).</param>
    /// <param name="configure">Applied to every copy before use (device, scan settings).</param>
    /// <param name="x">Held-out inputs.</param>
    /// <param name="y">Held-out targets.</param>
    /// <param name="calibration">AWQ calibration batches.</param>
    public static IReadOnlyList<WeightQuantResult> WeightQuantization(nn.Module<Tensor, Tensor> trained, Func<nn.Module<Tensor, Tensor>> create,
        Action<nn.Module<Tensor, Tensor>> configure, Tensor x, Tensor y, IReadOnlyList<Tensor> calibration)
    {
        ArgumentNullException.ThrowIfNull(trained);
        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(configure);
        var results = new List<WeightQuantResult>();
        double baseline = double.NaN;
        var weights = trained.state_dict();
        foreach (var (name, settings, awq) in WeightSettings)
        {
            var watch = Stopwatch.StartNew();
            using var copy = create();
            copy.load_state_dict(weights);
            configure(copy);
            copy.eval();
            int quantized = 0, skipped = 0;
            if (settings is not null)
            {
                var report = Quantizer.Quantize(copy, awq ? settings with { CalibrationInputs = calibration } : settings);
                quantized = report.Quantized.Count;
                skipped = report.Skipped.Count;
            }
            double ppl = Perplexity(copy, x, y);
            if (settings is null) baseline = ppl;
            long bytes = copy.state_dict().Values.Sum(t => t.numel() * (long)t.element_size());
            results.Add(new WeightQuantResult(name, ppl, 100 * (ppl / baseline - 1), quantized, skipped, bytes, watch.Elapsed.TotalSeconds));
        }
        return results;
    }

    /// <summary>The KV-cache modes compared (null: the float32 cache).</summary>
    public static IReadOnlyList<(string Name, KvQuantizationOptions? Options)> KvSettings { get; } = new (string, KvQuantizationOptions?)[]
    {
        ("fp32", null),
        ("Kivi4", new KvQuantizationOptions { Mode = KvQuantMode.Kivi4 }),
        ("Kivi2", new KvQuantizationOptions { Mode = KvQuantMode.Kivi2 }),
        ("VidKv", new KvQuantizationOptions { Mode = KvQuantMode.VidKv }),
    };

    /// <summary>
    /// For each <see cref="KvSettings"/> mode: (1) teacher-forced perplexity of <paramref name="sequences"/> decoded
    /// through the cache in chunks of <paramref name="chunk"/> tokens, counted at positions ≥ R + G (the first whose
    /// history holds a quantized block), and (2) greedy continuations of <paramref name="prompts"/> (equal lengths, so
    /// no padding) by <paramref name="newTokens"/> tokens, compared position by position with the float32-cache ones.
    /// </summary>
    /// <param name="model">A causal model (ids → logits) with causal attention layers.</param>
    /// <param name="vocab">Vocabulary size.</param>
    /// <param name="sequences">Token rows of equal length.</param>
    /// <param name="chunk">Tokens per cache call.</param>
    /// <param name="prompts">Prompt rows of equal length.</param>
    /// <param name="newTokens">Tokens generated per prompt.</param>
    public static IReadOnlyList<KvQuantResult> KvCacheQuantization(nn.Module<Tensor, Tensor> model, long vocab, long[][] sequences, int chunk,
        long[][] prompts, int newTokens)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentNullException.ThrowIfNull(prompts);
        if (sequences.Length == 0 || sequences.Any(r => r.Length != sequences[0].Length)) throw new ArgumentException("sequences must be non-empty rows of one length", nameof(sequences));
        if (prompts.Length == 0 || prompts.Any(r => r.Length != prompts[0].Length)) throw new ArgumentException("prompts must be non-empty rows of one length", nameof(prompts));
        if (chunk <= 0) throw new ArgumentOutOfRangeException(nameof(chunk));
        model.eval();
        using var noGrad = torch.no_grad();
        var lm = new CausalModel(model, vocab);
        var device = model.parameters().First().device;
        int length = sequences[0].Length;
        var results = new List<KvQuantResult>();
        double baseline = double.NaN;
        (long[][] Greedy, long[][] Sampled)? reference = null;
        // every mode is scored on the same positions: those after the first quantized block of the widest setting
        int from = KvSettings.Where(s => s.Options is not null).Max(s => s.Options!.ResidualLength + s.Options.GroupSize);
        if (from >= length - 1) throw new ArgumentException($"sequences of {length} tokens never reach the quantized history (R + G = {from})", nameof(sequences));
        foreach (var (name, quant) in KvSettings)
        {
            var kv = new KvCacheOptions { Quantization = quant };
            double nll = 0;
            long count = 0;
            double bytesPerToken;
            using (var cache = lm.CreateCache(sequences.Length, kv))
            using (var ids = torch.tensor(sequences.SelectMany(r => r).ToArray(), new long[] { sequences.Length, length }, device: device))
            {
                // The built-in attention's slot, or the KV slot of a .mix attention (shaped by its first keys).
                var attention = cache.Slots.Where(s => s is AttentionCacheSlot or MixKvCacheSlot).ToList();
                if (attention.Count == 0) throw new ArgumentException("the model has no attention layer: there is no KV cache to quantize", nameof(model));
                for (int at = 0; at < length - 1; at += chunk)
                {
                    using var scope = torch.NewDisposeScope();
                    int n = Math.Min(chunk, length - 1 - at);
                    var logits = lm.Forward(ids.narrow(1, at, n), cache);
                    int skip = Math.Max(0, from - at);
                    if (skip >= n) continue;
                    var lp = logits.narrow(1, skip, n - skip).log_softmax(-1);
                    var target = ids.narrow(1, at + 1 + skip, n - skip);
                    nll -= lp.gather(-1, target.unsqueeze(-1)).sum().item<float>();
                    count += target.numel();
                }
                bytesPerToken = attention[0].BytesPerToken;
            }
            double ppl = Math.Exp(nll / count);
            if (quant is null) baseline = ppl;

            var greedy = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0, KvCache = kv }).Tokens;
            var sampled = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0.8, Seed = 1, KvCache = kv }).Tokens;
            reference ??= (greedy, sampled);
            var (agree, first) = Compare(greedy, reference.Value.Greedy, newTokens);
            var (sampledAgree, _) = Compare(sampled, reference.Value.Sampled, newTokens);
            results.Add(new KvQuantResult(name, bytesPerToken, ppl, 100 * (ppl / baseline - 1), agree, first, sampledAgree));
        }
        return results;
    }

    /// <summary>Mean share of positions where <paramref name="got"/> equals <paramref name="expected"/>, and mean index of
    /// the first difference (<paramref name="length"/> when none).</summary>
    private static (double Agreement, double FirstDivergence) Compare(long[][] got, long[][] expected, int length)
    {
        double agree = 0, first = 0;
        for (int r = 0; r < got.Length; r++)
        {
            int same = 0, diverge = -1;
            for (int i = 0; i < length; i++)
            {
                if (i < got[r].Length && i < expected[r].Length && got[r][i] == expected[r][i]) same++;
                else if (diverge < 0) diverge = i;
            }
            agree += same / (double)length;
            first += diverge < 0 ? length : diverge;
        }
        return (agree / got.Length, first / got.Length);
    }
}
