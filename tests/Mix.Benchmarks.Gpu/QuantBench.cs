using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>One quantized-decode measurement.</summary>
internal sealed record QuantResult(string Bench, string Config, string Impl, long Size, double MedianUs, double MinUs, double Bytes,
    double GBps, double? RelErr, double GpuUs = double.NaN, double PctOfCopy = double.NaN);

/// <summary>
/// Quantized decode benchmarks (<c>--quant</c>): attention of one query over a KV cache of 1K–32K tokens per layer
/// (32 heads × 128, batch 1) with the fused quantized-cache kernel vs SDPA on the fp16 cache, and weight-only int8/int4
/// linear layers 4096→4096, 4096→11008 and 11008→4096 at M = 1…128 vs bf16 cuBLAS (torch linear): the tensor-core
/// kernel and the GEMV kernel, device and host times, % of the physical limit.
/// </summary>
internal static class QuantBench
{
    private static readonly List<QuantResult> Results = new();

    /// <summary>With <c>--quick</c>: no GEMV or reference rows beyond 16 rows (the slowest rows; measured in run 13c).</summary>
    public static bool Quick { get; set; }

    /// <summary>Runs the cases: <paramref name="only"/> <c>linear</c> or <c>kv</c> runs one half, <c>variants</c> only the
    /// opt-in builds' table, <c>probes</c> only the probes (with <c>--quant --only …</c>).</summary>
    public static void Run(string outDir, Func<Func<Tensor?>, (double, double, int)> time, Func<Func<Tensor?>, (double, double, int, double)>? timeGpu = null,
        string only = "all")
    {
        QuantizedOps.WarmUp(torch.CUDA);
        foreach (var dt in new[] { ScalarType.BFloat16 })
            foreach (var (kernel, regs, local) in QuantizedGemm.KernelResources(torch.CUDA, dt))
                Console.WriteLine($"  kernel {kernel,-20} {dt,-9} {regs,3} registers, {local} local bytes per thread");
        if (timeGpu is not null) Guard(() => Copy(timeGpu));
        if (only is "probes" or "linear+probes")
        {
            Guard(Probes);
            File.WriteAllText(Path.Combine(outDir, "quant_probes.md"), ProbeTable.ToString());
            Console.WriteLine(ProbeTable.ToString());
            if (only == "probes") return;
        }
        if (only is not ("linear" or "linear+probes" or "variants"))
            foreach (var ctx in new[] { 1024, 4096, 16384, 32768 })
                Guard(() => Kv(ctx, timeGpu ?? (f => { var (m, mn, n) = time(f); return (m, mn, n, double.NaN); })));
        if (only is not ("kv" or "variants"))
            foreach (var (k, n) in new[] { (4096L, 4096L), (4096L, 11008L), (11008L, 4096L) })
                Guard(() => Linear(k, n, time, timeGpu));
        if (only is "variants" or "linear" or "all" or "linear+probes")
        {
            Guard(Variants);
            File.WriteAllText(Path.Combine(outDir, "quant_variants.md"), VariantTable.ToString());
            Console.WriteLine(VariantTable.ToString());
        }
        var json = JsonSerializer.Serialize(Results, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
        File.WriteAllText(Path.Combine(outDir, "quant.json"), json);
        var sb = new StringBuilder();
        sb.AppendLine("| bench | config | impl | size | median µs (host) | device µs | GB/s | rel. err |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in Results)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Bench} | {r.Config} | {r.Impl} | {r.Size} | {r.MedianUs:F1} | {r.GpuUs:F1} | {r.GBps:F0} | {(r.RelErr is { } e ? e.ToString("E1", CultureInfo.InvariantCulture) : "")} |"));
        if (LinearRows.Count > 0) sb.AppendLine().AppendLine(LinearTable());
        File.WriteAllText(Path.Combine(outDir, "quant.md"), sb.ToString());
        Console.WriteLine(sb.ToString());
    }

    private static void Guard(Action a)
    {
        try { a(); }
        catch (Exception e) { Console.Error.WriteLine($"quant case failed: {e.GetType().Name}: {e.Message}\n{e.StackTrace}"); }
    }

