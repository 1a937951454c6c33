using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// <c>--only scans-vs-triton</c>: the fused <c>ssd_scan</c> and <c>gla_scan</c> (forward and decode step) and the zoo's
/// mamba2_lm and gla_lm at the shapes <c>triton_scans.py</c> gives the official Triton kernels and layers, each against
/// the TorchSharp reference path (<see cref="MixDispatch.FusedEnabled"/> off) in the same process; rows in that
/// script's JSON layout (<c>scans_vs_triton_torchsharp.json</c>), so the two files compare row by row. A scan row's
/// impl names the path <see cref="ScanDispatch"/> took (chunked, recurrent, or the reference where no kernel is faster),
/// and <c>chunk_size</c> is the chunked kernels' chunk (null for the recurrent kernel and the reference).
/// <c>--quick</c> keeps what fits one device call next to <c>triton_scans.py --quick</c> (the same rows there):
/// bfloat16 only, L = 2K and 16K at batch 1 and 4, the decode steps at batch 1, and both LMs at L = 2K and 16K.
/// </summary>
internal static class ScanVsTritonBench
{
    private static readonly long[] Lengths = { 2048, 4096, 8192, 16384 };
    private const long SsdHeads = 24, SsdHeadDim = 64, SsdGroups = 1, SsdState = 128;   // Mamba-2-130m
    private const long GlaHeads = 6, GlaKeys = 64, GlaValues = 128;                     // d_model 768, 6 heads

    private sealed record Row(string Op, string Impl, string Dtype, long Batch, long SeqLen, string Shape, double MedianMs,
        double MinMs, int Samples, double GpuMs, double TokensPerS, double? RelErrVsReference, int? ChunkSize);

    private static readonly List<Row> Rows = new();

