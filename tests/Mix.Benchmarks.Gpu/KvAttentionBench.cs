using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// Part of <c>--quant</c>: attention of one query over a KV cache of one layer (batch 1, 32 heads × 128, fp16) with the
/// split-K quantized-cache kernel (KIVI-4, KIVI-2, VidKV), the first-generation kernel and the reference path, against
/// torch SDPA on the fp16 cache in the same process; and the decode step through <see cref="QuantizedKvCacheSlot"/>:
/// its wall time (synchronised per step) and its host time (the time to issue a step, with no synchronisation in the
/// timed loop: launches are asynchronous, so the GPU's execution is excluded — 64 steps of ≤ 5 launches stay far below
/// the launch queue's depth — while any hidden synchronisation would show up).
/// </summary>
internal static class KvAttentionBench
{
    private const int Steps = 64;

    public static void Run(int ctx, Func<Func<Tensor?>, (double, double, int)> time,
        Action<string, string, string, long, (double, double, int), double, double?> add, Action<QuantResult> record)
    {
        using var scope = torch.NewDisposeScope();
        long B = 1, H = 32, D = 128;
        var dt = ScalarType.Float16;
        double scale = 1.0 / Math.Sqrt(D);
        torch.manual_seed(ctx);
        var k = torch.randn(B, H, ctx, D, device: torch.CUDA).to_type(dt);
        var v = torch.randn(B, H, ctx, D, device: torch.CUDA).to_type(dt);
        var q = torch.randn(B, H, 1, D, device: torch.CUDA).to_type(dt);
        var all = torch.ones(new[] { B, 1, 1, (long)ctx }, ScalarType.Bool, torch.CUDA);
        string cfg = "B1 H32 D128 n1 fp16";
        var sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v);
        add("kv decode", cfg, "fp16 cache: torch SDPA", ctx, time(() => torch.nn.functional.scaled_dot_product_attention(q, k, v)),
            2.0 * k.numel() * 2, null);
        add("kv decode", cfg, "fp16 cache: eager matmul+softmax", ctx, time(() => CachedAttention.Attend(q, k, v, all, scale)), 2.0 * k.numel() * 2, null);
        foreach (var mode in new[] { KvQuantMode.Kivi4, KvQuantMode.Kivi2, KvQuantMode.VidKv })
        {
            var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode } };
            using var slot = new QuantizedKvCacheSlot(0, B, H, D, opts, dt, torch.CUDA);
            Prefill(slot, k, v, ctx);
            double bytes = slot.AllocatedBytes;
            var split = slot.TryFusedAttention(q, scale) ?? throw new InvalidOperationException("the split-K kernel returned null");
            var (dk, dv) = slot.DequantizedKeysValues();
            var refOut = CachedAttention.Attend(q.to_type(ScalarType.Float32), dk.to_type(ScalarType.Float32), dv.to_type(ScalarType.Float32), all, scale);
            dk.Dispose(); dv.Dispose();
            double errRef = Err(split, refOut);
            double errFp16 = Err(split, sdpa);
            add("kv decode", cfg, $"{mode}: split-K kernel", ctx, time(() => slot.TryFusedAttention(q, scale)), bytes, errRef);
            var first = slot.TryFirstGenerationAttention(q, all, scale);
            if (first is not null)
                add("kv decode", cfg, $"{mode}: first-generation kernel", ctx, time(() => slot.TryFirstGenerationAttention(q, all, scale)), bytes, Err(first, refOut));
            Console.WriteLine($"   {mode} rel. err vs the fp16 (unquantized) SDPA: {errFp16:E2}");
            record(new QuantResult("kv decode", cfg, $"{mode}: quantization error vs fp16 SDPA", ctx, double.NaN, double.NaN, 0, double.NaN, errFp16));
            add("kv decode", cfg, $"{mode}: reference (dequantize + attend)", ctx, time(() =>
            {
                var (a, b) = slot.DequantizedKeysValues();
                return CachedAttention.Attend(q, a, b, all, scale);
            }), bytes, null);
        }
        // the decode step through the slot: append one token (in place) + the split kernel; 64 steps cross two block
        // quantizations (every G = 32 tokens)
        foreach (var mode in new[] { KvQuantMode.Kivi2, KvQuantMode.Kivi4 })
        {
            var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode } };
            using var slot = new QuantizedKvCacheSlot(0, B, H, D, opts, dt, torch.CUDA);
            Prefill(slot, k, v, ctx);
            var k1 = torch.randn(B, H, Steps, D, device: torch.CUDA).to_type(dt);
            for (int i = 0; i < 3; i++) { using var s0 = torch.NewDisposeScope(); slot.Attend(q, k1.narrow(2, i, 1), k1.narrow(2, i, 1), null, scale); }
            var wall = new List<double>();
            var sw = new Stopwatch();
            for (int i = 0; i < Steps; i++)
            {
                using var s1 = torch.NewDisposeScope();
                var ki = k1.narrow(2, i, 1);
                torch.cuda.synchronize();
                sw.Restart();
                slot.Attend(q, ki, ki, null, scale);
                torch.cuda.synchronize();
                wall.Add(sw.Elapsed.TotalMilliseconds * 1e3);
            }
            var host = new List<double>();
            torch.cuda.synchronize();
            for (int i = 0; i < Steps; i++)
            {
                using var s2 = torch.NewDisposeScope();
                var ki = k1.narrow(2, i, 1);
                sw.Restart();
                slot.Attend(q, ki, ki, null, scale);
                host.Add(sw.Elapsed.TotalMilliseconds * 1e3);
            }
            torch.cuda.synchronize();
            wall.Sort();
            var hs = host.OrderBy(x => x).ToList();
            double bytes = slot.AllocatedBytes;
            add("kv decode", cfg, $"{mode}: slot step wall (append + split kernel, synchronised)", ctx, (wall[wall.Count / 2], wall[0], wall.Count), bytes, null);
            add("kv decode", cfg, $"{mode}: slot step host µs, mean of {Steps}", ctx, (host.Average(), hs[0], Steps), 0, null);
            add("kv decode", cfg, $"{mode}: slot step host µs, median", ctx, (hs[Steps / 2], hs[0], Steps), 0, null);
            add("kv decode", cfg, $"{mode}: slot step host µs, max (a block-quantizing step)", ctx, (hs[^1], hs[0], Steps), 0, null);
        }
    }

    private static void Prefill(QuantizedKvCacheSlot slot, Tensor k, Tensor v, long ctx)
    {
        for (long s = 0; s < ctx; s += 4096)
        {
            long n = Math.Min(4096, ctx - s);
            using var scope = torch.NewDisposeScope();
            slot.Prefill(k.narrow(2, s, n), v.narrow(2, s, n));
        }
    }

    private static double Err(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        var x = a.to_type(ScalarType.Float64);
        var y = b.to_type(ScalarType.Float64);
        return (x - y).norm().item<double>() / Math.Max(y.norm().item<double>(), 1e-300);
    }
}
