using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>One row of <c>--only mamba-kernels</c>: device µs per launch of one phase (or of a whole step, segment or token).</summary>
internal sealed record MambaKernelRow(string Dtype, long Batch, string Variant, string Phase, string Launch, double Us, double MinUs,
    double Bytes, double GBps);

/// <summary>
/// <c>--only mamba-kernels</c>: where a Mamba-130m decode token's device time goes, without a profiler. For float32 and
/// bfloat16 at batch 1, 4 and 16, one layer's fused step (<see cref="FusedMambaStep"/>'s plan, its real launches and
/// buffers, taken from a decode step of the generated model) is recorded as a CUDA graph of <see cref="Repeats"/> launches
/// of one kernel, and the graph is timed between CUDA events: µs per launch, the bytes the phase must move and GB/s. Then
/// the whole step the same way, the 24 layers' graph of one token (what <see cref="FusedMambaStack"/> replays), the
/// persistent kernel (batch &lt;= 3) per layer, and a whole greedy token (embedding, layers, head, argmax, host). Two
/// empty-kernel rows (1 block and 768 blocks of 256 threads) give the graph's cost per node, to subtract. Every repeat
/// reads the same states and writes the same spares, so the numbers are the steady state of one layer.
/// </summary>
internal static class MambaKernelBench
{
    private const long Vocab = 50280;

    /// <summary>Launches of one kernel per timed graph.</summary>
    private const int Repeats = 200;

    private static readonly List<MambaKernelRow> Rows = new();

    /// <summary>Variants measured besides the default: a label and a switch that turns it on (and off again).</summary>
    internal static readonly List<(string Label, Action<bool> Set)> Variants = new()
    {
        ("splits from occupancy", on => FusedMambaStep.SplitsFromOccupancy = on),
    };

