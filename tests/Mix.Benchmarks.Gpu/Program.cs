using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using Mix.Runtime;
using Mix.Runtime.Cuda;
using Mix.Runtime.Builtins;
using Mix.Runtime.Fused;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>One measured case.</summary>
internal sealed record Result(string Op, string Shape, string Dtype, string Impl, double MedianUs, double MinUs, int Samples,
    double Bytes, double GBps, double PctOfCopy, double? SpeedupVsReference, double? RelErrVsReference, double GpuUs = double.NaN);

/// <summary>
/// GPU benchmarks: median of CUDA-synchronised batches after warm-up, working sets above L2, GB/s over the minimum
/// bytes (each input read once, each output written once), % of a measured device-to-device copy, and the ratio to the
/// TorchSharp reference path measured in the same process.
/// Usage: Mix.Benchmarks.Gpu [--out DIR] [--quick] [--quant [--only linear|kv|probes|linear+probes|variants]] [--only kernels|scans|scans-vs-triton|gla-profile|ssd-debug|models|vision|mamba|mamba-quant|mamba-kernels|lm-quant|fusion|catalog3|all]
/// [--dtype float32|bfloat16|all] [--models NAME,NAME] [--budget SECONDS] (catalog3: which of its models, and a time limit)
/// [--gla-form first|second] (the bf16 chunked GLA kernels every GLA path takes, gla-profile's included; default first until measured)
/// </summary>
internal static partial class Program
{
    private static readonly List<Result> Results = new();
    private static double _copyGBps = double.NaN;
    private static bool _quick;
    private static bool _quantOnly;
    private static string _only = "all";

    private static int Main(string[] args)
    {
        string outDir = ".";
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
            else if (args[i] == "--quick") _quick = true;
            else if (args[i] == "--quant") _quantOnly = true;
            else if (args[i] == "--only" && i + 1 < args.Length) _only = args[++i];
            else if (args[i] == "--dtype" && i + 1 < args.Length) ModelBench.Dtypes = args[++i];
            else if (args[i] == "--models" && i + 1 < args.Length) Catalog3Bench.Only = args[++i];
            else if (args[i] == "--budget" && i + 1 < args.Length) Catalog3Bench.BudgetS = double.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--gla-form" && i + 1 < args.Length) CudaScanKernels.UseGlaSecondForm = args[++i] != "first";
        }
        KernelLog.Warning = m => Console.Error.WriteLine("warning: " + m);
        if (!TorchBackend.TryInitializeCuda(out var reason))
        {
            Console.Error.WriteLine($"CUDA unavailable: {reason}");
            return 2;
        }
        var rt = KernelRuntime.Shared;
        if (!rt.IsAvailable)
        {
            Console.Error.WriteLine($"fused kernels unavailable: {rt.UnavailableReason}");
            return 3;
        }
        var drv = rt.Driver!;
        var info = new Dictionary<string, object>
        {
            ["arch"] = rt.ArchitectureOf(0),
            ["sms"] = drv.GetAttribute(0, CudaDriver.AttributeMultiprocessorCount),
            ["l2_bytes"] = drv.GetAttribute(0, CudaDriver.AttributeL2CacheSize),
            ["driver"] = drv.DriverVersion,
            ["nvrtc"] = rt.Nvrtc!.Version,
            ["nvrtc_path"] = rt.Nvrtc!.LibraryPath,
            ["backend"] = TorchBackend.Name,
            ["kernel_cache"] = rt.Cache.Directory,
        };
        if (_only == "ssd-debug")
        {
            // no warm-up of every module: only the scan kernels compile (a cold kernel cache costs seconds per module)
            Console.WriteLine($"arch {info["arch"]}, NVRTC {info["nvrtc"]}, kernel cache {info["kernel_cache"]}");
            using (torch.no_grad()) SsdDebugBench.Run();
            return 0;
        }
        var sw = Stopwatch.StartNew();
        int ready = FusedOps.WarmUp(torch.CUDA);
        info["warmup_ms"] = sw.Elapsed.TotalMilliseconds;
        info["warmup_modules"] = ready;
        info["warmup_compiles"] = rt.CompileCount;
        info["warmup_disk_hits"] = rt.DiskCacheHits;
        Console.WriteLine($"arch {info["arch"]}, {info["sms"]} SMs, L2 {(int)info["l2_bytes"] >> 20} MiB, NVRTC {info["nvrtc"]}; " +
                          $"warm-up {ready} modules in {sw.Elapsed.TotalMilliseconds:F0} ms ({rt.CompileCount} compiled, {rt.DiskCacheHits} from disk)");
        foreach (var line in KernelResources()) Console.WriteLine(line);

