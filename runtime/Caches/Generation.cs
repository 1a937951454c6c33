using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>Decoding options.</summary>
public sealed record GenerationOptions
{
    /// <summary>New tokens per row at most (default 32; 0 = prefill only).</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Sampling temperature: 0 (the default) means greedy (argmax); otherwise finite and positive. NaN, infinite
    /// and negative values are refused.</summary>
    public double Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens before sampling: 0 (the default) = no top-k filter (all tokens),
    /// 1 = greedy; k larger than the vocabulary keeps all. Negative values are refused.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches p, p in (0, 1]; 1 (the
    /// default) = off. NaN and values outside (0, 1] are refused.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Tokens that end a row (the stop token is included in the output).</summary>
    public IReadOnlyCollection<long> StopTokens { get; init; } = Array.Empty<long>();

    /// <summary>Seed of the sampler (same seed, same model, same prompts ⇒ same tokens).</summary>
    public int Seed { get; init; }

    /// <summary>Prompt tokens per prefill call: 0 (the default) = the whole prompt in one call, otherwise positive.
    /// Negative values are refused.</summary>
    public int PrefillChunkSize { get; init; }

    /// <summary>Id fed for left padding and for rows that have stopped (always masked out); must be a valid token id,
    /// <c>0 ≤ id &lt; vocabulary</c>, since the model embeds it before the mask applies.</summary>
    public long PadTokenId { get; init; }

    /// <summary>KV slot options when the generator creates the cache.</summary>
    public KvCacheOptions? KvCache { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the option, its value and the allowed range
    /// when a sampling or length option is out of range (see each option).</summary>
    public void Validate()
    {
        static ArgumentOutOfRangeException Bad(string option, object value, string rule) =>
            new(option, value, $"GenerationOptions.{option} = {value} is invalid: {rule}");
        if (MaxNewTokens < 0) throw Bad(nameof(MaxNewTokens), MaxNewTokens, "it must be ≥ 0");
        if (!double.IsFinite(Temperature) || Temperature < 0)
            throw Bad(nameof(Temperature), Temperature, "it must be finite and ≥ 0 (0 = greedy)");
        if (TopK < 0) throw Bad(nameof(TopK), TopK, "it must be ≥ 0 (0 = no top-k filter)");
        if (double.IsNaN(TopP) || TopP <= 0 || TopP > 1) throw Bad(nameof(TopP), TopP, "it must lie in (0, 1] (1 = off)");
        if (PrefillChunkSize < 0) throw Bad(nameof(PrefillChunkSize), PrefillChunkSize, "it must be ≥ 0 (0 = the whole prompt at once)");
        if (StopTokens is null) throw new ArgumentNullException(nameof(StopTokens));
    }
}

/// <summary>Generated tokens and throughput.</summary>
public sealed class GenerationResult
{
    /// <summary>New tokens per row (stop token included when one was produced).</summary>
    public required long[][] Tokens { get; init; }

    /// <summary>Per row: true when it ended on a stop token.</summary>
    public required bool[] Stopped { get; init; }

    /// <summary>Prompt positions processed (padding included, all rows).</summary>
    public required long PrefillTokens { get; init; }

    /// <summary>Decode steps × rows.</summary>
    public required long DecodeTokens { get; init; }

    /// <summary>Wall time of the prefill (s).</summary>
    public required double PrefillSeconds { get; init; }

    /// <summary>Wall time of the decode steps (s).</summary>
    public required double DecodeSeconds { get; init; }

    /// <summary>Prefill throughput.</summary>
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? PrefillTokens / PrefillSeconds : double.PositiveInfinity;

