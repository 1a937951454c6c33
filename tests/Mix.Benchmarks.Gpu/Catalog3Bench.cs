using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using Mix.Runtime.Builtins;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// <c>--only catalog3</c>: the catalog's third part on the GPU, images/s of the zoo's <c>mambaout_femto</c>,
/// <c>rcvit_xs</c>, <c>iformer_small</c>, <c>ffnet_1</c>, <c>raft_mlp_s</c>, <c>ms_mlp_tiny</c> and
/// <c>wavemix_192_16</c> (the ImageNet configuration of <c>wavemix</c>), generated from models/*.mix, at each model's
/// registry input size (224×224; FFNet 256×256), batch 32 and 128, float32 and bfloat16, with the fused paths on (the
/// default) and off. The relative error of the fused output is against fusion off on the same input.
/// catalog3_models.py times the official PyTorch models (eager and torch.compile, cudnn.benchmark) in the same device
/// call; the rows of both share the model names. <c>--models</c> takes a subset (a half of the table per device call),
/// <c>--budget</c> seconds stop starting new cases once spent (the JSON is still written).
/// Every forward runs in its own dispose scope: generated code leaves its intermediates to the caller's scope, so two
/// forwards in one scope hold both sets (WaveMix at batch 128 holds about 47 GB in one).
/// </summary>
internal static class Catalog3Bench
{
    /// <summary>Name (as the official script spells it), generated class, input side.</summary>
    private static readonly (string Name, Func<nn.Module<Tensor, Tensor>> Make, long Side)[] Models =
    {
        ("mambaout_femto", () => new Mix.Generated.Models.MambaoutFemto(), 224),
        ("rcvit_xs", () => new Mix.Generated.Models.RcvitXs(), 224),
        ("iformer_small", () => new Mix.Generated.Models.IformerSmall(), 224),
        ("ffnet_1", () => new Mix.Generated.Models.Ffnet1(), 256),
        ("raft_mlp_s", () => new Mix.Generated.Models.RaftMlpS(), 224),
        ("ms_mlp_tiny", () => new Mix.Generated.Models.MsMlpTiny(), 224),
        ("wavemix", () => new Mix.Generated.Models.Wavemix19216(), 224),
    };

    /// <summary>Model names to run (comma-separated), or all.</summary>
    public static string Only { get; set; } = "all";

    /// <summary>Seconds after which no new model or batch starts (the rows measured so far are kept).</summary>
    public static double BudgetS { get; set; } = double.PositiveInfinity;

    private static readonly Stopwatch Clock = new();

    private static bool OverBudget(string what)
    {
        if (Clock.Elapsed.TotalSeconds < BudgetS) return false;
        ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture, $"{what}: skipped (budget {BudgetS:F0} s spent)"));
        Console.Error.WriteLine(ModelBench.Notes[^1]);
        return true;
    }

    public static void Run(bool quick)
    {
        Clock.Restart();
        var only = Only == "all" ? null : new HashSet<string>(Only.Split(','), StringComparer.Ordinal);
        if (only is not null && only.FirstOrDefault(n => !Models.Any(m => m.Name == n)) is { } unknown)
            throw new ArgumentException($"--models: unknown model '{unknown}' (catalog3 has {string.Join(", ", Models.Select(m => m.Name))})");
        foreach (var dt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            if (ModelBench.Dtypes != "all" && ModelBench.Dtypes != ModelBench.DtypeName(dt)) continue;
            foreach (var (name, make, side) in Models)
                if ((only is null || only.Contains(name)) && !OverBudget($"{name} {ModelBench.DtypeName(dt)}"))
                    Case(name, make, side, dt, quick);
        }
    }

    /// <summary>One forward in its own dispose scope; only the output leaves it.</summary>
    private static Tensor Forward(nn.Module<Tensor, Tensor> m, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return m.call(x).MoveToOuterDisposeScope();
    }

    private static void Case(string name, Func<nn.Module<Tensor, Tensor>> make, long side, ScalarType dt, bool quick)
    {
        double target = quick ? 0.4 : 1.0;
        nn.Module<Tensor, Tensor>? model = null;
        try
        {
            model = make();
            // a zero-initialised weight (a head, a layer scale) would make outputs constant and the error check vacuous
            using (torch.no_grad())
                foreach (var p in model.parameters())
                    if (p.abs().max().item<float>() == 0) p.normal_(0, 0.02);
            model.to(torch.CUDA).to(dt);
            model.eval();
            long nParams = model.parameters().Sum(p => p.numel());
            Console.WriteLine($"{name} {ModelBench.DtypeName(dt)}: {nParams:N0} parameters, {side}×{side}");
        }
        catch (Exception e)
        {
            model?.Dispose();
            ModelBench.Notes.Add($"{name} {ModelBench.DtypeName(dt)}: build failed: {e.GetType().Name}: {e.Message}");
            Console.Error.WriteLine(ModelBench.Notes[^1]);
            return;
        }
        using var m = model!;
        foreach (long b in new long[] { 32, 128 })
        {
            if (OverBudget($"{name} {ModelBench.DtypeName(dt)} b{b}")) break;
            try
            {
                using var scope = torch.NewDisposeScope();
                var x = torch.randn(b, 3, side, side, device: torch.CUDA).to_type(dt);
                MixDispatch.FusedEnabled = false;
                var reference = Forward(m, x);
                MixDispatch.FusedEnabled = true;
                var err = ModelBench.RelErr(Forward(m, x), reference);
                ModelBench.Add(name, "Mix generated (.mix), fused paths on", dt, b, 0, ModelBench.TimeMs(() => m.call(x), target), b, "img/s", err);
                MixDispatch.FusedEnabled = false;
                ModelBench.Add(name, "Mix generated, fusion off", dt, b, 0, ModelBench.TimeMs(() => m.call(x), target), b, "img/s");
            }
            catch (Exception e)
            {
                ModelBench.Notes.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{name} {ModelBench.DtypeName(dt)} b{b}: failed: {e.GetType().Name}: {e.Message}"));
                Console.Error.WriteLine(ModelBench.Notes[^1]);
            }
            finally { MixDispatch.FusedEnabled = true; }
        }
    }
}