        if (_quantOnly)
        {
            Directory.CreateDirectory(outDir);
            QuantBench.Quick = _quick;
            using (torch.no_grad()) QuantBench.Run(outDir, f => { var (m, mn, n, _) = Time(f); return (m, mn, n); }, f => Time(f), _only);
            return 0;
        }
        if (_only == "poolprof")
        {
            // a few pooling passes (bfloat16 [64,64,112,112], statistics given) for a kernel profiler
            using var _ = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var x = torch.randn(64, 64, 112, 112, device: torch.CUDA).to_type(ScalarType.BFloat16);
            var p = torch.randn(64, device: torch.CUDA);
            var stats = Must(FusedOps.GroupNormStatistics(x, 1e-5), "stats");
            for (int i = 0; i < 3; i++) FusedOps.PoolingSubBlock(x, p, p, 1e-5, p, stats);
            torch.cuda.synchronize();
            return 0;
        }
        if (_only == "mamba-kernels")
        {
            using (torch.no_grad()) MambaKernelBench.Run(outDir, _quick);
            return 0;
        }
        if (_only == "mamba-profile")
        {
            using (torch.no_grad()) ModelBench.ProfileMambaDecode();
            return 0;
        }
        if (_only == "profile")
        {
            using (torch.no_grad()) ModelBench.ProfileOnce();
            return 0;
        }
        if (_only == "gla-profile")
        {
            using (torch.no_grad()) ScanVsTritonBench.ProfileGla();
            return 0;
        }
        if (_only == "scans-vs-triton")
        {
            // the official Triton side of these rows: triton_scans.py (docs/benchmarks.md)
            using (torch.no_grad()) ScanVsTritonBench.Run(outDir, op => Time(op), _quick);
            return 0;
        }
        bool kernels = _only is "all" or "kernels";
        bool scans = _only is "all" or "kernels" or "scans";
        bool vision = _only is "all" or "models" or "vision";
        bool mamba = _only is "all" or "models" or "mamba" or "mamba-decode" or "mamba-quant";
        ModelBench.DecodeOnly = _only is "mamba-decode" or "mamba-quant";
        ModelBench.QuantDecodeOnly = _only == "mamba-quant";
        bool fusion = _only is "fusion";
        bool catalog3 = _only is "catalog3";
        bool lmQuant = _only is "lm-quant";
        using (torch.no_grad())
        {
            if (lmQuant) Guard(() => LmQuantBench.Run(_quick));
            if (fusion) Guard(() => FusionBench.Run(_quick));
            if (catalog3) Guard(() => Catalog3Bench.Run(_quick));
            Guard(() => Copy());
            if (vision) Guard(() => ModelBench.Vision(_quick));
            if (mamba) Guard(() => ModelBench.Mamba(_quick));
        }
        if (kernels)
        using (torch.no_grad())
        {
            Guard(() => Pooling(ScalarType.Float32, 32, 64, 112, 112));
            Guard(() => Pooling(ScalarType.BFloat16, 64, 64, 112, 112));
            Guard(() => Pooling(ScalarType.BFloat16, 32, 64, 56, 56));
            Guard(() => GroupNorm(ScalarType.BFloat16, 64, 64, 112, 112));
            Guard(() => GroupNorm(ScalarType.BFloat16, 32, 256, 56, 56));
            Guard(() => ResidualEpilogue(ScalarType.BFloat16, 64, 64, 112, 112));
            Guard(() => LayerNorm2d(ScalarType.BFloat16, 32, 64, 56, 56));
            Guard(() => LayerNorm2d(ScalarType.BFloat16, 32, 320, 14, 14));
            Guard(() => HostOverhead());
            Guard(() => SubBlocks(ScalarType.BFloat16, 32));
            Guard(() => SubBlocks(ScalarType.Float32, 32));
            Guard(() => Epilogue(ScalarType.BFloat16, FusedActivation.Gelu));
            Guard(() => Epilogue(ScalarType.Float32, FusedActivation.Gelu));
            Guard(() => Epilogue(ScalarType.BFloat16, FusedActivation.StarReLU));
            Guard(() => Epilogue(ScalarType.BFloat16, FusedActivation.SquaredReLU));
            Guard(() => LayerScale(ScalarType.BFloat16));
            Guard(() => Spectral());
            Guard(() => GlobalFilterEndToEnd());
            Guard(() => Scan(ScalarType.Float32, 1, 1536, 16, 2048, withPerStepReference: true));
            Guard(() => Scan(ScalarType.BFloat16, 8, 1536, 16, 2048, withPerStepReference: false));
            Guard(() => Step(ScalarType.Float32, 16, 1536, 16));
        }
        if (scans)
        using (torch.no_grad())
            ScanPrimitives();

