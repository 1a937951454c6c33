using System;
using System.Globalization;
using System.Linq;
using Mix.Runtime.Builtins;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// <c>--only fusion</c>: the fusion planner's regions against the hand-written fused paths and the reference, in one
/// process. PoolFormer-S12, ConvFormer-S18 and CAFormer-S18 (224×224, batch 1/32/128) and the test-only gated mixer of
/// tests/Mix.Generator.Tests/Models/fusion.mix (4 blocks of chan_rmsnorm + gated_dwconv, 128 channels, 56×56,
/// batch 1/32), float32 and bfloat16. Four settings per case: everything fused (the planner choosing between its
/// regions and the hand kernels it declares as primitives, <see cref="SubBlockPlanner.PreferHand"/>); planner regions
/// only (<see cref="SubBlockPlanner.HandKernels"/> off: regions, library calls and reference steps, no hand kernel);
/// hand-written kernels only (<see cref="FusedRegion.Enabled"/> off: the same plans with the hand kernels and the
/// reference where a step has none, the generated forwards' regions off too); the reference (fusion off). Each row
/// reports the host-clock median (synchronised), the device time (CUDA events), the region launches of one forward,
/// and what one forward dispatches (<see cref="ModelBench.Cost"/>): launches of our kernels, TorchSharp ops (tensors
/// created, a proxy for libtorch's launches) and the host µs to enqueue it without synchronising; the relative error
/// is against the reference. Then the MetaFormers' channel LayerNorm alone (<see cref="Norms"/>): hand kernel against
/// the planner's region. pytorch_models.py --only fusion times timm's models (torch.compile,
/// cudnn.benchmark) and the gated mixer in plain PyTorch.
/// </summary>
internal static class FusionBench
{
    public static void Run(bool quick)
    {
        foreach (var dt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            if (ModelBench.Dtypes != "all" && ModelBench.Dtypes != ModelBench.DtypeName(dt)) continue;
            Case("PoolFormer-S12", () => new Mix.Generated.Models.PoolformerS12(), b => torch.randn(b, 3, 224, 224), new long[] { 1, 32, 128 }, dt, quick);
            Case("ConvFormer-S18", () => new Mix.Generated.Models.ConvformerS18(), b => torch.randn(b, 3, 224, 224), new long[] { 1, 32, 128 }, dt, quick);
            Case("CAFormer-S18", () => new Mix.Generated.Models.CaformerS18(), b => torch.randn(b, 3, 224, 224), new long[] { 1, 32, 128 }, dt, quick);
            Case("gated mixer (test .mix)", () => new Mix.Generated.Models.FusionGated(new Mix.Generated.Models.FusionGated.Options { Dim = 128, Depth = 4 }),
                b => torch.randn(b, 128, 56, 56), new long[] { 1, 32 }, dt, quick);
            Norms(dt, quick);
            Epilogues(dt, quick);
        }
        PrintRatios();
    }

    // "Regions against the hand kernels" (docs/gpu.md): per case, each region launch's device time over the hand
    // kernel's, printed together at the end and kept in the notes (results JSON), so one run decides SubBlockPlanner.PreferHand.
    private static readonly System.Collections.Generic.List<string> s_ratios = new();

    private static void Ratio(string name, ScalarType dt, long b, (double m, double mn, int s, double g) hand,
        params (string What, (double m, double mn, int s, double g) T)[] regions)
    {
        var parts = string.Join(" | ", regions.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.What} {r.T.g / hand.g:F2}x")));
        s_ratios.Add(string.Create(CultureInfo.InvariantCulture, $"{name,-40} {ModelBench.DtypeName(dt),-9} b{b,-4} hand GPU {hand.g:F4} ms | {parts}"));
    }