    private static void Add(string bench, string config, string impl, long size, (double m, double mn, int s) t, double bytes, double? err)
    {
        Results.Add(new QuantResult(bench, config, impl, size, t.m, t.mn, bytes, bytes / t.m / 1e3, err));
        Console.WriteLine($"{bench,-10} {config,-24} {impl,-28} {size,6} {t.m,10:F1} us {bytes / t.m / 1e3,7:F0} GB/s {(err is { } e ? e.ToString("E1") : "")}");
    }

    private static double Err(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        var x = a.to_type(ScalarType.Float64);
        var y = b.to_type(ScalarType.Float64);
        return (x - y).norm().item<double>() / Math.Max(y.norm().item<double>(), 1e-300);
    }

    private static void Kv(int ctx, Func<Func<Tensor?>, (double, double, int, double)> time) => KvAttentionBench.Run(ctx, time, Results.Add, _copyGBps);

    /// <summary>One weight-only linear row: device times (µs) of every implementation at one M, and the queued device
    /// times (<see cref="Queued"/>) of cuBLAS and the tensor-core kernel.</summary>
    private sealed record LinearRow(string Shape, long M, double CublasUs, double Int8MmaUs, double Int8GemvUs, double Int4MmaUs,
        double Int4GemvUs, double Int8Bytes, double Int4Bytes, double CublasQueuedUs, double Int8QueuedUs, double Int4QueuedUs);

    private static Tensor? _busy;
    private static double _busyUs = double.NaN;

    /// <summary>
    /// Device time per call with the host's issue time taken out: 20 calls are queued behind a bf16 8192² matmul
    /// (about 2 ms), so the GPU runs them back to back; median of 5 such batches. Back-to-back event times (the other
    /// columns) include the gaps where the GPU waits for the host when a call's host work is longer than its kernel.
    /// Returns NaN when the host took longer to queue the calls than the matmul ran (the gaps were not hidden).
    /// </summary>
    private static double Queued(Func<Tensor?> f)
    {
        const int calls = 20;
        _busy ??= torch.randn(new long[] { 8192, 8192 }, device: torch.CUDA).to_type(ScalarType.BFloat16).DetachFromDisposeScope();
        using var timer = new CudaTimer();
        if (double.IsNaN(_busyUs))
        {
            torch.cuda.synchronize();
            timer.Start();
            torch.matmul(_busy, _busy).Dispose();
            _busyUs = timer.StopMilliseconds() * 1e3;
            Console.WriteLine($"queued timing: the busy matmul runs {_busyUs:F0} us");
        }
        var samples = new List<double>();
        for (int r = 0; r < 5; r++)
        {
            torch.cuda.synchronize();
            torch.matmul(_busy, _busy).Dispose();   // freed in stream order: the calls below may reuse its memory safely
            var sw = System.Diagnostics.Stopwatch.StartNew();
            timer.Start();
            for (int i = 0; i < calls; i++)
            {
                using var scope = torch.NewDisposeScope();
                f();
            }
            double hostUs = sw.Elapsed.TotalMilliseconds * 1e3;
            double us = timer.StopMilliseconds() * 1e3 / calls;
            if (hostUs < 0.8 * _busyUs) samples.Add(us);
        }
        if (samples.Count == 0) return double.NaN;
        samples.Sort();
        return samples[samples.Count / 2];
    }

    private static readonly List<LinearRow> LinearRows = new();

    /// <summary>Device-to-device copy bandwidth (GB/s, read + write), measured once in this process.</summary>
    private static double _copyGBps = double.NaN;

    private static void Copy(Func<Func<Tensor?>, (double, double, int, double)> time)
    {
        long n = 128L << 20;
        using var a = torch.randn(n, device: torch.CUDA);
        using var b = torch.empty(n, device: torch.CUDA);
        var (_, _, _, g) = time(() => { b.copy_(a); return null; });
        _copyGBps = 2.0 * n * 4 / g / 1e3;
        Console.WriteLine($"device-to-device copy: {_copyGBps:F0} GB/s (read + write)");
    }

