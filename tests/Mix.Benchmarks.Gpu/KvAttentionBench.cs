using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// Part of <c>--quant</c>: attention of one query over a KV cache of one layer (batch 1, 32 heads × 128, fp16) with the
/// quantized-cache kernels — the staged (third-generation) kernel, the second-generation split-K kernel, each also with
/// the transposing sum's old code generation ("rolled sum"), the first-generation kernel — and the reference path, for
/// KIVI-4, KIVI-2 and VidKV, against torch SDPA on the fp16 cache in the same
/// process; each row has the host median (wall time of back-to-back calls: the issue cost when it exceeds the GPU's)
/// and the device time (CUDA events), and GB/s from the device time; "× SDPA" lines give SDPA's time over the kernel's
/// (device and wall). Then the decode step through <see cref="QuantizedKvCacheSlot"/>: its wall time (synchronised per
/// step) and its host time (the time to issue a step, with no synchronisation in the timed loop: launches are
/// asynchronous, so the GPU's execution is excluded — 64 steps of ≤ 5 launches stay far below the launch queue's depth —
/// while any hidden synchronisation would show up), and the TorchSharp tensors it creates per step.
/// </summary>
internal static class KvAttentionBench
{
    private const int Steps = 64;

    private static bool _resourcesShown;

    public static void Run(int ctx, Func<Func<Tensor?>, (double, double, int, double)> time, Action<QuantResult> record, double copyGBps = double.NaN)
    {
        if (!_resourcesShown)
        {
            _resourcesShown = true;
            foreach (var (kernel, regs, local) in QuantizedKvAttention.KernelResources(torch.CUDA, ScalarType.Float16))
                Console.WriteLine($"  kernel {kernel,-32} Float16 D128 {regs,3} registers, {local} local bytes per thread");
        }
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
        (double wall, double dev) Row(string impl, Func<Tensor?> f, double bytes, double? err)
        {
            var (m, mn, n, g) = time(f);
            // % of copy: the bytes the kernel must read (packed cache or fp16 cache) over the device time, against the
            // device-to-device copy measured in this process (the physical limit of a memory-bound decode step)
            double pct = 100 * bytes / g / 1e3 / copyGBps;
            record(new QuantResult("kv decode", cfg, impl, ctx, m, mn, bytes, bytes / g / 1e3, err, g, pct));
            Console.WriteLine($"kv decode  {cfg,-20} {impl,-44} {ctx,6} {m,9:F1} us host {g,9:F1} us device {bytes / g / 1e3,6:F0} GB/s {pct,5:F1} % copy {(err is { } e ? e.ToString("E1") : "")}");
            return (m, g);
        }
        var sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v);
        var sdpaT = Row("fp16 cache: torch SDPA", () => torch.nn.functional.scaled_dot_product_attention(q, k, v), 2.0 * k.numel() * 2, null);
        Row("fp16 cache: eager matmul+softmax", () => CachedAttention.Attend(q, k, v, all, scale), 2.0 * k.numel() * 2, null);
        foreach (var mode in new[] { KvQuantMode.Kivi4, KvQuantMode.Kivi2, KvQuantMode.VidKv })
        {
            var opts = new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = mode } };
            using var slot = new QuantizedKvCacheSlot(0, B, H, D, opts, dt, torch.CUDA);
            Prefill(slot, k, v, ctx);
            double bytes = slot.AllocatedBytes;
            var fused = slot.TryFusedAttention(q, scale) ?? throw new InvalidOperationException("the fused kernel returned null");
            // a row is named after the kernel that ran (the staged module falls back to the second generation when it
            // cannot be built)
            string ranDefault = QuantizedKvAttention.LastKernel ?? "?";
            var (dk, dv) = slot.DequantizedKeysValues();
            var refOut = CachedAttention.Attend(q.to_type(ScalarType.Float32), dk.to_type(ScalarType.Float32), dv.to_type(ScalarType.Float32), all, scale);
            dk.Dispose(); dv.Dispose();
            double errRef = Err(fused, refOut);
            double errFp16 = Err(fused, sdpa);
            void Ratio(string what, (double wall, double dev) t) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   {mode} {what} × SDPA: {sdpaT.dev / t.dev:F2} (device), {sdpaT.wall / t.wall:F2} (host wall); {bytes / 1e6:F1} MB packed vs {2.0 * k.numel() * 2 / 1e6:F1} MB fp16"));
            string defaultName = ranDefault == "staged" ? "staged kernel (3rd gen.)" : $"staged kernel requested, {ranDefault} ran";
            var best = Row($"{mode}: {defaultName}", () => slot.TryFusedAttention(q, scale), bytes, errRef);
            Ratio(defaultName, best);
            // the same cache through the switches, so one run decides the defaults: the second generation (VidKV's only
            // kernel before the staged one took it), either generation with the transposing sum's old code generation
            // (RolledTransposeSum: its 32 partial scores in local memory), and VidKV's trit bytes by arithmetic
            var variants = new List<(bool staged, bool rolled, bool alu)> { (true, true, false), (false, false, false), (false, true, false) };
            if (mode == KvQuantMode.VidKv) variants.Insert(0, (true, false, true));
            foreach (var (staged, rolled, alu) in variants)
            {
                bool oldKivi = QuantizedKvAttention.StagedKivi, oldVidKv = QuantizedKvAttention.StagedVidKv;
                QuantizedKvAttention.StagedKivi = QuantizedKvAttention.StagedVidKv = staged;
                QuantizedKvAttention.RolledTransposeSum = rolled;
                QuantizedKvAttention.VidKvTritArithmetic = alu;
                try
                {
                    var other = slot.TryFusedAttention(q, scale) ?? throw new InvalidOperationException("the fused kernel returned null");
                    string ran = QuantizedKvAttention.LastKernel ?? "?";
                    string name = (staged ? "staged kernel (3rd gen.)" : "split-K kernel (2nd gen.)") + (rolled ? ", rolled sum" : "")
                        + (alu ? ", trits by arithmetic" : "") + (ran == (staged ? "staged" : "split") ? "" : $" [{ran} ran]");
                    var t = Row($"{mode}: {name}", () => slot.TryFusedAttention(q, scale), bytes, Err(other, refOut));
                    Ratio(name, t);
                }
                finally
                {
                    QuantizedKvAttention.StagedKivi = oldKivi;
                    QuantizedKvAttention.StagedVidKv = oldVidKv;
                    QuantizedKvAttention.RolledTransposeSum = false;
                    QuantizedKvAttention.VidKvTritArithmetic = false;
                }
            }
            var first = slot.TryFirstGenerationAttention(q, all, scale);
            if (first is not null)
                Row($"{mode}: first-generation kernel", () => slot.TryFirstGenerationAttention(q, all, scale), bytes, Err(first, refOut));
            Console.WriteLine($"   {mode} rel. err vs the fp16 (unquantized) SDPA: {errFp16:E2}");
            record(new QuantResult("kv decode", cfg, $"{mode}: quantization error vs fp16 SDPA", ctx, double.NaN, double.NaN, 0, double.NaN, errFp16));
            if (ctx <= 4096)
                Row($"{mode}: reference (dequantize + attend)", () =>
                {
                    var (a, b) = slot.DequantizedKeysValues();
                    return CachedAttention.Attend(q, a, b, all, scale);
                }, bytes, null);
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
            long ops = 0, launches = 0;
            for (int i = 0; i < Steps; i++)
            {
                using var s2 = torch.NewDisposeScope();
                var ki = k1.narrow(2, i, 1);
                var before = Mix.Runtime.Cuda.ForwardCost.Now;
                sw.Restart();
                slot.Attend(q, ki, ki, null, scale);
                host.Add(sw.Elapsed.TotalMilliseconds * 1e3);
                var cost = Mix.Runtime.Cuda.ForwardCost.Now - before;
                ops += cost.TorchOps;
                launches += cost.Launches;
            }
            torch.cuda.synchronize();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   {mode} slot step: {(double)ops / Steps:F2} TorchSharp tensors and {(double)launches / Steps:F2} kernel launches per step (mean of {Steps}, block packing included)"));
            wall.Sort();
            var hs = host.OrderBy(x => x).ToList();
            double bytes = slot.AllocatedBytes;
            void Host(string impl, double us, double bytesOrZero, double? gpu = null)
            {
                record(new QuantResult("kv decode", cfg, impl, ctx, us, us, bytesOrZero, bytesOrZero > 0 ? bytesOrZero / us / 1e3 : 0, null, gpu ?? double.NaN));
                Console.WriteLine($"kv decode  {cfg,-20} {impl,-44} {ctx,6} {us,9:F1} us");
            }
            Host($"{mode}: slot step wall (append + kernel, synchronised)", wall[wall.Count / 2], bytes);
            Host($"{mode}: slot step host µs, mean of {Steps}", host.Average(), 0);
            Host($"{mode}: slot step host µs, median", hs[Steps / 2], 0);
            Host($"{mode}: slot step host µs, max (a block-quantizing step)", hs[^1], 0);
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