    private static void PrintRatios()
    {
        if (s_ratios.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine("region / hand kernel, device time (CUDA events around one call; < 1: the region is faster):");
        foreach (var line in s_ratios)
        {
            Console.WriteLine("  " + line);
            ModelBench.Notes.Add("region/hand " + line);
        }
        s_ratios.Clear();
    }

    /// <summary>
    /// <paramref name="op"/> timed with the region launch switches of this branch on (docs/gpu.md, "Regions against the
    /// hand kernels"): <see cref="FusedRegionKernel.CachePlans"/> (host) and, for <paramref name="kernel"/> set,
    /// <see cref="FusedRegionKernel.PointwiseUnroll"/> 2 (pointwise) or <see cref="FusedRegionKernel.RowVector16"/> (rows),
    /// with <paramref name="registers"/> <see cref="FusedRegionKernel.RowInRegisters"/> too.
    /// </summary>
    private static (double m, double mn, int s, double g) Tuned(Action op, double target, bool kernel, bool row, bool registers = false)
    {
        // restores what was set before (a run may have turned a switch on for every row), not the literal defaults
        var saved = (FusedRegionKernel.CachePlans, FusedRegionKernel.RowVector16, FusedRegionKernel.RowInRegisters, FusedRegionKernel.PointwiseUnroll);
        FusedRegionKernel.CachePlans = true;
        if (kernel && row) FusedRegionKernel.RowVector16 = true;
        if (kernel && row && registers) FusedRegionKernel.RowInRegisters = true;
        if (kernel && !row) FusedRegionKernel.PointwiseUnroll = 2;
        try { return ModelBench.TimeMs(op, target); }
        finally
        {
            (FusedRegionKernel.CachePlans, FusedRegionKernel.RowVector16, FusedRegionKernel.RowInRegisters, FusedRegionKernel.PointwiseUnroll) = saved;
        }
    }

    /// <summary>
    /// The sub-block epilogues alone at ConvFormer-S18's in-model shapes, NCHW and channels-last memory: the planner's
    /// region (<see cref="EpilogueRegions"/>) against the hand kernel it may choose instead and the reference ops.
    /// StarReLU after pwconv1 (no bias: <c>s * relu(h)^2 + t</c>, stage 1's 128 and stage 3's 640 channels) and the
    /// residual epilogue with a res scale (<c>x * rs + o</c>, 64 and 320 channels). What <see cref="SubBlockPlanner.PreferHand"/>
    /// should say is read off these rows.
    /// </summary>
    private static void Epilogues(ScalarType dt, bool quick)
    {
        double target = quick ? 0.15 : 0.5;
        foreach (var (c, hw, mid) in new (long, long, long)[] { (64, 56, 128), (320, 14, 640) })
            foreach (long b in new long[] { 1, 32, 128 })
                foreach (bool cl in new[] { false, true })
                {
                    string layout = cl ? "channels-last" : "NCHW";
                    try
                    {
                        using var scope = torch.NewDisposeScope();
                        Tensor Make(long ch)
                        {
                            var t = torch.randn(b, ch, hw, hw, device: torch.CUDA).to_type(dt);
                            return cl ? t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : t;
                        }
                        // StarReLU
                        var h = Make(mid);
                        var sc = torch.full(1, 0.8, device: torch.CUDA).to_type(dt);
                        var sh = torch.full(1, -0.1, device: torch.CUDA).to_type(dt);
                        string name = $"StarReLU C{mid} {hw}x{hw} {layout}";
                        Tensor StarRef() => sc * torch.nn.functional.relu(h).square() + sh;
                        var reference = StarRef();
                        ModelBench.Add(name, "reference (3 ops)", dt, b, 0, ModelBench.TimeMs(() => StarRef(), target), b, "img/s");
                        var star = EpilogueRegions.BiasActivation(FusedActivation.StarReLU, bias: false)!;
                        var args = star.Arguments(("h", h), ("s", sc), ("t", sh));
                        RegionAgainstHand(name, dt, b, target, star, args, reference, "hand FusedOps.BiasActivation",
                            () => FusedOps.BiasActivation(h, null, FusedActivation.StarReLU, sc, sh, 1));
                        // x * rs + o
                        var x = Make(c);
                        var o = Make(c);
                        var rs = torch.randn(c, device: torch.CUDA).to_type(dt);
                        var rsv = rs.view(c, 1, 1);
                        name = $"residual x*rs+o C{c} {hw}x{hw} {layout}";
                        Tensor ResRef() => x * rsv + o;
                        reference = ResRef();
                        ModelBench.Add(name, "reference (2 ops)", dt, b, 0, ModelBench.TimeMs(() => ResRef(), target), b, "img/s");
                        var res = EpilogueRegions.Residual(bias: false, layerScale: false, resScale: true)!;
                        var rargs = res.Arguments(("x", x), ("o", o), ("rs", rsv));
                        RegionAgainstHand(name, dt, b, target, res, rargs, reference, "hand FusedOps.ScaleResidual",
                            () => FusedOps.ScaleResidual(x, o, null, rs, null, 1));
                    }
                    catch (Exception e)
                    {
                        ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture, $"epilogues {layout} C{c} {ModelBench.DtypeName(dt)} b{b}: failed: {e.GetType().Name}: {e.Message}"));
                        Console.Error.WriteLine(ModelBench.Notes[^1]);
                    }
                }
    }

    /// <summary>One epilogue case's rows: the planner's region as is, with the plan cache, with the plan cache and two
    /// vectors a thread, then the hand kernel it may choose instead, and the region / hand ratios.</summary>
    private static void RegionAgainstHand(string name, ScalarType dt, long b, double target, EpilogueRegions.Region region, Tensor[] args,
        Tensor reference, string handLabel, Func<Tensor?> hand)
    {
        var y = region.Bound.TryRun(args);
        var tRegion = ModelBench.TimeMs(() => region.Bound.TryRun(args), target);
        if (y is not null)
            ModelBench.Add(name, $"planner region {region.Name}", dt, b, 0, tRegion, b, "img/s", ModelBench.RelErr(y, reference));
        var tCache = Tuned(() => region.Bound.TryRun(args), target, kernel: false, row: false);
        var tTuned = Tuned(() => region.Bound.TryRun(args), target, kernel: true, row: false);
        if (y is not null)
        {
            ModelBench.Add(name, $"planner region {region.Name}, plan cache", dt, b, 0, tCache, b, "img/s");
            var yu = TwoVectorsAThread(() => region.Bound.TryRun(args));
            ModelBench.Add(name, $"planner region {region.Name}, plan cache + U2", dt, b, 0, tTuned, b, "img/s", yu is null ? null : ModelBench.RelErr(yu, reference));
        }
        var hy = hand();
        if (hy is not null)
        {
            var tHand = ModelBench.TimeMs(() => hand(), target);
            ModelBench.Add(name, handLabel, dt, b, 0, tHand, b, "img/s", ModelBench.RelErr(hy, reference));
            if (y is not null) Ratio(name, dt, b, tHand, ("region", tRegion), ("+cache", tCache), ("+cache+U2", tTuned));
        }
    }

    private static Tensor? TwoVectorsAThread(Func<Tensor?> run)
    {
        int saved = FusedRegionKernel.PointwiseUnroll;
        FusedRegionKernel.PointwiseUnroll = 2;
        try { return run(); }
        finally { FusedRegionKernel.PointwiseUnroll = saved; }
    }

    /// <summary>
    /// The channel LayerNorm of the MetaFormers (layernorm2d_nobias) at ConvFormer-S18's stage shapes, one call:
    /// the reference module (permute, layer_norm, permute back), the planner's region on NCHW (NormRegions: the column
    /// mapping), the hand-written FusedOps.LayerNorm on channels-last memory (it declines NCHW), and the planner's
    /// region on the same channels-last memory. Host-clock median and device time per call.
    /// </summary>
    private static void Norms(ScalarType dt, bool quick)
    {
        double target = quick ? 0.15 : 0.5;
        foreach (var (c, hw) in new (long, long)[] { (64, 56), (128, 28), (320, 14), (512, 7) })
            foreach (long b in new long[] { 1, 32, 128 })
            {
                string name = $"LayerNorm2d C{c} {hw}x{hw}";
                try
                {
                    using var scope = torch.NewDisposeScope();
                    using var norm = new Mix.Runtime.LayerNorm2dNoBias((int)c);
                    norm.to(torch.CUDA).to(dt);
                    using (torch.no_grad()) norm.weight.normal_(1, 0.1);
                    var x = torch.randn(b, c, hw, hw, device: torch.CUDA).to_type(dt);
                    var xcl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
                    var w = norm.weight.view(c, 1, 1);
                    var region = NormRegions.LayerNorm2dWeight.Bind(norm.Eps);
                    FusedRegion.Enabled = false;
                    var reference = norm.call(x);
                    ModelBench.Add(name, "reference (permute + layer_norm)", dt, b, 0, ModelBench.TimeMs(() => norm.call(x), target), b, "img/s");
                    FusedRegion.Enabled = true;
                    SubBlockPlanner.HandKernels = false; // the planner alone: the module takes its region (AvoidRegions applies to the default plan)
                    var y = region.TryRun(x, w);
                    ModelBench.Add(name, y is null ? "planner region NCHW [declined]" : "planner region NCHW (cols)", dt, b, 0,
                        ModelBench.TimeMs(() => norm.call(x), target), b, "img/s", y is null ? null : ModelBench.RelErr(y, reference));
                    SubBlockPlanner.HandKernels = true;
                    var h = FusedOps.LayerNorm(xcl, norm.weight, null, norm.Eps, 1);
                    (double m, double mn, int s, double g) tHand = default;
                    if (h is not null)
                    {
                        tHand = ModelBench.TimeMs(() => FusedOps.LayerNorm(xcl, norm.weight, null, norm.Eps, 1), target);
                        ModelBench.Add(name, "hand FusedOps.LayerNorm, channels-last", dt, b, 0, tHand, b, "img/s", ModelBench.RelErr(h, reference));
                    }
                    var rc = region.TryRun(xcl, w);
                    if (rc is not null)
                    {
                        var tRegion = ModelBench.TimeMs(() => region.TryRun(xcl, w), target);
                        ModelBench.Add(name, "planner region, channels-last", dt, b, 0, tRegion, b, "img/s", ModelBench.RelErr(rc, reference));
                        var tCache = Tuned(() => region.TryRun(xcl, w), target, kernel: false, row: true);
                        ModelBench.Add(name, "planner region, channels-last, plan cache", dt, b, 0, tCache, b, "img/s");
                        var tTuned = Tuned(() => region.TryRun(xcl, w), target, kernel: true, row: true);
                        FusedRegionKernel.RowVector16 = true;
                        var r16 = region.TryRun(xcl, w);
                        FusedRegionKernel.RowVector16 = false;
                        ModelBench.Add(name, "planner region, channels-last, plan cache + 16-byte rows", dt, b, 0, tTuned, b, "img/s",
                            r16 is null ? null : ModelBench.RelErr(r16, reference));
                        var tRegs = Tuned(() => region.TryRun(xcl, w), target, kernel: true, row: true, registers: true);
                        FusedRegionKernel.RowVector16 = true;
                        FusedRegionKernel.RowInRegisters = true;
                        var rr = region.TryRun(xcl, w);
                        FusedRegionKernel.RowVector16 = false;
                        FusedRegionKernel.RowInRegisters = false;
                        ModelBench.Add(name, "planner region, channels-last, plan cache + 16-byte rows in registers", dt, b, 0, tRegs, b, "img/s",
                            rr is null ? null : ModelBench.RelErr(rr, reference));
                        if (h is not null)
                            Ratio(name, dt, b, tHand, ("region", tRegion), ("+cache", tCache), ("+cache+16B rows", tTuned), ("+cache+16B+regs", tRegs));
                    }
                }
                catch (Exception e)
                {
                    ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {ModelBench.DtypeName(dt)} b{b}: failed: {e.GetType().Name}: {e.Message}"));
                    Console.Error.WriteLine(ModelBench.Notes[^1]);
                }
                finally
                {
                    FusedRegion.Enabled = true;
                    SubBlockPlanner.HandKernels = true;
                    FusedRegionKernel.RowVector16 = false;
                    FusedRegionKernel.RowInRegisters = false;
                }
            }
    }

    private static void Case(string name, Func<nn.Module<Tensor, Tensor>> make, Func<long, Tensor> input, long[] batches, ScalarType dt, bool quick)
    {
        double target = quick ? 0.4 : 1.0;
        using var model = make();
        using (torch.no_grad())
            foreach (var p in model.parameters())
                if (p.abs().max().item<float>() == 0) p.normal_(0, 0.02);
        model.to(torch.CUDA).to(dt);
        model.eval();
        foreach (long b in batches)
        {
            try
            {
                using var scope = torch.NewDisposeScope();
                var x = input(b).to(torch.CUDA).to_type(dt);
                MixDispatch.FusedEnabled = false;
                var reference = model.call(x);
                MixDispatch.FusedEnabled = true;
                var settings = new[]
                {
                    ("fused: planner + hand-written", true, true),
                    ("planner regions only", true, false),
                    ("hand-written only", false, true),
                };
                // Every setting runs a few forwards before any is timed: in run 16j the first setting timed per model
                // (the default) paid for cuDNN's algorithm search and the allocator's growth, and read slower than the same kernels later.
                foreach (var (_, regions, hand) in settings)
                {
                    FusedRegion.Enabled = regions;
                    SubBlockPlanner.HandKernels = hand;
                    for (int i = 0; i < 3; i++) model.call(x).Dispose();
                }
                MixDispatch.FusedEnabled = false;
                for (int i = 0; i < 3; i++) model.call(x).Dispose();
                MixDispatch.FusedEnabled = true;
                torch.cuda.synchronize();
                foreach (var (impl, regions, hand) in settings)
                {
                    FusedRegion.Enabled = regions;
                    SubBlockPlanner.HandKernels = hand;
                    long before = FusedRegion.FusedRuns;
                    SubBlockPlanner.Trace = new System.Collections.Generic.List<string>();
                    var y = model.call(x);
                    var steps = SubBlockPlanner.Trace;
                    SubBlockPlanner.Trace = null;
                    long regionRuns = FusedRegion.FusedRuns - before;
                    if (b == batches[0])
                        ModelBench.Notes.Add($"{name} {ModelBench.DtypeName(dt)} [{impl}] planner steps: "
                            + string.Join("; ", steps.GroupBy(t => t).Select(g => $"{g.Key} x{g.Count()}")));
                    var err = ModelBench.RelErr(y, reference);
                    var cost = ModelBench.Cost(() => model.call(x));
                    ModelBench.Add(name, $"{impl} ({regionRuns} region launches)", dt, b, 0, ModelBench.TimeMs(() => model.call(x), target), b, "img/s", err, cost);
                }
                FusedRegion.Enabled = true;
                SubBlockPlanner.HandKernels = true;
                // the default fused forward recorded as one CUDA graph (the launch-bound small batches' lever)
                using (var graphed = new CudaGraphModule(model))
                {
                    for (int i = 0; i < graphed.WarmupRuns + 2; i++) graphed.call(x).Dispose();
                    var yg = graphed.call(x);
                    var (_, nodes, _, failure) = graphed.Report().FirstOrDefault();
                    ModelBench.Add(name, failure is null ? $"fused + one CUDA graph a forward ({nodes} nodes)" : $"fused, CUDA graph failed: {failure}",
                        dt, b, 0, ModelBench.TimeMs(() => graphed.call(x), target), b, "img/s", ModelBench.RelErr(yg, reference));
                }
                MixDispatch.FusedEnabled = false;
                var offCost = ModelBench.Cost(() => model.call(x));
                ModelBench.Add(name, "reference (fusion off)", dt, b, 0, ModelBench.TimeMs(() => model.call(x), target), b, "img/s", cost: offCost);
            }
            catch (Exception e)
            {
                ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {ModelBench.DtypeName(dt)} b{b}: failed: {e.GetType().Name}: {e.Message}"));
                Console.Error.WriteLine(ModelBench.Notes[^1]);
            }
            finally
            {
                FusedRegion.Enabled = true;
                SubBlockPlanner.HandKernels = true;
                SubBlockPlanner.Trace = null;
                MixDispatch.FusedEnabled = true;
            }
        }
    }
}