    /// <summary>
    /// Weight-only linear K→N at M = 1…128 rows of bf16 activations: bf16 cuBLAS, the tensor-core kernel
    /// (<see cref="QuantizedGemm"/>, M ≤ 64) and the GEMV kernel it replaces, int8 and int4 g128, device time (CUDA
    /// events) and host time in the same process; % of the physical limit = weight bytes (codes, scales, zeros) over
    /// the device time, against the measured copy bandwidth.
    /// </summary>
    private static void Linear(long K, long N, Func<Func<Tensor?>, (double, double, int)> time, Func<Func<Tensor?>, (double, double, int, double)>? timeGpu)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(K + N);
        var lin = nn.Linear(K, N, hasBias: false);
        var wbf = lin.weight!.detach().to(ScalarType.BFloat16, torch.CUDA);
        var i8 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int8PerChannel);
        var i4 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int4Grouped, 128);
        i8.to(torch.CUDA);
        i4.to(torch.CUDA);
        string cfg = $"{K}→{N} bf16 act";
        (double m, double mn, int s, double g) T(Func<Tensor?> f)
        {
            if (timeGpu is not null) return timeGpu(f);
            var (m, mn, s) = time(f);
            return (m, mn, s, double.NaN);
        }
        void AddT(string impl, long M, (double m, double mn, int s, double g) t, double bytes, double? err)
        {
            Results.Add(new QuantResult("linear", cfg, impl, M, t.m, t.mn, bytes, bytes / t.m / 1e3, err, t.g,
                100 * bytes / t.g / 1e3 / _copyGBps));
            Console.WriteLine($"linear     {cfg,-24} {impl,-40} {M,6} {t.g,9:F1} us GPU {t.m,9:F1} us host {bytes / t.g / 1e3,7:F0} GB/s {100 * bytes / t.g / 1e3 / _copyGBps,5:F1}% copy {(err is { } e ? e.ToString("E1") : "")}");
        }
        foreach (var M in new[] { 1, 2, 4, 8, 16, 32, 64, 128 })
        {
            var x = torch.randn(M, K, device: torch.CUDA).to_type(ScalarType.BFloat16);
            var cub = T(() => torch.nn.functional.linear(x, wbf));
            AddT("bf16 cuBLAS (torch linear)", M, cub, 2.0 * K * N + 2.0 * M * (K + N), null);
            var times = new Dictionary<string, double>();
            times["cublas queued"] = Queued(() => torch.nn.functional.linear(x, wbf));
            foreach (var (name, q) in new[] { ("int8", i8), ("int4 g128", i4) })
            {
                double bytes = q.WeightBytes + 2.0 * M * (K + N);
                Tensor? F() => QuantizedOps.Linear(x, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, maxRows: 1 << 20);
                if (M <= QuantizedGemm.MaxRows)
                {
                    QuantizedGemm.Enabled = true;
                    var f = F() ?? throw new InvalidOperationException("quantized linear returned null");
                    var t = T(F);
                    times[name + " mma"] = t.g;
                    AddT($"{name}: tensor-core kernel", M, t, bytes, Err(f, q.ReferenceForward(x)));
                    times[name + " queued"] = Queued(F);
                }
                if (Quick && M > 16) continue;
                QuantizedGemm.Enabled = false;
                try
                {
                    var f = F() ?? throw new InvalidOperationException("fused linear returned null");
                    var t = T(F);
                    times[name + " gemv"] = t.g;
                    AddT($"{name}: GEMV kernel", M, t, bytes, Err(f, q.ReferenceForward(x)));
                    if (M == 1 || M == 16 || M == 128)
                        AddT($"{name}: reference (dequantize + fp32 matmul)", M, T(() => q.ReferenceForward(x)), bytes, null);
                }
                finally
                {
                    QuantizedGemm.Enabled = true;
                }
            }
            LinearRows.Add(new LinearRow($"{K}→{N}", M, cub.g, times.GetValueOrDefault("int8 mma", double.NaN), times.GetValueOrDefault("int8 gemv", double.NaN),
                times.GetValueOrDefault("int4 g128 mma", double.NaN), times.GetValueOrDefault("int4 g128 gemv", double.NaN), i8.WeightBytes, i4.WeightBytes,
                times["cublas queued"], times.GetValueOrDefault("int8 queued", double.NaN), times.GetValueOrDefault("int4 g128 queued", double.NaN)));
            Console.WriteLine($"linear     {cfg,-24} queued (host issue hidden) M={M}: cuBLAS {times["cublas queued"]:F1} us, int8 {times.GetValueOrDefault("int8 queued", double.NaN):F1} us, int4 {times.GetValueOrDefault("int4 g128 queued", double.NaN):F1} us");
        }
    }

    private static readonly StringBuilder ProbeTable = new();

    /// <summary>
    /// Where the tensor-core kernel's time goes (<c>--quant --only probes</c>): queued device µs of the kernel, of a probe
    /// that feeds the raw codes to the mma (no dequantization) and of one that only streams the weights (no dequantization,
    /// no mma), at the plan's split-K and at forced 1…16 splits (<see cref="QuantizedGemm.Probe"/>,
    /// <see cref="QuantizedGemm.ForcedSplits"/>).
    /// </summary>
    private static void Probes()
    {
        int[] splits = { 0, 1, 2, 4, 8, 16 };
        ProbeTable.AppendLine("Queued device µs (20 calls behind a long matmul); split 0 = the plan's own.");
        ProbeTable.AppendLine();
        ProbeTable.AppendLine("| shape | M | weights | variant | " + string.Join(" | ", splits.Select(x => $"S={x}")) + " |");
        ProbeTable.AppendLine("|---|---:|---|---|" + string.Concat(splits.Select(_ => "---:|")));
        foreach (var (K, N) in new[] { (4096L, 11008L), (4096L, 4096L) })
        {
            using var scope = torch.NewDisposeScope();
            torch.manual_seed(K + N);
            var lin = nn.Linear(K, N, hasBias: false);
            var i8 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int8PerChannel);
            var i4 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int4Grouped, 128);
            i8.to(torch.CUDA);
            i4.to(torch.CUDA);
            var wbf = lin.weight!.detach().to(ScalarType.BFloat16, torch.CUDA);
            foreach (var M in new[] { 1, 16, 64 })
            {
                var x = torch.randn(M, K, device: torch.CUDA).to_type(ScalarType.BFloat16);
                ProbeTable.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {K}→{N} | {M} | bf16 | cuBLAS | {Queued(() => torch.nn.functional.linear(x, wbf)):F1} | | | | | |"));
                foreach (var (name, q) in new[] { ("int8", i8), ("int4 g128", i4) })
                    foreach (var (probe, variant) in new[] { (0, "kernel"), (2, "no dequantization"), (1, "weight stream only") })
                    {
                        var cells = new List<string>();
                        foreach (var sp in splits)
                        {
                            QuantizedGemm.Probe = probe;
                            QuantizedGemm.ForcedSplits = sp;
                            try
                            {
                                cells.Add(Queued(() => QuantizedOps.Linear(x, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale)
                                    ?? throw new InvalidOperationException("the quantized linear declined")).ToString("F1", CultureInfo.InvariantCulture));
                            }
                            catch (Exception e)
                            {
                                cells.Add("failed");
                                Console.Error.WriteLine($"probe {name} {variant} S={sp}: {e.Message}");
                            }
                            finally
                            {
                                QuantizedGemm.Probe = 0;
                                QuantizedGemm.ForcedSplits = 0;
                            }
                        }
                        ProbeTable.AppendLine($"| {K}→{N} | {M} | {name} | {variant} | {string.Join(" | ", cells)} |");
                        Console.WriteLine($"probe {K}→{N} M={M} {name,-9} {variant,-20} {string.Join(" ", cells)}");
                    }
            }
        }
    }

    private static readonly StringBuilder VariantTable = new();

    /// <summary>
    /// The opt-in variants of the tensor-core kernel against the default in one process (<c>--quant --only variants</c>,
    /// also after the linear rows): queued device µs of bf16 cuBLAS, int8 and int4 g128 (default), int4 with the group
    /// scale in fp32 (<see cref="QuantizedGemm.Int4ScaleInAccumulator"/> = 2) and, from 33 rows, the wide split-K plan
    /// (<see cref="QuantizedGemm.WideSplitsForManyRows"/>). Each twice: "warm" repeats one weight (int4 and int8 weights of
    /// these shapes fit the 50 MB L2, so their rows measure L2, not HBM) and "cold" rotates through copies of the
    /// weights holding at least 160 MB, so every call reads its weights from HBM, as a decode through many layers does.
    /// Output columns: each cell is µs; "× cuBLAS" columns are the cuBLAS time (same warmth) over the best int4 time.
    /// </summary>
    private static void Variants()
    {
        VariantTable.AppendLine("Queued device µs (20 calls behind a long matmul). warm: one weight; cold: rotating copies ≥ 160 MB (HBM reads).");
        VariantTable.AppendLine("int4 fs = fp32 group scale (Int4ScaleInAccumulator = 2, M ≤ 32); wide = WideSplitsForManyRows (M > 32); ring3 = RingForManyRows = 3 (M > 16).");
        VariantTable.AppendLine();
        VariantTable.AppendLine("| shape | M | weights | bf16 cuBLAS | int8 | int8 wide | int8 ring3 | int4 | int4 fs | int4 wide | int4 ring3 | int4 × cuBLAS | best int4 × cuBLAS | best int4 % limit |");
        VariantTable.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (K, N) in new[] { (4096L, 4096L), (4096L, 11008L), (11008L, 4096L) })
        {
            using var scope = torch.NewDisposeScope();
            torch.manual_seed(K + N);
            var lin = nn.Linear(K, N, hasBias: false);
            var i8 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int8PerChannel);
            var i4 = QuantizedLinear.FromLinear(lin, WeightQuantMode.Int4Grouped, 128);
            i8.to(torch.CUDA);
            i4.to(torch.CUDA);
            var wbf = lin.weight!.detach().to(ScalarType.BFloat16, torch.CUDA);
            const double coldBytes = 160e6;
            int Copies(double bytes) => Math.Max(2, (int)Math.Ceiling(coldBytes / bytes));
            // copies of the weights on the device (each quantized copy is repacked once, on its first call below)
            var bfs = Enumerable.Range(0, Copies(2.0 * K * N)).Select(i => i == 0 ? wbf : wbf.clone()).ToArray();
            (Tensor qw, Tensor sc, Tensor? z)[] Clones(QuantizedLinear q) => Enumerable.Range(0, Copies(q.WeightBytes))
                .Select(i => i == 0 ? (q.QWeight, q.Scales, q.Zeros) : (q.QWeight.clone(), q.Scales.clone(), q.Zeros?.clone())).ToArray();
            var c8 = Clones(i8);
            var c4 = Clones(i4);
            foreach (var M in new[] { 1, 4, 16, 32, 64 })
            {
                var x = torch.randn(M, K, device: torch.CUDA).to_type(ScalarType.BFloat16);
                foreach (var cold in new[] { false, true })
                {
                    int r8 = 0, r4 = 0, rb = 0;
                    Tensor? Q(QuantizedLinear q, (Tensor qw, Tensor sc, Tensor? z)[] copies, ref int next)
                    {
                        var (qw, sc, z) = copies[cold ? next++ % copies.Length : 0];
                        return QuantizedOps.Linear(x, q.Mode, q.GroupSize, qw, sc, z, q.Bias, q.InputScale)
                            ?? throw new InvalidOperationException("the quantized linear declined");
                    }
                    double Cell(Func<Tensor?> f, Action? on = null)
                    {
                        on?.Invoke();
                        try
                        {
                            // every copy once first (repacks, kernel loads), then the timing
                            for (int i = 0; i < 2 * Math.Max(c8.Length, c4.Length); i++) f()?.Dispose();
                            return Queued(f);
                        }
                        finally
                        {
                            QuantizedGemm.Int4ScaleInAccumulator = 0;
                            QuantizedGemm.WideSplitsForManyRows = false;
                            QuantizedGemm.RingForManyRows = 2;
                        }
                    }
                    double cub = Cell(() => torch.nn.functional.linear(x, bfs[cold ? rb++ % bfs.Length : 0]));
                    double q8 = Cell(() => Q(i8, c8, ref r8));
                    double q8w = M > 32 ? Cell(() => Q(i8, c8, ref r8), () => QuantizedGemm.WideSplitsForManyRows = true) : double.NaN;
                    double q8r = M > 16 ? Cell(() => Q(i8, c8, ref r8), () => QuantizedGemm.RingForManyRows = 3) : double.NaN;
                    double q4 = Cell(() => Q(i4, c4, ref r4));
                    double q4f = M <= 32 ? Cell(() => Q(i4, c4, ref r4), () => QuantizedGemm.Int4ScaleInAccumulator = 2) : double.NaN;
                    double q4w = M > 32 ? Cell(() => Q(i4, c4, ref r4), () => QuantizedGemm.WideSplitsForManyRows = true) : double.NaN;
                    double q4r = M > 16 ? Cell(() => Q(i4, c4, ref r4), () => QuantizedGemm.RingForManyRows = 3) : double.NaN;
                    double best = new[] { q4, q4f, q4w, q4r }.Where(v => !double.IsNaN(v)).Min();
                    double limit = 100 * (i4.WeightBytes + 2.0 * M * (K + N)) / best / 1e3 / _copyGBps;
                    VariantTable.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {K}→{N} | {M} | {(cold ? "cold" : "warm")} | {cub:F1} | {q8:F1} | {q8w:F1} | {q8r:F1} | {q4:F1} | {q4f:F1} | {q4w:F1} | {q4r:F1} | {cub / q4:F2} | {cub / best:F2} | {limit:F0} |"));
                    Console.WriteLine($"variants {K}→{N} M={M} {(cold ? "cold" : "warm")}: cuBLAS {cub:F1} int8 {q8:F1} (wide {q8w:F1}, ring3 {q8r:F1}) int4 {q4:F1} (fs {q4f:F1}, wide {q4w:F1}, ring3 {q4r:F1}) us");
                }
            }
        }
        // the opt-in builds' registers (the defaults are printed at start)
        QuantizedGemm.Int4ScaleInAccumulator = 2;
        QuantizedGemm.RingForManyRows = 3;
        try
        {
            VariantTable.AppendLine();
            foreach (var (kernel, regs, local) in QuantizedGemm.KernelResources(torch.CUDA, ScalarType.BFloat16))
                if (!kernel.Contains("_m1_") || (kernel.StartsWith("int4", StringComparison.Ordinal) && kernel.EndsWith("_g1", StringComparison.Ordinal)))
                    VariantTable.AppendLine($"- opt-in build (fs 2, ring 3): {kernel} {regs} registers, {local} local bytes per thread");
        }
        finally
        {
            QuantizedGemm.Int4ScaleInAccumulator = 0;
            QuantizedGemm.RingForManyRows = 2;
        }
    }

    /// <summary>The linear rows as one table: device µs, speed-up of the tensor-core kernel over cuBLAS, % of the physical limit.</summary>
    private static string LinearTable()
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Device time (CUDA events), µs; copy {_copyGBps:F0} GB/s. × = cuBLAS time / kernel time; % limit = weight bytes / time / copy bandwidth."));
        sb.AppendLine();
        sb.AppendLine("| shape | M | bf16 cuBLAS | int8 mma | int8 GEMV | int4 mma | int4 GEMV | int8 × cuBLAS | int4 × cuBLAS | int8 % limit | int4 % limit |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in LinearRows)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Shape} | {r.M} | {r.CublasUs:F1} | {r.Int8MmaUs:F1} | {r.Int8GemvUs:F1} | {r.Int4MmaUs:F1} | {r.Int4GemvUs:F1} | {r.CublasUs / r.Int8MmaUs:F2} | {r.CublasUs / r.Int4MmaUs:F2} | {100 * r.Int8Bytes / r.Int8MmaUs / 1e3 / _copyGBps:F0} | {100 * r.Int4Bytes / r.Int4MmaUs / 1e3 / _copyGBps:F0} |"));
        sb.AppendLine();
        sb.AppendLine("Queued device time (20 calls behind a long matmul: the host's issue time hidden), µs:");
        sb.AppendLine();
        sb.AppendLine("| shape | M | bf16 cuBLAS | int8 mma | int4 mma | int8 × cuBLAS | int4 × cuBLAS | int8 % limit | int4 % limit |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in LinearRows)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Shape} | {r.M} | {r.CublasQueuedUs:F1} | {r.Int8QueuedUs:F1} | {r.Int4QueuedUs:F1} | {r.CublasQueuedUs / r.Int8QueuedUs:F2} | {r.CublasQueuedUs / r.Int4QueuedUs:F2} | {100 * r.Int8Bytes / r.Int8QueuedUs / 1e3 / _copyGBps:F0} | {100 * r.Int4Bytes / r.Int4QueuedUs / 1e3 / _copyGBps:F0} |"));
        return sb.ToString();
    }
}