        Directory.CreateDirectory(outDir);
        if (vision || mamba || fusion || catalog3 || lmQuant)
        {
            var mjson = JsonSerializer.Serialize(new { device = info, gpu = GpuName(), results = ModelBench.Results, parts = ModelBench.Parts, notes = ModelBench.Notes },
                new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
            File.WriteAllText(Path.Combine(outDir, catalog3 ? "catalog3_torchsharp.json" : lmQuant ? "lm_quant_torchsharp.json" : "models_torchsharp.json"), mjson);
            Console.WriteLine(ModelBench.Markdown());
        }
        if (!kernels && !scans) return 0;
        var json = JsonSerializer.Serialize(new { device = info, copy_gbps = _copyGBps, results = Results },
            new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
        File.WriteAllText(Path.Combine(outDir, "benchmarks_torchsharp.json"), json);
        var md = Markdown();
        File.WriteAllText(Path.Combine(outDir, "benchmarks_torchsharp.md"), md);
        Console.WriteLine(md);
        return 0;
    }

    /// <summary>Registers and local (spill) bytes per thread of the fused kernels, as compiled for this device.</summary>
    private static IEnumerable<string> KernelResources()
    {
        foreach (var dt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            foreach (var (kernel, regs, local) in FusedOps.KernelResources(torch.CUDA, dt))
                yield return $"  kernel {kernel,-14} {dt,-9} {regs,3} registers, {local} local bytes per thread";
    }

    private static string GpuName()
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var s = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return s;
        }
        catch (Exception) { return "unknown"; }
    }

    private static void Guard(Action a)
    {
        try { a(); }
        catch (Exception e) { Console.Error.WriteLine($"case failed: {e.GetType().Name}: {e.Message}"); }
    }

    // ---- timing ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Host-clock median per call (batches of calls between synchronizations, so it includes the host's issue time) and
    /// the device time per call of the same batches (CUDA events on the null stream: the kernels alone).
    /// </summary>
    private static (double medianUs, double minUs, int samples, double gpuUs) Time(Func<Tensor?> op)
    {
        void Once()
        {
            using var scope = torch.NewDisposeScope();
            op();
        }
        for (int i = 0; i < 3; i++) Once();
        torch.cuda.synchronize();
        var sw = Stopwatch.StartNew();
        Once();
        torch.cuda.synchronize();
        double est = Math.Max(sw.Elapsed.TotalSeconds, 1e-6);
        int inner = (int)Math.Clamp(0.002 / est, 1, 50);
        int reps = (int)Math.Clamp((_quick ? 0.5 : 2.0) / (est * inner), 5, 40);
        var samples = new List<double>(reps);
        var gpu = new List<double>(reps);
        using var timer = new CudaTimer();
        for (int r = 0; r < reps; r++)
        {
            torch.cuda.synchronize();
            sw.Restart();
            timer.Start();
            for (int k = 0; k < inner; k++) Once();
            gpu.Add(timer.StopMilliseconds() * 1e3 / inner);
            torch.cuda.synchronize();
            samples.Add(sw.Elapsed.TotalSeconds * 1e6 / inner);
        }
        samples.Sort();
        gpu.Sort();
        return (samples[samples.Count / 2], samples[0], samples.Count, gpu[gpu.Count / 2]);
    }