    public static void Run(string outDir, Func<Func<Tensor?>, (double medianUs, double minUs, int samples, double gpuUs)> time,
        bool quick = false)
    {
        var dtypes = quick ? new[] { ScalarType.BFloat16 } : new[] { ScalarType.BFloat16, ScalarType.Float32 };
        long[] lengths = quick ? new long[] { 2048, 16384 } : Lengths;
        try
        {
            foreach (var dt in dtypes)
                foreach (long b in new long[] { 1, 4 })
                    foreach (long L in lengths)
                    {
                        Guard(() => Ssd(time, dt, b, L));
                        Guard(() => Gla(time, dt, b, L));
                    }
            if (!quick)
                foreach (long L in new long[] { 64, 128, 256, 512, 1024 })
                {
                    Guard(() => SsdCrossover(time, L));
                    Guard(() => GlaCrossover(time, L));
                }
            foreach (var dt in dtypes)
                foreach (long b in quick ? new long[] { 1 } : new long[] { 1, 4 })
                {
                    Guard(() => SsdStep(time, dt, b));
                    Guard(() => GlaStep(time, dt, b));
                }
            foreach (var dt in dtypes)
            {
                Guard(() => Lm(time, "mamba2_lm", dt, () => new Mix.Generated.Models.Mamba2Lm(), 50288, lengths));
                Guard(() => Lm(time, "gla_lm", dt,
                    () => new Mix.Generated.Models.GlaLm(new Mix.Generated.Models.GlaLm.Options { DModel = 768, NLayer = 12, NumHeads = 6 }),
                    32000, lengths));
            }
            // decode through the inference cache (issue 13: "the same for Mamba-2 and GLA decode"): µs a step and tok/s
            foreach (var dt in dtypes)
            {
                Guard(() => LmDecode(time, "mamba2_lm", dt, () => new Mix.Generated.Models.Mamba2Lm(), 50288, quick));
                Guard(() => LmDecode(time, "gla_lm", dt,
                    () => new Mix.Generated.Models.GlaLm(new Mix.Generated.Models.GlaLm.Options { DModel = 768, NLayer = 12, NumHeads = 6 }),
                    32000, quick));
                // attention every fourth layer: the decoding graph in segments, the attention layers run between them
                Guard(() => LmDecode(time, "hybrid_lm", dt,
                    () => new Mix.Generated.Models.HybridLm(new Mix.Generated.Models.HybridLm.Options { DModel = 768, NLayer = 12 }),
                    32000, quick));
            }
        }
        finally
        {
            // written whatever happened above (a NaN error is written as "NaN": the JSON must not fail on it)
            Directory.CreateDirectory(outDir);
            var json = JsonSerializer.Serialize(new { ssd = new { h = SsdHeads, p = SsdHeadDim, g = SsdGroups, n = SsdState },
                gla = new { h = GlaHeads, K = GlaKeys, V = GlaValues }, results = Rows },
                new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
                    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals });
            File.WriteAllText(Path.Combine(outDir, "scans_vs_triton_torchsharp.json"), json);
        }
    }

    private static void Guard(Action a)
    {
        try { a(); }
        catch (Exception e) { Console.Error.WriteLine($"scans-vs-triton case failed: {e.GetType().Name}: {e.Message}"); }
    }

    /// <summary>Times <paramref name="f"/> with fusion on (fused) and off (reference), and records both rows.</summary>
    private static void Pair(Func<Func<Tensor?>, (double, double, int, double)> time, string op, string fusedImpl, ScalarType dt,
        long b, long L, string shape, long tokens, Func<Tensor> f, int? chunk = null)
    {
        double err;
        using (var scope = torch.NewDisposeScope())
        {
            var fused = f();
            MixDispatch.FusedEnabled = false;
            try { err = RelErr(fused, f()); }
            finally { MixDispatch.FusedEnabled = true; }
        }
        var (fm, fmin, fs, fg) = time(() => f());
        Add(op, fusedImpl, dt, b, L, shape, fm, fmin, fs, fg, tokens, err, chunk);
        MixDispatch.FusedEnabled = false;
        try
        {
            var (rm, rmin, rs, rg) = time(() => f());
            Add(op, "torchsharp reference (fusion off)", dt, b, L, shape, rm, rmin, rs, rg, tokens, null, null);
        }
        finally { MixDispatch.FusedEnabled = true; }
    }

    private static void Add(string op, string impl, ScalarType dt, long b, long L, string shape, double medUs, double minUs, int n,
        double gpuUs, long tokens, double? err, int? chunk)
    {
        string d = dt == ScalarType.BFloat16 ? "bfloat16" : "float32";
        var row = new Row(op, impl, d, b, L, shape, medUs / 1e3, minUs / 1e3, n, gpuUs / 1e3, tokens / (medUs / 1e6), err, chunk);
        Rows.Add(row);
        Console.WriteLine($"{op,-10} {impl,-44} {d,-9} b{b,-2} L{L,-6} {(chunk is { } c ? $"C{c}" : "-"),-4} " +
                          $"{(L == 1 ? $"{medUs,10:F1} us" : $"{medUs / 1e3,10:F3} ms")} " +
                          $"(GPU {gpuUs / 1e3:F3} ms, n={n,2}) {row.TokensPerS,14:F0} tok/s" + (err is { } e ? $"  rel err vs reference {e:g3}" : ""));
    }

    private static double RelErr(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        var x = a.to_type(ScalarType.Float64);
        var y = b.to_type(ScalarType.Float64);
        return (x - y).norm().item<double>() / Math.Max(y.norm().item<double>(), 1e-300);
    }

    private static void Ssd(Func<Func<Tensor?>, (double, double, int, double)> time, ScalarType dt, long b, long L)
    {
        using var scope = torch.NewDisposeScope();
        long h = SsdHeads, p = SsdHeadDim, g = SsdGroups, n = SsdState;
        torch.manual_seed(0);
        var x = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var z = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var dtv = torch.randn(b, L, h, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(h, device: torch.CUDA) * 4 - 0.5;
        var B = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var C = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var D = torch.randn(h, device: torch.CUDA);
        var bias = torch.randn(h, device: torch.CUDA) * 0.1 - 2;
        // SsdScan.Scan: the path ScanDispatch picks with fusion on, the chunked reference (chunk 64) with it off
        var path = ScanDispatch.Ssd(L, CudaScanKernels.SsdChunkedFits(x, B));
        Pair(time, "ssd_scan", Label("ssd_scan", path), dt, b, L, $"b{b} L{L} h{h} p{p} g{g} n{n}", b * L,
            () => SsdScan.Scan(x, dtv, A, B, C, 64, D, z, bias, true).y,
            path == ScanForward.Chunked && dt != ScalarType.Float32 ? CudaScanKernels.SsdTensorCoreChunkSize : Chunk(path));
    }

    /// <summary>
    /// <c>--only gla-profile</c>: the chunked GLA forward alone, bf16, batch 4, L = 16K, two warm-up calls then three
    /// more, for a profiler (ncu: skip the first 2 × 3 kernel launches) to read one steady-state call's kernels; the
    /// second form of the tensor-core kernels unless <c>--gla-form first</c> (both forms launch three kernels per call).
    /// </summary>
    public static void ProfileGla(long b = 4, long L = 16384)
    {
        using var scope = torch.NewDisposeScope();
        long K = GlaKeys;
        torch.manual_seed(0);
        var (q, k, v, g) = GlaInputs(b, L, ScalarType.BFloat16);
        for (int i = 0; i < 5; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            using var o = GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o;
            torch.cuda.synchronize();
            Console.WriteLine($"gla b{b} T{L} bf16 ({(CudaScanKernels.UseGlaSecondForm ? "second" : "first")} form) call {i}: {sw.Elapsed.TotalMilliseconds:F3} ms");
        }
    }

    // GLA's inputs at the benchmark's head shape: normal q, k, v and log-sigmoid gates scaled into a slow decay
    private static (Tensor q, Tensor k, Tensor v, Tensor g) GlaInputs(long b, long L, ScalarType dt) =>
        (torch.randn(b, L, GlaHeads, GlaKeys, device: torch.CUDA).to_type(dt),
         torch.randn(b, L, GlaHeads, GlaKeys, device: torch.CUDA).to_type(dt),
         torch.randn(b, L, GlaHeads, GlaValues, device: torch.CUDA).to_type(dt),
         (torch.nn.functional.logsigmoid(torch.randn(b, L, GlaHeads, GlaKeys, device: torch.CUDA)) / 16).to_type(dt));

    private static void Gla(Func<Func<Tensor?>, (double, double, int, double)> time, ScalarType dt, long b, long L)
    {
        using var scope = torch.NewDisposeScope();
        long h = GlaHeads, K = GlaKeys, V = GlaValues;
        torch.manual_seed(0);
        var (q, k, v, g) = GlaInputs(b, L, dt);
        var path = ScanDispatch.Gla(L, CudaScanKernels.ChunkedFits(b, h, K, V));
        Pair(time, "gla_scan", Label("gla_scan", path), dt, b, L, $"b{b} T{L} h{h} K{K} V{V}", b * L,
            () => GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o, Chunk(path));
        if (dt != ScalarType.Float32 && path == ScanForward.Chunked)
        {
            // the tensor-core kernels' other form (the row above ran the default one; the second form: secondary chunking,
            // bf16 entering states)
            bool savedForm = CudaScanKernels.UseGlaSecondForm;
            CudaScanKernels.UseGlaSecondForm = !savedForm;
            try
            {
                // rel_err_vs_reference of this row: the first form against the reference path
                double err;
                using (var s2 = torch.NewDisposeScope())
                {
                    var first = GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o;
                    MixDispatch.FusedEnabled = false;
                    try { err = RelErr(first, GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o); }
                    finally { MixDispatch.FusedEnabled = true; }
                }
                var (m, mn, n, gpu) = time(() => GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o);
                Add("gla_scan", savedForm ? "mix fused gla_scan (chunked, tensor cores, first form)" : "mix fused gla_scan (chunked, tensor cores, second form)", dt, b, L, $"b{b} T{L} h{h} K{K} V{V}",
                    m, mn, n, gpu, b * L, err, CudaScanKernels.ChunkSize);
            }
            finally { CudaScanKernels.UseGlaSecondForm = savedForm; }
        }
        if (dt != ScalarType.Float32 && path == ScanForward.Chunked)
        {
            // the same chunked path on the float32-FMA kernels (half precision takes the tensor-core ones by default)
            CudaScanKernels.UseGlaTensorCores = false;
            try
            {
                var (m, mn, n, gpu) = time(() => GlaScan.Scan(q, k, v, g, 1.0 / Math.Sqrt(K), 64).o);
                Add("gla_scan", "mix fused gla_scan (chunked, FMA: no tensor cores)", dt, b, L, $"b{b} T{L} h{h} K{K} V{V}",
                    m, mn, n, gpu, b * L, null, CudaScanKernels.ChunkSize);
            }
            finally { CudaScanKernels.UseGlaTensorCores = true; }
        }
    }

    private static string Label(string op, ScanForward path) => path switch
    {
        ScanForward.Chunked => $"mix fused {op} (chunked)",
        ScanForward.Recurrent => $"mix fused {op} (recurrent)",
        _ => $"mix {op}: reference (no faster kernel)",
    };

    private static int? Chunk(ScanForward path) => path == ScanForward.Chunked ? CudaScanKernels.ChunkSize : null;

    // Short inputs, bf16 batch 1, both fused kernels forced (ops ssd_short / gla_short): where the chunked kernels
    // overtake the recurrent one (ScanDispatch.ChunkedMinLength) and, for SSD, where the reference overtakes the
    // recurrent kernel (ScanDispatch.SsdRecurrentMaxLength). rel_err_vs_reference: chunked against recurrent.
    private static void SsdCrossover(Func<Func<Tensor?>, (double, double, int, double)> time, long L)
    {
        using var scope = torch.NewDisposeScope();
        var dt = ScalarType.BFloat16;
        long b = 1, h = SsdHeads, p = SsdHeadDim, g = SsdGroups, n = SsdState;
        torch.manual_seed(0);
        var x = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var z = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var dtv = torch.randn(b, L, h, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(h, device: torch.CUDA) * 4 - 0.5;
        var B = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var C = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var D = torch.randn(h, device: torch.CUDA);
        var bias = torch.randn(h, device: torch.CUDA) * 0.1 - 2;
        Tensor Run(bool chunked) => CudaScanKernels.TrySsd(x, dtv, A, B, C, D, z, bias, true, null, chunked)?.y
            ?? throw new InvalidOperationException("the fused ssd_scan kernels declined");
        Short(time, "ssd_short", dt, b, L, $"b{b} L{L} h{h} p{p} g{g} n{n}", Run,
            () => SsdScan.ChunkedScan(x, dtv, A, B, C, 64, D, z, bias, true).y);
    }

    private static void GlaCrossover(Func<Func<Tensor?>, (double, double, int, double)> time, long L)
    {
        using var scope = torch.NewDisposeScope();
        var dt = ScalarType.BFloat16;
        long b = 1, h = GlaHeads, K = GlaKeys, V = GlaValues;
        torch.manual_seed(0);
        var (q, k, v, g) = GlaInputs(b, L, dt);
        double scale = 1.0 / Math.Sqrt(K);
        Tensor Run(bool chunked) => CudaScanKernels.TryGla(q, k, v, g, scale, null, chunked)?.o
            ?? throw new InvalidOperationException("the fused gla_scan kernels declined");
        Short(time, "gla_short", dt, b, L, $"b{b} T{L} h{h} K{K} V{V}", Run, () => GlaScan.ChunkedScan(q, k, v, g, scale, 64, null).o);
    }

    private static void Short(Func<Func<Tensor?>, (double, double, int, double)> time, string op, ScalarType dt, long b, long L,
        string shape, Func<bool, Tensor> run, Func<Tensor> reference)
    {
        double err;
        using (var scope = torch.NewDisposeScope()) err = RelErr(run(true), run(false));
        var (cm, cmin, cs, cg) = time(() => run(true));
        Add(op, $"mix fused {op[..3]}_scan (chunked, forced)", dt, b, L, shape, cm, cmin, cs, cg, b * L, err, CudaScanKernels.ChunkSize);
        var (rm, rmin, rs, rg) = time(() => run(false));
        Add(op, $"mix fused {op[..3]}_scan (recurrent, forced)", dt, b, L, shape, rm, rmin, rs, rg, b * L, null, null);
        var (fm, fmin, fs, fg) = time(() => reference());
        Add(op, "torchsharp reference", dt, b, L, shape, fm, fmin, fs, fg, b * L, null, null);
    }

    private static void SsdStep(Func<Func<Tensor?>, (double, double, int, double)> time, ScalarType dt, long b)
    {
        using var scope = torch.NewDisposeScope();
        long h = SsdHeads, p = SsdHeadDim, g = SsdGroups, n = SsdState;
        torch.manual_seed(0);
        var state = torch.randn(b, h, p, n, device: torch.CUDA);
        var x = torch.randn(b, h, p, device: torch.CUDA).to_type(dt);
        var z = torch.randn(b, h, p, device: torch.CUDA).to_type(dt);
        var dtv = torch.randn(b, h, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(h, device: torch.CUDA) * 4 - 0.5;
        var B = torch.randn(b, g, n, device: torch.CUDA).to_type(dt);
        var C = torch.randn(b, g, n, device: torch.CUDA).to_type(dt);
        var D = torch.randn(h, device: torch.CUDA);
        var bias = torch.randn(h, device: torch.CUDA) * 0.1 - 2;
        Pair(time, "ssd_step", "mix fused ssd_scan step (recurrent)", dt, b, 1, $"b{b} h{h} p{p} g{g} n{n}", b,
            () => SsdScan.Step(state, x, dtv, A, B, C, D, z, bias, true).y);
    }

    private static void GlaStep(Func<Func<Tensor?>, (double, double, int, double)> time, ScalarType dt, long b)
    {
        using var scope = torch.NewDisposeScope();
        long h = GlaHeads, K = GlaKeys, V = GlaValues;
        torch.manual_seed(0);
        var S = torch.randn(b, h, K, V, device: torch.CUDA);
        var q = torch.randn(b, h, K, device: torch.CUDA).to_type(dt);
        var k = torch.randn(b, h, K, device: torch.CUDA).to_type(dt);
        var v = torch.randn(b, h, V, device: torch.CUDA).to_type(dt);
        var g = (torch.nn.functional.logsigmoid(torch.randn(b, h, K, device: torch.CUDA)) / 16).to_type(dt);
        Pair(time, "gla_step", "mix fused gla_scan step (recurrent)", dt, b, 1, $"b{b} h{h} K{K} V{V}", b,
            () => GlaScan.Step(S, q, k, v, g, 1.0 / Math.Sqrt(K)).o);
    }

    private static void Lm(Func<Func<Tensor?>, (double, double, int, double)> time, string name, ScalarType dt,
        Func<nn.Module<Tensor, Tensor>> make, long vocab, long[] lengths)
    {
        using var model = make();
        model.to(torch.CUDA).to(dt);
        model.eval();
        long parameters = 0;
        foreach (var t in model.parameters()) parameters += t.numel();
        foreach (long L in lengths)
        {
            using var scope = torch.NewDisposeScope();
            var ids = torch.randint(0, vocab, new long[] { 1, L }, device: torch.CUDA);
            Pair(time, name, $"mix zoo {name} ({parameters / 1e6:F0}M params)", dt, 1, L, $"b1 L{L}", L, () => model.call(ids));
        }
    }

    /// <summary>
    /// Greedy decode of a zoo LM through <see cref="CausalModel"/>'s cache after a 16-token prompt: one step (forward of
    /// one token per sequence + argmax) timed with the fused scan steps and with fusion off, at batch 1 and 4. The same
    /// token is fed each step (the state's size does not depend on the tokens; the clock should not include a host
    /// round trip for the argmax). The fused row's error is its first step's logits against the full forward's.
    /// </summary>
    private static void LmDecode(Func<Func<Tensor?>, (double, double, int, double)> time, string name, ScalarType dt,
        Func<nn.Module<Tensor, Tensor>> make, long vocab, bool quick)
    {
        using var model = make();
        model.to(torch.CUDA).to(dt);
        model.eval();
        var lm = new CausalModel(model, vocab);
        foreach (long b in quick ? new long[] { 1 } : new long[] { 1, 4 })
        {
            using var scope = torch.NewDisposeScope();
            var prompt = torch.randint(0, vocab, new long[] { b, 16 }, device: torch.CUDA);
            double err;
            using (var check = lm.CreateCache(b))
            {
                var first = lm.Forward(prompt, check).narrow(1, 15, 1).argmax(-1);
                var step = lm.Forward(first, check).squeeze(1);
                MixDispatch.FusedEnabled = false;
                try { err = RelErr(step, model.call(torch.cat(new[] { prompt, first }, 1)).narrow(1, 16, 1).squeeze(1)); }
                finally { MixDispatch.FusedEnabled = true; }
            }
            // the same steps recorded as one CUDA graph (CausalModel.CudaGraphs): logits three steps in against the full forward
            double graphErr;
            long nodes, segments;
            var graphed = new CausalModel(model, vocab) { CudaGraphs = true };
            using (var check = graphed.CreateCache(b))
            {
                var seq = prompt;
                var token = graphed.Forward(prompt, check).narrow(1, 15, 1).argmax(-1);
                Tensor step = token;
                for (int i = 0; i < 3; i++)
                {
                    seq = torch.cat(new[] { seq, token }, 1);
                    step = graphed.Forward(token, check);
                    token = step.argmax(-1);
                }
                MixDispatch.FusedEnabled = false;
                try { graphErr = RelErr(step.squeeze(1), model.call(seq).narrow(1, seq.shape[1] - 1, 1).squeeze(1)); }
                finally { MixDispatch.FusedEnabled = true; }
                var report = graphed.DecodeGraphReport(check).FirstOrDefault();
                nodes = report?.Nodes ?? 0;
                segments = report?.Segments ?? 0;
                if (report is null || !report.Ready) Console.WriteLine($"{name}: no decode graph ({report?.Failure ?? "none made"})");
            }
            foreach (var (fused, graphs) in new[] { (true, true), (true, false), (false, false) })
            {
                MixDispatch.FusedEnabled = fused;
                try
                {
                    var lmRun = graphs ? graphed : lm;
                    using var cache = lmRun.CreateCache(b);
                    var token = lmRun.Forward(prompt, cache).narrow(1, 15, 1).argmax(-1);
                    var (m, mn, n, g) = time(() => lmRun.Forward(token, cache).argmax(-1));
                    Add(name + "_decode", graphs ? $"mix zoo {name}, CausalModel cache, CUDA graph a step ({nodes} nodes, {segments} segments)"
                        : fused ? $"mix zoo {name}, CausalModel cache, fused steps" : "torchsharp reference (fusion off)",
                        dt, b, 1, $"b{b} step", m, mn, n, g, b, graphs ? graphErr : fused ? err : null, null);
                }
                finally { MixDispatch.FusedEnabled = true; }
            }
        }
    }
}
