using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

public class KvQuantizationTests
{
    private static Tensor Gaussian(int seed, params long[] shape)
    {
        var rng = new Random(seed);
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var d = new float[n];
        for (long i = 0; i < n; i++) d[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return torch.tensor(d).reshape(shape);
    }

    /// <summary>Keys with outlier channels (large per-channel offset and scale), as observed in LLM key caches.</summary>
    private static (Tensor q, Tensor k, Tensor v) Qkv(int T)
    {
        var q = Gaussian(1, 2, 4, T, 64);
        var k = Gaussian(2, 2, 4, T, 64);
        var chan = torch.ones(64);
        var offset = torch.zeros(64);
        foreach (int c in new[] { 3, 17, 40 }) { chan[c] = 6f; offset[c] = 4f; }
        k = k * chan + offset;
        var v = Gaussian(3, 2, 4, T, 64);
        return (q, k, v);
    }

    private static Tensor RunSlot(AttentionCacheSlot slot, Tensor q, Tensor k, Tensor v, IEnumerable<int> chunks)
    {
        var outs = new List<Tensor>();
        long at = 0;
        foreach (int c in chunks)
        {
            var (keys, values, allowed) = slot.Update(k.narrow(2, at, c), v.narrow(2, at, c));
            outs.Add(CachedAttention.Attend(q.narrow(2, at, c), keys, values, allowed, 1.0 / 8));
            keys.Dispose(); values.Dispose(); allowed.Dispose();
            at += c;
        }
        return torch.cat(outs, 2);
    }

    [Theory]
    [InlineData(KvQuantMode.Kivi4, 0.15)]
    [InlineData(KvQuantMode.Kivi2, 0.65)]
    [InlineData(KvQuantMode.VidKv, 0.65)]
    public void AttentionOverQuantizedCacheStaysClose(KvQuantMode mode, double bound)
    {
        using var noGrad = torch.no_grad();
        const int T = 160;
        var (q, k, v) = Qkv(T);
        var chunks = Enumerable.Repeat(1, 16).Concat(Chunks(T - 16, 4, 9)).ToList();
        using var full = new KvCacheSlot(0, 2, 4, 64);
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode, GroupSize = 32, ResidualLength = 32 } };
        using var quant = (QuantizedKvCacheSlot)CachedAttention.CreateSlot(0, 2, 4, 64, opts);
        using var expected = RunSlot(full, q, k, v, chunks);
        using var got = RunSlot(quant, q, k, v, chunks);
        // the last 64 queries see mostly quantized history
        using var e = expected.narrow(2, T - 64, 64);
        using var g = got.narrow(2, T - 64, 64);
        double err = RelNorm(g, e);
        double bytes = quant.BytesPerToken, fp16 = 2.0 * 4 * 64 * 2;
        Record($"KV quant {mode}: attention output rel L2 err {err:F4} (bound {bound}); {bytes:F1} B/token/layer vs fp16 {fp16} ({fp16 / bytes:F2}x)");
        Assert.True(err <= bound, $"rel err {err}");
        Assert.True(quant.BlockCount >= 3);
        Assert.InRange(quant.TailLength, 32, 63);
        Assert.Equal(T, quant.TokensSeen);
        // recent tokens are exact: the first queries (all history in the full-precision tail) match
        using var e0 = expected.narrow(2, 0, 16);
        using var g0 = got.narrow(2, 0, 16);
        Assert.True(RelErr(g0, e0) <= 1e-6);
        q.Dispose(); k.Dispose(); v.Dispose();
    }

    /// <summary>The window + sink mask of a single unpadded row: key kp is visible to query qp iff kp ≤ qp and
    /// (qp − kp &lt; W or kp &lt; S).</summary>
    private static Tensor WindowMask(long from, long n, long total, int window, int sinks)
    {
        var qp = torch.arange(from, from + n).view(-1, 1);
        var kp = torch.arange(total).view(1, -1);
        return kp.le(qp).logical_and((qp - kp).lt(window).logical_or(kp.lt(sinks))).view(1, 1, n, total);
    }

    [Theory]
    [InlineData(KvQuantMode.Kivi4, 0.15)]
    [InlineData(KvQuantMode.Kivi2, 0.65)]
    [InlineData(KvQuantMode.VidKv, 0.65)]
    public void SlidingWindowWithSinksOverQuantizedCache(KvQuantMode mode, double bound)
    {
        using var noGrad = torch.no_grad();
        const int T = 256, W = 96, S = 4;
        var (q, k, v) = Qkv(T);
        var chunks = Chunks(T, 6, 9);
        var quant = new KvQuantizationOptions { Mode = mode, GroupSize = 32, ResidualLength = 32 };
        using var fpWindow = new KvCacheSlot(0, 2, 4, 64, new KvCacheOptions { SlidingWindow = W, SinkTokens = S });
        using var qWindow = (QuantizedKvCacheSlot)CachedAttention.CreateSlot(0, 2, 4, 64,
            new KvCacheOptions { SlidingWindow = W, SinkTokens = S, Quantization = quant });
        using var qFull = (QuantizedKvCacheSlot)CachedAttention.CreateSlot(0, 2, 4, 64, new KvCacheOptions { Quantization = quant });

        var outs = new List<Tensor>();
        var masked = new List<Tensor>();
        long at = 0, most = 0;
        foreach (int c in chunks)
        {
            var (kw, vw, aw) = qWindow.Update(k.narrow(2, at, c), v.narrow(2, at, c));
            outs.Add(CachedAttention.Attend(q.narrow(2, at, c), kw, vw, aw, 1.0 / 8));
            most = Math.Max(most, qWindow.Count);
            // the same quantized blocks without eviction, with the window applied as a mask
            var (kf, vf, af) = qFull.Update(k.narrow(2, at, c), v.narrow(2, at, c));
            using var mask = WindowMask(at, c, at + c, W, S);
            masked.Add(CachedAttention.Attend(q.narrow(2, at, c), kf, vf, af.logical_and(mask), 1.0 / 8));
            foreach (var t in new[] { kw, vw, aw, kf, vf, af }) t.Dispose();
            at += c;
        }
        using var got = torch.cat(outs, 2);
        using var reference = torch.cat(masked, 2);
        using var expected = RunSlot(fpWindow, q, k, v, chunks);

        // Eviction changes nothing but memory: while every in-window token is still in the tail when it is quantized
        // (W ≥ R + G + chunk), the blocks are the same as without a window.
        Assert.True(RelErr(got, reference) <= 1e-6, $"windowed vs masked quantized cache: {RelErr(got, reference)}");
        Assert.True(qWindow.EvictedBlocks >= 3, $"{qWindow.EvictedBlocks} blocks evicted");
        // held: the sink block, at most one block straddling the window edge, the window and the chunk being added
        Assert.InRange(most, W, 32 + 32 + W + 9);
        using var e = expected.narrow(2, T - 96, 96);
        using var g = got.narrow(2, T - 96, 96);
        double err = RelNorm(g, e);
        Record($"KV quant {mode} + sliding window {W} + {S} sinks: attention output rel L2 err {err:F4} vs fp window (bound {bound}); at most {most} entries held, {qWindow.EvictedBlocks} blocks evicted");
        Assert.True(err <= bound, $"rel err {err}");
        foreach (var t in outs.Concat(masked)) t.Dispose();
        q.Dispose(); k.Dispose(); v.Dispose();
    }

    [Fact]
    public void SlidingWindowKivi4InAttentionLmStaysClose()
    {
        using var noGrad = torch.no_grad();
        using var model = new CausalAttentionLM(40, 64, 2, 2);
        var lm = (ICausalLM)model;
        using var ids = RandomIds(1, 120, 40, 9);
        var window = new KvCacheOptions { SlidingWindow = 40, SinkTokens = 4 };
        var quant = window with { Quantization = new KvQuantizationOptions { Mode = KvQuantMode.Kivi4, GroupSize = 16, ResidualLength = 8 } };
        using var fpCache = lm.CreateCache(1, window);
        using var qCache = lm.CreateCache(1, quant);
        using var expected = RunChunked(ids, Chunks(120, 3, 6), p => lm.Forward(p, fpCache));
        using var got = RunChunked(ids, Chunks(120, 3, 6), p => lm.Forward(p, qCache));
        double err = RelNorm(got, expected);
        var slot = qCache.Slot<QuantizedKvCacheSlot>(0);
        Record($"KV quant Kivi4 + sliding window 40 + 4 sinks in CausalAttentionLM (120 tokens): logits rel L2 err {err:F4} (bound 0.05); {slot.EvictedBlocks} blocks evicted");
        Assert.True(err <= 0.05, $"rel err {err}");
        Assert.True(slot.EvictedBlocks > 0);
        Assert.True(slot.Count <= 40 + 16 + 16 + 6, $"{slot.Count} entries held");
    }

    [Fact]
    public void MemoryPerTokenPerMode()
    {
        var modes = new[] { KvQuantMode.Kivi4, KvQuantMode.Kivi2, KvQuantMode.VidKv };
        var bytes = modes.Select(m => new QuantizedKvCacheSlot(0, 1, 4, 64,
            new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = m } }).BytesPerToken).ToArray();
        using var fp = new KvCacheSlot(0, 1, 4, 64, dtype: ScalarType.Float16);
        Assert.Equal(1024, fp.BytesPerToken);
        Assert.Equal(4 * 64 * 2 * (4 + 1) / 8.0, bytes[0]);     // 4-bit codes + fp16 scale/min per 32
        Assert.Equal(4 * 64 * 2 * (2 + 1) / 8.0, bytes[1]);
        Assert.True(bytes[2] < bytes[1] && bytes[1] < bytes[0] && bytes[0] < fp.BytesPerToken);

        // the stored blocks occupy what the accounting says (keys + values of G tokens)
        using var noGrad = torch.no_grad();
        foreach (var m in modes)
        {
            using var slot = new QuantizedKvCacheSlot(0, 1, 4, 64, new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = m, ResidualLength = 0 } });
            using var kv = Gaussian(5, 1, 4, 32, 64);
            var (a, b, c) = slot.Update(kv, kv);
            a.Dispose(); b.Dispose(); c.Dispose();
            Assert.Equal(1, slot.BlockCount);
            double perToken = slot.AllocatedBytes / 32.0;
            Assert.InRange(perToken, slot.BytesPerToken * 0.9, slot.BytesPerToken * 1.15);
        }
    }

    [Theory]
    [InlineData(KvQuantMode.Kivi4, 0.05)]
    [InlineData(KvQuantMode.Kivi2, 0.25)]
    [InlineData(KvQuantMode.VidKv, 0.25)]
    public void QuantizedCacheInAttentionLmStaysClose(KvQuantMode mode, double bound)
    {
        using var noGrad = torch.no_grad();
        using var model = new CausalAttentionLM(40, 64, 2, 2);
        var lm = (ICausalLM)model;
        using var ids = RandomIds(1, 80, 40, 8);
        using var full = model.forward(ids);
        var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode } };
        using var cache = lm.CreateCache(1, opts);
        using var got = RunChunked(ids, Chunks(80, 2, 8), p => lm.Forward(p, cache));
        double err = RelNorm(got, full);
        Record($"KV quant {mode} in CausalAttentionLM (80 tokens, 1 quantized block per layer): logits rel L2 err {err:F4} (bound {bound})");
        Assert.True(err <= bound, $"rel err {err}");
        Assert.Contains("QuantizedKvCacheSlot", cache.Summary());
    }
}