    public static void Run(string outDir, bool quick)
    {
        Noop();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var model = new Mix.Generated.Models.Mamba130m();
            model.to(torch.CUDA);
            if (dtype != ScalarType.Float32) model.to(dtype);
            model.eval();
            foreach (long batch in quick ? new long[] { 1 } : new long[] { 1, 4, 16 })
            {
                Guard($"{ModelBench.DtypeName(dtype)} b{batch}", () => Measure(model, dtype, batch, "default"));
                foreach (var (label, set) in Variants)
                {
                    set(true);
                    try { Guard($"{ModelBench.DtypeName(dtype)} b{batch} {label}", () => Measure(model, dtype, batch, label)); }
                    finally { set(false); }
                }
            }
        }
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "mamba_kernels.json"), JsonSerializer.Serialize(Rows,
            new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
    }

    private static void Guard(string what, Action a)
    {
        try { a(); }
        catch (Exception e) { Console.Error.WriteLine($"mamba-kernels {what}: failed: {e.GetType().Name}: {e.Message}"); }
    }

    private static void Add(ScalarType dtype, long batch, string variant, string phase, string launch, (double median, double min) us, double bytes)
    {
        var row = new MambaKernelRow(ModelBench.DtypeName(dtype), batch, variant, phase, launch, us.median, us.min, bytes,
            bytes > 0 ? bytes / (us.median * 1e3) : double.NaN);
        Rows.Add(row);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"mamba-kernels {row.Dtype,-8} b{batch,-3} {variant,-28} {phase,-22} {launch,-52} {row.Us,9:F2} µs (min {row.MinUs:F2})  {(bytes > 0 ? $"{bytes / 1e6,8:F3} MB {row.GBps,7:F0} GB/s" : "")}"));
    }

    // Median and minimum device µs per unit of one launch of `graph`, which holds `units` units of work.
    private static (double, double) TimeGraph(KernelGraph graph, int units, int samples = 9)
    {
        graph.Launch();
        torch.cuda.synchronize();
        using var timer = new CudaTimer(graph.Device);
        var us = new List<double>();
        for (int s = 0; s < samples; s++)
        {
            timer.Start();
            graph.Launch();
            us.Add(timer.StopMilliseconds() * 1e3 / units);
        }
        us.Sort();
        return (us[us.Count / 2], us[0]);
    }

    private static (double, double) Graph(int device, int units, Action<KernelGraph> record)
    {
        using var graph = new KernelGraph(device);
        record(graph);
        graph.Instantiate();
        return TimeGraph(graph, units);
    }

    // What one graph node costs with nothing in it: the floor under every per-kernel row.
    private static void Noop()
    {
        var spec = new CudaKernelSpec("mix_bench_noop", "extern \"C\" __global__ void mix_bench_noop(int n, float* p) { if (n < 0) p[threadIdx.x] = 0.0f; }");
        var f = KernelRuntime.Shared.GetFunction(spec, "mix_bench_noop", 0);
        foreach (uint blocks in new uint[] { 1, 768 })
            Add(ScalarType.Float32, 0, "calibration", "empty kernel", $"grid {blocks}x1, 256 threads", Graph(0, Repeats, g =>
            {
                for (int i = 0; i < Repeats; i++)
                {
                    using var a = new KernelArguments(0);
                    a.Add(1).Add(0L);
                    g.Add(f, new Dim3(blocks), new Dim3(256), 0, a);
                }
            }), 0);
    }

    private static void Measure(Mix.Generated.Models.Mamba130m model, ScalarType dtype, long batch, string variant)
    {
        var lm = new CausalModel(model, Vocab);
        using var scope = torch.NewDisposeScope();
        using var cache = lm.CreateCache(batch);
        var prompt = torch.randint(0, Vocab, new[] { batch, 16L }, dtype: ScalarType.Int64, device: torch.CUDA);
        // one step layer by layer (plans made), then one logged: each layer's fused step with its plan, slot and tensors
        var log = new List<FusedMambaStep.StepRecord>();
        bool savedGraph = FusedMambaStack.Enabled, savedPersistent = FusedMambaStack.Persistent;
        FusedMambaStack.Enabled = false;
        FusedMambaStack.Persistent = false;
        Tensor tok;
        try
        {
            tok = lm.Forward(prompt, cache).narrow(1, 15, 1).argmax(-1);
            tok = lm.Forward(tok, cache).argmax(-1);
            FusedMambaStep.Probe = log;
            tok = lm.Forward(tok, cache).argmax(-1);
        }
        finally
        {
            FusedMambaStep.Probe = null;
            FusedMambaStack.Enabled = savedGraph;
        }
        var steps = log.Where(r => r.Residual).ToArray();
        if (steps.Length == 0)
        {
            Console.Error.WriteLine($"mamba-kernels {ModelBench.DtypeName(dtype)} b{batch}: no fused step ran ({FusedMambaStep.LastDecline})");
            return;
        }
        torch.cuda.synchronize();
        var first = steps[0];
        var plan = first.Plan;
        int device = first.Device;
        void RunStep(FusedMambaStep.StepRecord s, KernelGraph g, FusedMambaStep.Phase phases) =>
            s.Plan.Run(s.Slot, s.Input.contiguous(), s.Residual ? s.Input.contiguous() : null, s.Output, s.Slot.Get("conv_state"), s.Slot.Get("ssm_state"),
                s.Slot.Spare("conv_state"), s.Slot.Spare("ssm_state"), g, phases);

        foreach (var (phase, name) in new[]
                 {
                     (FusedMambaStep.Phase.InProj, "in_proj (+ norm)"), (FusedMambaStep.Phase.XProj, "x_proj (+ conv)"),
                     (FusedMambaStep.Phase.Scan, "scan (dt, state, gate)"), (FusedMambaStep.Phase.OutProj, "out_proj (+ residual)"),
                     (FusedMambaStep.Phase.All, "whole step (4 launches)"),
                 })
            Add(dtype, batch, variant, name, plan.Describe(phase), Graph(device, Repeats, g =>
            {
                for (int i = 0; i < Repeats; i++) RunStep(first, g, phase);
            }), plan.Bytes(phase));

        // the token's layers as FusedMambaStack records them (each layer's real weights), per layer
        long layerBytes = steps.Sum(s => s.Plan.Bytes(FusedMambaStep.Phase.All));
        Add(dtype, batch, variant, $"{steps.Length} layers' graph / layer", $"{4 * steps.Length} nodes", Graph(device, steps.Length, g =>
        {
            foreach (var s in steps) RunStep(s, g, FusedMambaStep.Phase.All);
        }), layerBytes / (double)steps.Length);

        if (variant == "default" && batch <= PersistentMambaSegment.MaxBatch)
            Guard($"{ModelBench.DtypeName(dtype)} b{batch} persistent", () => Persistent(dtype, batch, variant, steps));

        // a whole greedy token as the decode bench runs it (layer graph on): what the layers leave to everything else
        FusedMambaStack.Persistent = savedPersistent;
        Guard($"{ModelBench.DtypeName(dtype)} b{batch} token", () =>
        {
            for (int t = 0; t < 3; t++) tok = lm.Forward(tok, cache).argmax(-1);
            torch.cuda.synchronize();
            const int tokens = 32;
            using var timer = new CudaTimer(device);
            var us = new List<double>();
            var host = new List<double>();
            var sw = new Stopwatch();
            for (int s = 0; s < 5; s++)
            {
                using var inner = torch.NewDisposeScope();
                torch.cuda.synchronize();
                sw.Restart();
                timer.Start();
                var t = tok;
                for (int i = 0; i < tokens; i++) t = lm.Forward(t, cache).argmax(-1);
                us.Add(timer.StopMilliseconds() * 1e3 / tokens);
                host.Add(sw.Elapsed.TotalMilliseconds * 1e3 / tokens);
            }
            us.Sort(); host.Sort();
            Add(dtype, batch, variant, "whole token (device)", $"host clock {host[host.Count / 2]:F0} µs/token", (us[us.Count / 2], us[0]), 0);
        });
    }

    // The persistent kernel on the token's layers (per layer), and on the first layer alone.
    private static void Persistent(ScalarType dtype, long batch, string variant, FusedMambaStep.StepRecord[] steps)
    {
        var first = steps[0];
        int device = first.Device;
        // the default kernel, the one-atomic grid barrier (FusedMambaStack.PersistentFastBarrier), x_proj folded into the
        // in_proj phase (PersistentFoldXProj) and both; a 1-layer launch is 4 phases and 3 barriers (folded: 3 and 2)
        foreach (var (fast, fold) in new[] { (false, false), (true, false), (false, true), (true, true) })
        foreach (var layers in new[] { steps, new[] { first } })
        {
            string form = fast && fold ? " fb+fx" : fast ? " fb" : fold ? " fx" : "";
            string label = layers.Length == 1 ? $"persistent{form}, 1 layer" : $"persistent{form}, {layers.Length} layers / layer";
            using var segment = PersistentMambaSegment.TryCreate(layers, 2, out var why, fast, fold);
            if (segment is null)
            {
                Console.Error.WriteLine($"mamba-kernels persistent: declined: {why}");
                continue;
            }
            int launches = layers.Length == 1 ? Repeats : 20;
            void Launches(int n)
            {
                for (int i = 0; i < n; i++)
                {
                    using var inner = torch.NewDisposeScope();
                    segment.Run(first.Input.contiguous());
                }
            }
            Launches(2);
            torch.cuda.synchronize();
            using var timer = new CudaTimer(device);
            var us = new List<double>();
            for (int s = 0; s < 5; s++)
            {
                timer.Start();
                Launches(launches);
                us.Add(timer.StopMilliseconds() * 1e3 / (launches * layers.Length));
            }
            us.Sort();
            Add(dtype, batch, variant, label, $"{segment.Blocks} blocks (2/SM)", (us[us.Count / 2], us[0]),
                layers.Sum(s => s.Plan.Bytes(FusedMambaStep.Phase.All)) / (double)layers.Length);
            if (layers.Length == 1 && !fold) GridBarriers(dtype, batch, variant, device, segment.Blocks, fast);
        }
    }

    // µs per grid barrier alone (mamba_stack_barriers: 1,000 barriers a launch, no phase work) on the persistent kernel's
    // grid: the floor under each of a layer's four phases, for the barrier form the segment was built with.
    private static void GridBarriers(ScalarType dtype, long batch, string variant, int device, int blocks, bool fast)
    {
        const int Barriers = 1000;
        var kernel = KernelRuntime.Shared.GetFunction(PersistentMambaSegment.Spec(FusedKernels.DtypeCode(dtype), fast), "mamba_stack_barriers", device);
        using var bar = torch.zeros(new long[] { 8 }, ScalarType.Int32, torch.CUDA);
        void Launch()
        {
            using var a = new KernelArguments(device);
            a.Add(bar, ScalarType.Int32, "bar").Add(Barriers);
            kernel.LaunchCooperative(new Dim3((uint)blocks), new Dim3(MambaStackKernelSources.Threads), 0, a);
        }
        Launch();
        torch.cuda.synchronize();
        using var timer = new CudaTimer(device);
        var us = new List<double>();
        for (int s = 0; s < 5; s++)
        {
            timer.Start();
            Launch();
            us.Add(timer.StopMilliseconds() * 1e3 / Barriers);
        }
        us.Sort();
        Add(dtype, batch, variant, fast ? "grid barrier alone, fast" : "grid barrier alone", $"{blocks} blocks, µs a barrier", (us[us.Count / 2], us[0]), 0);
    }
}
