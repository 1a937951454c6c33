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
using Mix.Runtime.Fused;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>One measured case.</summary>
internal sealed record Result(string Op, string Shape, string Dtype, string Impl, double MedianUs, double MinUs, int Samples,
    double Bytes, double GBps, double PctOfCopy, double? SpeedupVsReference, double? RelErrVsReference);

/// <summary>
/// GPU benchmarks: median of CUDA-synchronised batches after warm-up, working sets above L2, GB/s over the minimum
/// bytes (each input read once, each output written once), % of a measured device-to-device copy, and the ratio to the
/// TorchSharp reference path measured in the same process.
/// Usage: Mix.Benchmarks.Gpu [--out DIR] [--quick] [--quant] [--only kernels|models|vision|mamba|all]
/// </summary>
internal static class Program
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
        var sw = Stopwatch.StartNew();
        int ready = FusedOps.WarmUp(torch.CUDA);
        info["warmup_ms"] = sw.Elapsed.TotalMilliseconds;
        info["warmup_modules"] = ready;
        info["warmup_compiles"] = rt.CompileCount;
        info["warmup_disk_hits"] = rt.DiskCacheHits;
        Console.WriteLine($"arch {info["arch"]}, {info["sms"]} SMs, L2 {(int)info["l2_bytes"] >> 20} MiB, NVRTC {info["nvrtc"]}; " +
                          $"warm-up {ready} modules in {sw.Elapsed.TotalMilliseconds:F0} ms ({rt.CompileCount} compiled, {rt.DiskCacheHits} from disk)");

        if (_quantOnly)
        {
            Directory.CreateDirectory(outDir);
            using (torch.no_grad()) QuantBench.Run(outDir, f => Time(f));
            return 0;
        }
        bool kernels = _only is "all" or "kernels";
        bool vision = _only is "all" or "models" or "vision";
        bool mamba = _only is "all" or "models" or "mamba";
        using (torch.no_grad())
        {
            Guard(() => Copy());
            if (vision) Guard(() => ModelBench.Vision(_quick));
            if (mamba) Guard(() => ModelBench.Mamba(_quick));
        }
        if (kernels)
        using (torch.no_grad())
        {
            Guard(() => Pooling(ScalarType.Float32, 32, 64, 112, 112));
            Guard(() => Pooling(ScalarType.BFloat16, 64, 64, 112, 112));
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

        Directory.CreateDirectory(outDir);
        if (vision || mamba)
        {
            var mjson = JsonSerializer.Serialize(new { device = info, gpu = GpuName(), results = ModelBench.Results, parts = ModelBench.Parts, notes = ModelBench.Notes },
                new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
            File.WriteAllText(Path.Combine(outDir, "models_torchsharp.json"), mjson);
            Console.WriteLine(ModelBench.Markdown());
        }
        if (!kernels) return 0;
        var json = JsonSerializer.Serialize(new { device = info, copy_gbps = _copyGBps, results = Results },
            new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
        File.WriteAllText(Path.Combine(outDir, "benchmarks_torchsharp.json"), json);
        var md = Markdown();
        File.WriteAllText(Path.Combine(outDir, "benchmarks_torchsharp.md"), md);
        Console.WriteLine(md);
        return 0;
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

    private static (double medianUs, double minUs, int samples) Time(Func<Tensor?> op)
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
        for (int r = 0; r < reps; r++)
        {
            torch.cuda.synchronize();
            sw.Restart();
            for (int k = 0; k < inner; k++) Once();
            torch.cuda.synchronize();
            samples.Add(sw.Elapsed.TotalSeconds * 1e6 / inner);
        }
        samples.Sort();
        return (samples[samples.Count / 2], samples[0], samples.Count);
    }

    private static void Record(string op, string shape, ScalarType dt, double bytes, Func<Tensor?> fused, Func<Tensor?> reference,
        string refName = "torchsharp", double? relErr = null)
    {
        var (fm, fmin, fs) = Time(fused);
        var (rm, rmin, rs) = Time(reference);
        string d = dt.ToString();
        Results.Add(new Result(op, shape, d, "fused", fm, fmin, fs, bytes, bytes / fm / 1e3, 100 * bytes / fm / 1e3 / _copyGBps, rm / fm, relErr));
        Results.Add(new Result(op, shape, d, refName, rm, rmin, rs, bytes, bytes / rm / 1e3, 100 * bytes / rm / 1e3 / _copyGBps, null, null));
        Console.WriteLine($"{op,-28} {shape,-26} {d,-9} fused {fm,10:F1} us ({bytes / fm / 1e3,7:F0} GB/s, {100 * bytes / fm / 1e3 / _copyGBps,5:F1}% copy)  ref {rm,11:F1} us  x{rm / fm:F2}");
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
        var (m, mn, s) = Time(() => { y.copy_(x); return null; });
        double bytes = 2.0 * n * 4;
        _copyGBps = bytes / m / 1e3;
        Results.Add(new Result("d2d copy (reference ceiling)", $"[{n}]", "Float32", "copy_", m, mn, s, bytes, _copyGBps, 100, null, null));
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
            var (cm, cmin, cs) = Time(Chunked);
            var fusedMedian = Results[^2].MedianUs;
            Results.Add(new Result("selective scan fwd", shape, dt.ToString(), "chunked reference (T=64)", cm, cmin, cs, bytes,
                bytes / cm / 1e3, 100 * bytes / cm / 1e3 / _copyGBps, null, null));
            Console.WriteLine($"  chunked reference {cm:F1} us (fused is x{cm / fusedMedian:F1} faster)");
        }
        else
        {
            var (fm, fmin, fs) = Time(Fused);
            Results.Add(new Result("selective scan fwd", shape, dt.ToString(), "fused", fm, fmin, fs, bytes, bytes / fm / 1e3,
                100 * bytes / fm / 1e3 / _copyGBps, null, null));
            Console.WriteLine($"selective scan fwd {shape} {dt}: fused {fm:F1} us ({bytes / fm / 1e3:F0} GB/s)");
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
        sb.AppendLine($"Device-to-device copy: **{_copyGBps:F0} GB/s** (bytes read + written); % copy = achieved GB/s over that.");
        sb.AppendLine();
        sb.AppendLine("| op | shape | dtype | impl | median µs | GB/s | % copy | speed-up vs ref | rel. err vs ref |");
        sb.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in Results)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Op} | {r.Shape} | {r.Dtype} | {r.Impl} | {r.MedianUs:F1} | {r.GBps:F0} | {r.PctOfCopy:F1} | {(r.SpeedupVsReference is { } s ? s.ToString("F2", CultureInfo.InvariantCulture) + "×" : "")} | {(r.RelErrVsReference is { } e ? e.ToString("E1", CultureInfo.InvariantCulture) : "")} |"));
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