    private static void Record(string op, string shape, ScalarType dt, double bytes, Func<Tensor?> fused, Func<Tensor?> reference,
        string refName = "torchsharp", double? relErr = null)
    {
        var (fm, fmin, fs, fg) = Time(fused);
        var (rm, rmin, rs, rg) = Time(reference);
        string d = dt.ToString();
        // GB/s and % copy from the device time: what the kernels achieve; the host medians show the issue overhead.
        Results.Add(new Result(op, shape, d, "fused", fm, fmin, fs, bytes, bytes / fg / 1e3, 100 * bytes / fg / 1e3 / _copyGBps, rg / fg, relErr, fg));
        Results.Add(new Result(op, shape, d, refName, rm, rmin, rs, bytes, bytes / rg / 1e3, 100 * bytes / rg / 1e3 / _copyGBps, null, null, rg));
        Console.WriteLine($"{op,-28} {shape,-26} {d,-9} fused {fg,9:F1} us GPU ({fm,8:F1} host; {bytes / fg / 1e3,7:F0} GB/s, {100 * bytes / fg / 1e3 / _copyGBps,5:F1}% copy)  ref {rg,10:F1} us GPU ({rm:F1} host)  x{rg / fg:F2}");
    }

    private static double Err(Tensor? a, Tensor b)
    {
        if (a is null) return double.NaN;
        using var scope = torch.NewDisposeScope();
        var x = a.to_type(ScalarType.Float64);
        var y = b.to_type(ScalarType.Float64);
        return (x - y).norm().item<double>() / Math.Max(y.norm().item<double>(), 1e-300);
    }

    private static Tensor Must(Tensor? t, string what) => t ?? throw new InvalidOperationException($"{what}: fused path returned null");

    // ---- cases -----------------------------------------------------------------------------------------------

    private static void Copy()
    {
        long n = 128L << 20; // 512 MiB of float32
        using var x = torch.randn(n, device: torch.CUDA);
        using var y = torch.empty(n, device: torch.CUDA);
        var (m, mn, s, g) = Time(() => { y.copy_(x); return null; });
        double bytes = 2.0 * n * 4;
        _copyGBps = bytes / g / 1e3;
        Results.Add(new Result("d2d copy (reference ceiling)", $"[{n}]", "Float32", "copy_", m, mn, s, bytes, _copyGBps, 100, null, null, g));
        Console.WriteLine($"device-to-device copy: {_copyGBps:F0} GB/s (read + write)");
    }

