using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>
/// AWQ's block objective: the scales of the quantized layers inside one block (a Mamba block, an attention + MLP block)
/// are chosen to minimise the block's output error on its calibration inputs, as AutoAWQ does with its
/// <c>module2inspect</c>. A candidate is evaluated by writing the weight the quantized layer will effectively apply,
/// <c>Q(W·diag s)·diag(1/s)</c>, into the float layer and running the block; this equals folding 1/s into the preceding
/// norm or keeping it as <c>input_scale</c>, so nothing is swapped while searching and the original weights are restored.
/// </summary>
public static partial class Quantizer
{
    /// <summary>Layers that share one AWQ scale: a fold group (reading one norm's output) or a single layer.</summary>
    internal sealed class AwqUnit
    {
        public AwqUnit(IReadOnlyList<Target> targets, Parameter? norm, string? normName)
        {
            Targets = targets;
            Norm = norm;
            NormName = normName;
        }

        public IReadOnlyList<Target> Targets { get; }
        public Parameter? Norm { get; }
        public string? NormName { get; }
        public Tensor? Scale { get; set; }
        public double Alpha { get; set; }
    }

    /// <summary>The AWQ units in registration order: each fold group whose layers are all targets, then each other target alone.</summary>
    internal static List<AwqUnit> AwqUnits(nn.Module model, List<Target> targets, QuantizationOptions o)
    {
        var byName = targets.ToDictionary(t => t.Name);
        var units = new List<AwqUnit>();
        var grouped = new HashSet<string>();
        foreach (var (normName, norm, members) in FoldGroups(model, o))
        {
            if (!members.All(byName.ContainsKey) || members.Any(grouped.Contains)) continue;
            units.Add(new AwqUnit(members.Select(m => byName[m]).ToList(), norm, normName));
            grouped.UnionWith(members);
        }
        units.AddRange(targets.Where(t => !grouped.Contains(t.Name)).Select(t => new AwqUnit(new[] { t }, null, null)));
        var order = targets.Select((t, i) => (t.Name, i)).ToDictionary(p => p.Name, p => p.i);
        return units.OrderBy(u => order[u.Targets[0].Name]).ToList();
    }

    /// <summary>
    /// The block of each target: the longest prefix of its name that ends in a list index (<c>backbone.layers.3</c>), when
    /// that module maps a tensor to a tensor. Targets outside such a block (a top-level head) keep the layer objective.
    /// </summary>
    internal static Dictionary<string, nn.Module<Tensor, Tensor>> Blocks(nn.Module model, List<Target> targets)
    {
        var modules = model.named_modules().ToDictionary(p => p.name, p => p.module);
        var blocks = new Dictionary<string, nn.Module<Tensor, Tensor>>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            var parts = t.Name.Split('.');
            for (int n = parts.Length - 1; n >= 1; n--)
            {
                if (!long.TryParse(parts[n - 1], NumberStyles.None, CultureInfo.InvariantCulture, out _)) continue;
                var name = string.Join(".", parts.Take(n));
                if (modules.TryGetValue(name, out var m) && m is nn.Module<Tensor, Tensor> block) blocks.TryAdd(name, block);
                break;
            }
        }
        return blocks;
    }

    /// <summary>Mean |x| per input channel over the calibration rows <c>[N, in]</c>.</summary>
    internal static Tensor MeanMagnitude(Tensor x) => x.abs().mean(new long[] { 0 }).clamp_min(1e-8);

    /// <summary>s(α) = mean|x|^α normalised by √(max·min), so the scales straddle 1 (α = 0: all ones, plain rounding).</summary>
    internal static Tensor ScaleFor(Tensor mean, double alpha)
    {
        var s = mean.pow(alpha);
        return s / (s.max() * s.min()).sqrt();
    }

    /// <summary>
    /// Block search: starts from the per-layer scales or plain rounding (whichever gives the smaller block error), then
    /// for each unit in order tries every α of the grid with the other units at their current choice and keeps the best.
    /// The current choice is always a candidate, so the block error never rises above the start.
    /// </summary>
    internal static AwqBlockError RefineInBlock(string name, nn.Module<Tensor, Tensor> block, List<Tensor> inputs, List<AwqUnit> units,
        Dictionary<string, Tensor> acts, QuantizationOptions o)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool wasTraining = block.training;
        block.eval();
        var weights = units.SelectMany(u => u.Targets).Select(t => t.Weight).ToList();
        var originals = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var w in weights) originals[w] = w.detach().clone();
        try
        {
            var reference = inputs.Select(x => block.forward(x).to_type(ScalarType.Float32)).ToList();
            double energy = reference.Sum(r => r.square().sum().item<float>());
            double Error()
            {
                double e = 0;
                for (int i = 0; i < inputs.Count; i++)
                {
                    using var inner = torch.NewDisposeScope();
                    e += (block.forward(inputs[i]).to_type(ScalarType.Float32) - reference[i]).square().sum().item<float>();
                }
                return e / Math.Max(energy, 1e-30);
            }
            void Apply(AwqUnit u, Tensor s)
            {
                foreach (var t in u.Targets)
                {
                    using var inner = torch.NewDisposeScope();
                    var w = originals[t.Weight];
                    var effective = WeightQuantizer.FakeQuantize(w.to_type(ScalarType.Float32) * s.unsqueeze(0), o.Mode, GroupFor(w, o)) / s.unsqueeze(0);
                    t.Weight.copy_(effective);
                }
            }

            var means = units.Select(u => MeanMagnitude(acts[u.Targets[0].Name].to_type(ScalarType.Float32))).ToList();
            var ones = units.Select((u, i) => ScaleFor(means[i], 0)).ToList();
            for (int i = 0; i < units.Count; i++) Apply(units[i], units[i].Scale!);
            double perLayer = Error();
            for (int i = 0; i < units.Count; i++) Apply(units[i], ones[i]);
            double rounding = Error();
            var chosen = units.Select((u, i) => rounding < perLayer ? (ones[i], 0.0) : (u.Scale!, u.Alpha)).ToList();
            for (int i = 0; i < units.Count; i++) Apply(units[i], chosen[i].Item1);
            double best = Math.Min(rounding, perLayer);
            for (int i = 0; i < units.Count; i++)
            {
                foreach (double alpha in o.AwqAlphaGrid)
                {
                    if (alpha == chosen[i].Item2) continue;
                    var s = ScaleFor(means[i], alpha);
                    Apply(units[i], s);
                    double e = Error();
                    if (e < best) { best = e; chosen[i] = (s, alpha); }
                }
                Apply(units[i], chosen[i].Item1);
            }
            for (int i = 0; i < units.Count; i++)
            {
                var s = chosen[i].Item1;
                if (!ReferenceEquals(s, units[i].Scale))
                {
                    units[i].Scale?.Dispose();
                    units[i].Scale = s.detach().clone().DetachFromDisposeScope();
                }
                units[i].Alpha = chosen[i].Item2;
            }
            return new AwqBlockError(name, rounding, perLayer, best);
        }
        finally
        {
            foreach (var w in weights) w.copy_(originals[w]);
            block.train(wasTraining);
        }
    }
}