    /// <summary>Decode throughput.</summary>
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? DecodeTokens / DecodeSeconds : double.PositiveInfinity;
}

/// <summary>
/// Autoregressive generation over an <see cref="ICausalLM"/> with an <see cref="InferenceCache"/>: prompts of different
/// lengths are left-padded and masked, prefilled (optionally in chunks) and decoded one token per step with greedy,
/// temperature, top-k and top-p sampling (a seeded <see cref="Random"/> per call, so results are reproducible).
/// </summary>
public static class TextGenerator
{
    /// <summary>Generates continuations of <paramref name="prompts"/>.</summary>
    /// <param name="model">The model.</param>
    /// <param name="prompts">Token ids per row (non-empty).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <param name="cache">A cache to reuse (reset first; must hold <c>prompts.Count</c> rows); a new one when null.</param>
    public static GenerationResult Generate(ICausalLM model, IReadOnlyList<long[]> prompts, GenerationOptions? options = null,
        InferenceCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        var o = options ?? new GenerationOptions();
        int b = prompts.Count;
        if (b == 0 || prompts.Any(p => p is null || p.Length == 0)) throw new ArgumentException("need at least one non-empty prompt", nameof(prompts));
        // Everything is checked here, on the host, before the cache is created or reset.
        o.Validate();
        long vocab = model.VocabSize;
        TokenIds.Check(o.PadTokenId, vocab, "GenerationOptions.PadTokenId");
        for (int r = 0; r < b; r++)
            for (int t = 0; t < prompts[r].Length; t++)
                if (prompts[r][t] < 0 || prompts[r][t] >= vocab) TokenIds.Check(prompts[r][t], vocab, $"prompt {r}, position {t}");
        bool ownCache = cache is null;
        cache ??= model.CreateCache(b, o.KvCache);
        if (cache.Batch != b) throw new ArgumentException($"the cache holds {cache.Batch} rows, there are {b} prompts", nameof(cache));
        cache.Reset();
        try
        {
            using var noGrad = torch.no_grad();
            int len = prompts.Max(p => p.Length);
            var ids = new long[b * len];
            var mask = new long[b * len];
            for (int r = 0; r < b; r++)
            {
                int pad = len - prompts[r].Length;
                for (int t = 0; t < len; t++)
                {
                    ids[r * len + t] = t < pad ? o.PadTokenId : prompts[r][t - pad];
                    mask[r * len + t] = t < pad ? 0 : 1;
                }
            }
            bool anyPad = mask.Any(m => m == 0);
            var rng = new Random(o.Seed);
            var stop = new HashSet<long>(o.StopTokens);

            var sw = Stopwatch.StartNew();
            float[] last;
            using (var idT = torch.tensor(ids).reshape(b, len))
            using (var maskT = torch.tensor(mask).reshape(b, len))
            {
                int chunk = o.PrefillChunkSize > 0 ? o.PrefillChunkSize : len;
                Tensor? logits = null;
                for (int s = 0; s < len; s += chunk)
                {
                    int n = Math.Min(chunk, len - s);
                    logits?.Dispose();
                    using var part = idT.narrow(1, s, n);
                    using var partMask = maskT.narrow(1, s, n);
                    logits = model.Forward(part, cache, anyPad ? partMask : null);
                }
                using var lastT = logits!.select(1, logits.shape[1] - 1).to_type(ScalarType.Float32).cpu().contiguous();
                last = lastT.data<float>().ToArray();
                logits.Dispose();
            }
            double prefill = sw.Elapsed.TotalSeconds;

            var outTokens = Enumerable.Range(0, b).Select(_ => new List<long>()).ToArray();
            var stopped = new bool[b];
            var done = new bool[b];
            long steps = 0;
            sw.Restart();
            for (int step = 0; step < o.MaxNewTokens; step++)
            {
                var next = new long[b];
                var stepMask = new long[b];
                for (int r = 0; r < b; r++)
                {
                    if (done[r]) { next[r] = o.PadTokenId; continue; }
                    long tok = Sample(new ReadOnlySpan<float>(last, (int)(r * vocab), (int)vocab), o, rng);
                    outTokens[r].Add(tok);
                    next[r] = tok;
                    stepMask[r] = 1;
                    if (stop.Contains(tok)) { stopped[r] = true; done[r] = true; }
                    else if (outTokens[r].Count >= o.MaxNewTokens) done[r] = true;
                }
                if (done.All(d => d)) break;
                using var nextT = torch.tensor(next).reshape(b, 1);
                using var maskT = torch.tensor(stepMask).reshape(b, 1);
                using var logits = model.Forward(nextT, cache, stepMask.All(m => m == 1) ? null : maskT);
                using var lastT = logits.select(1, 0).to_type(ScalarType.Float32).cpu().contiguous();
                last = lastT.data<float>().ToArray();
                steps += b;
            }
            double decode = sw.Elapsed.TotalSeconds;
            return new GenerationResult
            {
                Tokens = outTokens.Select(t => t.ToArray()).ToArray(),
                Stopped = stopped,
                PrefillTokens = (long)b * len,
                DecodeTokens = steps,
                PrefillSeconds = prefill,
                DecodeSeconds = decode,
            };
        }
        finally
        {
            if (ownCache) cache.Dispose();
        }
    }

    /// <summary>Picks the next token from one row of logits under <paramref name="o"/>'s sampling rules (validated:
    /// see <see cref="GenerationOptions.Validate"/>).</summary>
    /// <param name="logits">Logits of one row.</param>
    /// <param name="o">Options.</param>
    /// <param name="rng">Random source.</param>
    public static long Sample(ReadOnlySpan<float> logits, GenerationOptions o, Random rng)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(rng);
        o.Validate();
        int v = logits.Length;
        if (v == 0) throw new ArgumentException("no logits to sample from", nameof(logits));
        int argmax = 0;
        for (int i = 1; i < v; i++) if (logits[i] > logits[argmax]) argmax = i;
        if (o.Temperature == 0 || o.TopK == 1) return argmax;

        var order = Enumerable.Range(0, v).ToArray();
        var copy = logits.ToArray();
        Array.Sort(order, (a, c) => copy[c].CompareTo(copy[a]) != 0 ? copy[c].CompareTo(copy[a]) : a.CompareTo(c));
        int keep = o.TopK > 0 ? Math.Min(o.TopK, v) : v;
        double max = copy[order[0]] / o.Temperature;
        var probs = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) { probs[i] = Math.Exp(copy[order[i]] / o.Temperature - max); sum += probs[i]; }
        if (o.TopP < 1.0)
        {
            double acc = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                acc += probs[i] / sum;
                if (acc >= o.TopP) { cut = i + 1; break; }
            }
            keep = cut;
            sum = 0;
            for (int i = 0; i < keep; i++) sum += probs[i];
        }
        double u = rng.NextDouble() * sum;
        for (int i = 0; i < keep; i++)
        {
            u -= probs[i];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }
}