    private static void Pooling(ScalarType dt, long B, long C, long H, long W)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(B, C, H, W, device: torch.CUDA).to_type(dt);
        var gw = torch.randn(C, device: torch.CUDA);
        var gb = torch.randn(C, device: torch.CUDA);
        var ls = torch.randn(C, device: torch.CUDA);
        Tensor Ref()
        {
            var n = torch.nn.functional.group_norm(x, 1, gw.to_type(dt), gb.to_type(dt), 1e-5);
            var p = torch.nn.functional.avg_pool2d(n, 3, 1, 1, count_include_pad: false);
            return x + ls.to_type(dt).view(1, C, 1, 1) * (p - n);
        }
        double err = Err(FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls), Ref());
        double bytes = 2.0 * x.numel() * x.ElementSize;
        Record("pooling sub-block (GN1+pool)", $"[{B},{C},{H},{W}]", dt, bytes,
            () => Must(FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls), "pooling"), Ref, relErr: err);
        // The pooling pass alone, statistics given (one read and one write), for several tile sizes.
        var stats = Must(FusedOps.GroupNormStatistics(x, 1e-5), "stats");
        int tile = FusedOps.PoolingTileElements;
        try
        {
            foreach (int t in new[] { 2048, 4096, 8192 })
            {
                FusedOps.PoolingTileElements = t;
                Record($"pooling pass only (stats given), tile {t}", $"[{B},{C},{H},{W}]", dt, bytes,
                    () => Must(FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls, stats), "pooling"), Ref,
                    relErr: Err(FusedOps.PoolingSubBlock(x, gw, gb, 1e-5, ls, stats), Ref()));
            }
        }
        finally { FusedOps.PoolingTileElements = tile; }
    }

    private static void GroupNorm(ScalarType dt, long B, long C, long H, long W)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(B, C, H, W, device: torch.CUDA).to_type(dt);
        var w = torch.randn(C, device: torch.CUDA).to_type(dt);
        var b = torch.randn(C, device: torch.CUDA).to_type(dt);
        Tensor Ref() => torch.nn.functional.group_norm(x, 1, w, b, 1e-5);
        double bytes = 2.0 * x.numel() * x.ElementSize;
        Record("GroupNorm(1)", $"[{B},{C},{H},{W}]", dt, bytes, () => Must(FusedOps.GroupNorm1(x, w, b, 1e-5), "gn"), Ref,
            relErr: Err(FusedOps.GroupNorm1(x, w, b, 1e-5), Ref()));
    }

    private static void LayerNorm2d(ScalarType dt, long B, long C, long H, long W)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(B, H, W, C, device: torch.CUDA).to_type(dt).permute(0, 3, 1, 2);
        var w = torch.randn(C, device: torch.CUDA).to_type(dt);
        Tensor Ref() => torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), new[] { C }, w, null, 1e-6).permute(0, 3, 1, 2);
        double bytes = 2.0 * x.numel() * x.ElementSize;
        Record("LayerNorm2d (channels-last)", $"[{B},{C},{H},{W}]", dt, bytes, () => Must(FusedOps.LayerNorm(x, w, null, 1e-6, 1), "ln"), Ref,
            relErr: Err(FusedOps.LayerNorm(x, w, null, 1e-6, 1), Ref()));
    }

    /// <summary>
    /// Host cost of one call on a tiny tensor (the kernels take a few µs): the fused epilogue (one launch) against the
    /// four TorchSharp operations it replaces. At batch 1 whole models are limited by exactly this.
    /// </summary>
    private static void HostOverhead()
    {
        using var scope = torch.NewDisposeScope();
        var dt = ScalarType.BFloat16;
        var r = torch.randn(1, 64, 8, 8, device: torch.CUDA).to_type(dt);
        var x = torch.randn(1, 64, 8, 8, device: torch.CUDA).to_type(dt);
        var ls = torch.randn(64, device: torch.CUDA).to_type(dt);
        var rs = torch.randn(64, device: torch.CUDA).to_type(dt);
        var b = torch.randn(64, device: torch.CUDA).to_type(dt);
        Tensor Ref() => rs.view(1, 64, 1, 1) * r + ls.view(1, 64, 1, 1) * (x + b.view(1, 64, 1, 1));
        Record("host cost: rs*res + ls*(x+bias)", "[1,64,8,8]", dt, 3.0 * x.numel() * 2,
            () => Must(FusedOps.ScaleResidual(r, x, ls, rs, b, 1), "epilogue"), Ref, relErr: Err(FusedOps.ScaleResidual(r, x, ls, rs, b, 1), Ref()));
    }

    private static void ResidualEpilogue(ScalarType dt, long B, long C, long H, long W)
    {
        using var scope = torch.NewDisposeScope();
        var r = torch.randn(B, C, H, W, device: torch.CUDA).to_type(dt);
        var x = torch.randn(B, C, H, W, device: torch.CUDA).to_type(dt);
        var ls = torch.randn(C, device: torch.CUDA).to_type(dt);
        var rs = torch.randn(C, device: torch.CUDA).to_type(dt);
        var bias = torch.randn(C, device: torch.CUDA).to_type(dt);
        Tensor Ref() => rs.view(1, C, 1, 1) * r + ls.view(1, C, 1, 1) * (x + bias.view(1, C, 1, 1));
        double bytes = 3.0 * x.numel() * x.ElementSize;
        Record("rs*res + ls*(x+bias), NCHW", $"[{B},{C},{H},{W}]", dt, bytes,
            () => Must(FusedOps.ScaleResidual(r, x, ls, rs, bias, 1), "epilogue"), Ref,
            relErr: Err(FusedOps.ScaleResidual(r, x, ls, rs, bias, 1), Ref()));
    }

    /// <summary>
    /// Whole residual sub-blocks at stage-0 shape (batch <paramref name="B"/>, 64 channels, 56×56) through
    /// <see cref="MixDispatch.Residual"/>, fused vs the reference modules: PoolFormer's MLP (GroupNorm1, 1×1 conv 64→256,
    /// GELU, 1×1 conv, layer scale) and ConvFormer's SepConv (LayerNorm2d, 1×1 conv, StarReLU, 7×7 depthwise, 1×1 conv,
    /// channels-last as in the model). GB/s counts the fused pipeline's minimum traffic (24 and 23 tensors of the
    /// input's size).
    /// </summary>
    private static void SubBlocks(ScalarType dt, long B)
    {
        using var scope = torch.NewDisposeScope();
        const int C = 64;
        var before = MixDispatch.FusedEnabled;
        try
        {
            var norm = new GroupNorm1(C).to(torch.CUDA).to(dt);
            var mlp = new Mlp(C, 4 * C, actLayer: () => nn.GELU(), bias: true, useConv: true).to(torch.CUDA).to(dt);
            var ls = new Scale(C, 0.5).to(torch.CUDA).to(dt);
            mlp.eval();
            var x = torch.randn(B, C, 56, 56, device: torch.CUDA).to_type(dt);
            Tensor Run(bool fused) { MixDispatch.FusedEnabled = fused; return MixDispatch.Residual(x, norm, mlp, ls); }
            double unit = x.numel() * x.ElementSize;
            Record("PoolFormer MLP sub-block", $"[{B},{C},56,56]", dt, 24 * unit, () => Run(true), () => Run(false), "reference modules",
                Err(Run(true), Run(false)));

            var ln = new LayerNorm2dNoBias(C).to(torch.CUDA).to(dt);
            var sep = new SepConv(C).to(torch.CUDA).to(dt);
            sep.eval();
            var xc = torch.randn(B, 56, 56, C, device: torch.CUDA).to_type(dt).permute(0, 3, 1, 2);
            Tensor RunSep(bool fused) { MixDispatch.FusedEnabled = fused; return MixDispatch.ResidualMixer(xc, ln, sep); }
            Record("ConvFormer SepConv sub-block", $"[{B},{C},56,56] NHWC", dt, 23 * unit, () => RunSep(true), () => RunSep(false),
                "reference modules", Err(RunSep(true), RunSep(false)));
        }
        finally { MixDispatch.FusedEnabled = before; }
    }

    private static void Epilogue(ScalarType dt, FusedActivation act)
    {
        using var scope = torch.NewDisposeScope();
        long rows = 16384, C = 3072;
        var x = torch.randn(rows, C, device: torch.CUDA).to_type(dt);
        var bias = torch.randn(C, device: torch.CUDA);
        var bt = bias.to_type(dt);
        var s = torch.tensor(new float[] { 0.8f }, device: torch.CUDA);
        var b = torch.tensor(new float[] { -0.1f }, device: torch.CUDA);
        Tensor Ref()
        {
            var pre = x + bt;
            return act switch
            {
                FusedActivation.Gelu => torch.nn.functional.gelu(pre),
                FusedActivation.StarReLU => s.to_type(dt) * torch.nn.functional.relu(pre).square() + b.to_type(dt),
                FusedActivation.SquaredReLU => torch.nn.functional.relu(pre).square(),
                _ => pre,
            };
        }
        double err = Err(FusedOps.BiasActivation(x, bias, act, s, b), Ref());
        double bytes = 2.0 * x.numel() * x.ElementSize;
        Record($"bias + {act}", $"[{rows},{C}]", dt, bytes, () => Must(FusedOps.BiasActivation(x, bias, act, s, b), "epilogue"), Ref, relErr: err);
    }

    private static void LayerScale(ScalarType dt)
    {
        using var scope = torch.NewDisposeScope();
        long rows = 16384, C = 3072;
        var x = torch.randn(rows, C, device: torch.CUDA).to_type(dt);
        var r = torch.randn(rows, C, device: torch.CUDA).to_type(dt);
        var ls = torch.randn(C, device: torch.CUDA);
        var lst = ls.to_type(dt);
        Tensor Ref() => r + lst * x;
        double err = Err(FusedOps.LayerScaleResidual(r, x, ls), Ref());
        double bytes = 3.0 * x.numel() * x.ElementSize;
        Record("layer-scale + residual", $"[{rows},{C}]", dt, bytes, () => Must(FusedOps.LayerScaleResidual(r, x, ls), "ls"), Ref, relErr: err);
    }

    private static void Spectral()
    {
        using var scope = torch.NewDisposeScope();
        long B = 64, H = 56, Wf = 29, C = 384;
        var spec = torch.randn(new[] { B, H, Wf, C }, dtype: ScalarType.ComplexFloat32, device: torch.CUDA);
        var w = torch.randn(H, Wf, C, 2, device: torch.CUDA) * 0.02;
        var wc = torch.view_as_complex(w);
        Tensor Ref() => spec * wc;
        double err = Err(torch.view_as_real(Must(FusedOps.SpectralMultiply(spec, w), "spectral")), torch.view_as_real(Ref()));
        double bytes = 2.0 * spec.numel() * 8 + w.numel() * 4;
        Record("GFNet spectral multiply", $"[{B},{H},{Wf},{C}] c64", ScalarType.ComplexFloat32, bytes,
            () => Must(FusedOps.SpectralMultiply(spec, w), "spectral"), Ref, relErr: err);
    }

    private static void GlobalFilterEndToEnd()
    {
        using var scope = torch.NewDisposeScope();
        long B = 64, H = 56, W = 56, C = 384;
        var module = new GlobalFilter(C, H, W / 2 + 1).to(torch.CUDA);
        var cw = module.parameters().First();
        var x = torch.randn(B, H, W, C, device: torch.CUDA);
        double err = Err(FusedOps.GlobalFilter(x, cw), module.forward(x));
        double bytes = 2.0 * x.numel() * 4;
        Record("GFNet filter (rfft2+mul+irfft2)", $"[{B},{H},{W},{C}]", ScalarType.Float32, bytes,
            () => Must(FusedOps.GlobalFilter(x, cw), "gfnet"), () => module.forward(x), "GlobalFilter module", err);
    }

    private static void Scan(ScalarType dt, long batch, long dim, long n, long L, bool withPerStepReference)
    {
        using var scope = torch.NewDisposeScope();
        var u = torch.randn(batch, dim, L, device: torch.CUDA).to_type(dt);
        var delta = torch.randn(batch, dim, L, device: torch.CUDA).to_type(dt);
        var z = torch.randn(batch, dim, L, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(dim, n, device: torch.CUDA) - 0.1;
        var Bm = torch.randn(batch, n, L, device: torch.CUDA).to_type(dt);
        var Cm = torch.randn(batch, n, L, device: torch.CUDA).to_type(dt);
        var D = torch.randn(dim, device: torch.CUDA);
        var bias = torch.randn(dim, device: torch.CUDA) * 0.1;
        var k = new CudaSelectiveScanKernel();
        Tensor Fused() => k.TryScan(u, delta, A, Bm, Cm, D, z, bias, true, null)?.y ?? throw new InvalidOperationException("scan: fused path returned null");
        double elem = (double)Tensors.ElementSize(dt);
        double bytes = elem * (4.0 * batch * dim * L + 2.0 * batch * n * L) + 4.0 * batch * dim * n;
        string shape = $"b{batch} d{dim} n{n} L{L}";
        if (withPerStepReference)
        {
            Tensor Seq() => SelectiveScan.SequentialScan(u, delta, A, Bm, Cm, D, z, bias, true, null).y;
            double err = Err(Fused(), Seq());
            Record("selective scan fwd", shape, dt, bytes, Fused, Seq, "per-step reference", err);
            Tensor Chunked() => SelectiveScan.ChunkedScan(u, delta, A, Bm, Cm, D, z, bias, true, null).y;
            var (cm, cmin, cs, cg) = Time(Chunked);
            var fusedGpu = Results[^2].GpuUs;
            Results.Add(new Result("selective scan fwd", shape, dt.ToString(), "chunked reference (T=64)", cm, cmin, cs, bytes,
                bytes / cg / 1e3, 100 * bytes / cg / 1e3 / _copyGBps, null, null, cg));
            Console.WriteLine($"  chunked reference {cg:F1} us GPU (fused is x{cg / fusedGpu:F1} faster)");
        }
        else
        {
            var (fm, fmin, fs, fg) = Time(Fused);
            Results.Add(new Result("selective scan fwd", shape, dt.ToString(), "fused", fm, fmin, fs, bytes, bytes / fg / 1e3,
                100 * bytes / fg / 1e3 / _copyGBps, null, null, fg));
            Console.WriteLine($"selective scan fwd {shape} {dt}: fused {fg:F1} us GPU ({bytes / fg / 1e3:F0} GB/s)");
        }
    }

    private static void Step(ScalarType dt, long batch, long dim, long n)
    {
        using var scope = torch.NewDisposeScope();
        var state = torch.randn(batch, dim, n, device: torch.CUDA);
        var u = torch.randn(batch, dim, device: torch.CUDA).to_type(dt);
        var delta = torch.randn(batch, dim, device: torch.CUDA).to_type(dt);
        var z = torch.randn(batch, dim, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(dim, n, device: torch.CUDA);
        var Bm = torch.randn(batch, n, device: torch.CUDA).to_type(dt);
        var Cm = torch.randn(batch, n, device: torch.CUDA).to_type(dt);
        var D = torch.randn(dim, device: torch.CUDA);
        var k = new CudaSelectiveScanKernel();
        var previous = SelectiveScan.Kernel;
        SelectiveScan.Kernel = null;
        Tensor Ref() => SelectiveScan.Step(state, u, delta, A, Bm, Cm, D, z, null, true).y;
        Tensor Fused() => k.TryStep(state, u, delta, A, Bm, Cm, D, z, null, true)?.y ?? throw new InvalidOperationException("step: null");
        double err = Err(Fused(), Ref());
        double bytes = 2.0 * batch * dim * n * 4 + dim * n * 4;
        Record("selective scan decode step", $"b{batch} d{dim} n{n}", dt, bytes, Fused, Ref, relErr: err);
        SelectiveScan.Kernel = previous;
    }

    private static string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Device-to-device copy: **{_copyGBps:F0} GB/s** (bytes read + written, device time); % copy = achieved GB/s over that.");
        sb.AppendLine();
        sb.AppendLine("| op | shape | dtype | impl | GPU µs | host µs | GB/s | % copy | speed-up vs ref (GPU) | rel. err vs ref |");
        sb.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in Results)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Op} | {r.Shape} | {r.Dtype} | {r.Impl} | {r.GpuUs:F1} | {r.MedianUs:F1} | {r.GBps:F0} | {r.PctOfCopy:F1} | {(r.SpeedupVsReference is { } s ? s.ToString("F2", CultureInfo.InvariantCulture) + "×" : "")} | {(r.RelErrVsReference is { } e ? e.ToString("E1", CultureInfo.InvariantCulture) : "")} |"));
        return sb.ToString();
    }
}

internal static class Tensors
{
    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        _ => 4,
    };
}
