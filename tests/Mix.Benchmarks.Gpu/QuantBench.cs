using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.Json;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>One quantized-decode measurement.</summary>
internal sealed record QuantResult(string Bench, string Config, string Impl, long Size, double MedianUs, double MinUs, double Bytes,
    double GBps, double? RelErr);

/// <summary>
/// Quantized decode benchmarks (<c>--quant</c>): attention of one query over a KV cache of 1K–32K tokens per layer
/// (32 heads × 128, batch 1) with the fused quantized-cache kernel vs SDPA on the fp16 cache, and weight-only int8/int4
/// linear layers 4096→4096 (+ 4096→11008) at M = 1…128 vs bf16 cuBLAS (torch linear).
/// </summary>
internal static class QuantBench
{
    private static readonly List<QuantResult> Results = new();

    public static void Run(string outDir, Func<Func<Tensor?>, (double, double, int)> time)
    {
        QuantizedOps.WarmUp(torch.CUDA);
        foreach (var ctx in new[] { 1024, 4096, 16384, 32768 })
            Guard(() => Kv(ctx, time));
        foreach (var (k, n) in new[] { (4096L, 4096L), (4096L, 11008L) })
            Guard(() => Linear(k, n, time));
        var json = JsonSerializer.Serialize(Results, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
        File.WriteAllText(Path.Combine(outDir, "quant.json"), json);
        var sb = new StringBuilder();
        sb.AppendLine("| bench | config | impl | size | median µs | GB/s | rel. err |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|");
        foreach (var r in Results)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Bench} | {r.Config} | {r.Impl} | {r.Size} | {r.MedianUs:F1} | {r.GBps:F0} | {(r.RelErr is { } e ? e.ToString("E1", CultureInfo.InvariantCulture) : "")} |"));
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

    private static void Kv(int ctx, Func<Func<Tensor?>, (double, double, int)> time) => KvAttentionBench.Run(ctx, time, Add, Results.Add);

    private static void Linear(long K, long N, Func<Func<Tensor?>, (double, double, int)> time)
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
        foreach (var M in new[] { 1, 2, 4, 8, 16, 32, 64, 128 })
        {
            var x = torch.randn(M, K, device: torch.CUDA).to_type(ScalarType.BFloat16);
            Add("linear", cfg, "bf16 cuBLAS (torch linear)", M, time(() => torch.nn.functional.linear(x, wbf)), 2.0 * K * N + 2.0 * M * (K + N), null);
            foreach (var (name, q) in new[] { ("int8", i8), ("int4 g128", i4) })
            {
                Tensor? F() => QuantizedOps.Linear(x, q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros, q.Bias, q.InputScale, maxRows: 1 << 20);
                var f = F() ?? throw new InvalidOperationException("fused linear returned null");
                double err = Err(f, q.ReferenceForward(x));
                Add("linear", cfg, $"{name}: fused kernel", M, time(F), q.WeightBytes + 2.0 * M * (K + N), err);
                if (M == 1 || M == 16 || M == 128)
                    Add("linear", cfg, $"{name}: reference (dequantize + fp32 matmul)", M, time(() => q.ReferenceForward(x)), q.WeightBytes + 2.0 * M * (K + N), null);
            }
        }
    }
}
