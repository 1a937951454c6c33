using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Mix.Runtime.Caches;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Quantization;

/// <summary>Options of <see cref="Quantizer.Quantize"/>.</summary>
public sealed record QuantizationOptions
{
    /// <summary>Format (default int4 grouped).</summary>
    public WeightQuantMode Mode { get; init; } = WeightQuantMode.Int4Grouped;

    /// <summary>int4 group size along the input dim (32, 64 or 128; default 128).</summary>
    public int GroupSize { get; init; } = 128;

    /// <summary>
    /// Linear layers whose dotted name ends with, or has a component equal to, one of these stay full precision.
    /// Default: <c>dt_proj</c> (the Mamba time-step projection; A_log, D, conv1d and the recurrent state are not Linear
    /// layers and are never touched) and <c>lm_head</c> (often tied to the embeddings). Norms and embeddings are not
    /// Linear layers and stay full precision; remove <c>lm_head</c> here to quantize an untied output head.
    /// </summary>
    public IReadOnlyCollection<string> Exclude { get; init; } = new[] { "dt_proj", "lm_head" };

    /// <summary>Calibration batches of token ids for AWQ (null = plain round-to-nearest).</summary>
    public IReadOnlyList<Tensor>? CalibrationInputs { get; init; }

    /// <summary>AWQ grid of α in s = mean|x|^α (default 0, 0.05, …, 1).</summary>
    public IReadOnlyList<double> AwqAlphaGrid { get; init; } = Enumerable.Range(0, 21).Select(i => i / 20.0).ToArray();

    /// <summary>Fold AWQ scales into a preceding norm where a <see cref="FoldRules"/> rule names one (default true);
    /// otherwise the inverse scale is kept as the layer's <c>input_scale</c>.</summary>
    public bool FoldAwqScales { get; init; } = true;

    /// <summary>
    /// Which norm feeds which linear layers, by relative names inside any module (as AutoAWQ describes each
    /// architecture): when a module has the norm (a bias-free norm with one <c>weight [in]</c>) and every listed layer is
    /// quantized, the layers share one AWQ scale and 1/s is folded into the norm's weight. A rule asserts that the norm's
    /// output goes to those layers only; name your blocks' layers accordingly or pass your own rules (empty: no folding).
    /// Default: <see cref="AwqFoldRule.Defaults"/>.
    /// </summary>
    public IReadOnlyList<AwqFoldRule> FoldRules { get; init; } = AwqFoldRule.Defaults;

    /// <summary>What the AWQ grid search minimises (default <see cref="AwqObjective.Block"/>).</summary>
    public AwqObjective AwqObjective { get; init; } = AwqObjective.Block;
}

/// <summary>A norm and the linear layers that read only its output, named relative to the module holding both.</summary>
/// <param name="Norm">The norm's relative name (e.g. <c>norm</c>).</param>
/// <param name="Layers">The layers' relative names (e.g. <c>mixer.in_proj</c>).</param>
public sealed record AwqFoldRule(string Norm, IReadOnlyList<string> Layers)
{
    /// <summary>Mamba blocks (Hugging Face, the zoo's <c>.mix</c> Mamba: <c>norm</c> → <c>mixer.in_proj</c>); pre-norm
    /// transformer blocks named Llama-style (<c>input_layernorm</c> → <c>self_attn.q/k/v_proj</c>,
    /// <c>post_attention_layernorm</c> → <c>mlp.gate_proj</c>, <c>mlp.up_proj</c>) or <c>attn_norm</c> →
    /// <c>attn.q/k/v_proj</c>, <c>mlp_norm</c> → <c>up_proj</c>.</summary>
    public static IReadOnlyList<AwqFoldRule> Defaults { get; } = new AwqFoldRule[]
    {
        new("norm", new[] { "mixer.in_proj" }),
        new("input_layernorm", new[] { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" }),
        new("post_attention_layernorm", new[] { "mlp.gate_proj", "mlp.up_proj" }),
        new("attn_norm", new[] { "attn.q_proj", "attn.k_proj", "attn.v_proj" }),
        new("mlp_norm", new[] { "up_proj" }),
    };
}

/// <summary>The error AWQ's α search minimises.</summary>
public enum AwqObjective
{
    /// <summary>Each layer's (or fold group's) own output error ‖x Wᵀ − (x/s) Q(W·diag s)ᵀ‖²: no block calls, the
    /// choice of earlier AWQ papers' per-linear variants; layers outside any callable block always use it.</summary>
    Layer,

    /// <summary>The output error of the enclosing block (e.g. <c>layers.3</c>: a Mamba or attention + MLP block) run on
    /// its calibration inputs with every quantized layer of the block in place; starts from the per-layer scales (or
    /// plain rounding, whichever gives the block the smaller error) and improves one layer group at a time.</summary>
    Block,
}

/// <summary>AWQ's effect on one block: squared output error summed over the calibration inputs, relative to the
/// float block's output energy (so 0.01 = 1 % of the output's L2 norm squared).</summary>
/// <param name="Block">Dotted name.</param>
/// <param name="Rounding">Plain round-to-nearest.</param>
/// <param name="PerLayer">The per-layer AWQ scales.</param>
/// <param name="Chosen">The scales kept.</param>
public sealed record AwqBlockError(string Block, double Rounding, double PerLayer, double Chosen);

/// <summary>What <see cref="Quantizer.Quantize"/> did.</summary>
public sealed class QuantizationReport
{
    /// <summary>Quantized layers (dotted names).</summary>
    public List<string> Quantized { get; } = new();

    /// <summary>Linear layers left in full precision, with the reason.</summary>
    public List<(string name, string reason)> Skipped { get; } = new();

    /// <summary>AWQ: chosen α per quantized layer or group (first layer's name).</summary>
    public Dictionary<string, double> AwqAlpha { get; } = new();

    /// <summary>AWQ with <see cref="AwqObjective.Block"/>: each block's output error before and after the block search.</summary>
    public List<AwqBlockError> BlockErrors { get; } = new();

    /// <summary>AWQ scales folded into a norm: norm parameter → layers.</summary>
    public Dictionary<string, string[]> Folded { get; } = new();

    /// <summary>Weight bytes of the replaced layers before (float) and after.</summary>
    public long BytesBefore { get; set; }

    /// <summary>Quantized weight bytes.</summary>
    public long BytesAfter { get; set; }
}

/// <summary>
/// Replaces <see cref="Linear"/> layers in place by <see cref="QuantizedLinear"/>s, optionally with AWQ
/// (activation-aware weight quantization): per layer (or per group of layers reading the same normalised input) a grid
/// search over α for the per-input-channel scale s = mean|x|^α (normalised by √(max·min)), minimising the squared
/// output error ‖x Wᵀ − (x/s) Q(W·diag s)ᵀ‖² on calibration activations, then by default refined on the output error
/// of the enclosing block (<see cref="AwqObjective.Block"/>, see AwqBlockSearch.cs); 1/s is folded into the preceding norm's
/// weight when a <see cref="QuantizationOptions.FoldRules"/> rule says that norm feeds only the group (Mamba block
/// norm → in_proj, transformer norms → q/k/v and up projections), else stored as the layer's input scale.
/// A layer can only be replaced when its parent holds it in a field typed as a module base
/// (<c>Module&lt;Tensor, Tensor&gt;</c>); a field typed <see cref="Linear"/> is reported as skipped.
/// </summary>
public static partial class Quantizer
{
    /// <summary>Quantizes <paramref name="model"/>'s Linear layers in place.</summary>
    /// <param name="model">The model (its forward must accept the calibration inputs when AWQ is used).</param>
    /// <param name="options">Options.</param>
    public static QuantizationReport Quantize(nn.Module model, QuantizationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var o = options ?? new QuantizationOptions();
        var report = new QuantizationReport();
        var targets = new List<Target>();
        foreach (var (name, parent, childName, linear) in Linears(model))
        {
            if (IsExcluded(name, o.Exclude)) { report.Skipped.Add((name, "excluded")); continue; }
            if (Replaceable(name, parent, childName, linear) is not { } target)
            { report.Skipped.Add((name, $"the parent's field is typed {typeof(Linear).Name}; it cannot hold a quantized layer")); continue; }
            if (o.Mode == WeightQuantMode.Int4Grouped && target.Weight.shape[1] % GroupFor(target.Weight, o) != 0)
            { report.Skipped.Add((name, $"in features {target.Weight.shape[1]} not divisible by group {o.GroupSize}")); continue; }
            targets.Add(target);
        }

        var scalesByLayer = new Dictionary<string, Tensor>();
        var foldedLayers = new HashSet<string>();
        if (o.CalibrationInputs is { Count: > 0 })
        {
            var units = AwqUnits(model, targets, o);
            var blocks = o.AwqObjective == AwqObjective.Block ? Blocks(model, targets) : new Dictionary<string, nn.Module<Tensor, Tensor>>();
            var (acts, blockInputs) = Capture(model, targets, blocks, o.CalibrationInputs);
            try
            {
                // 1. per layer (or fold group): the scale that minimises the layer's own output error
                foreach (var u in units)
                {
                    u.Scale = SearchScale(u.Targets.Select(t => t.Weight).ToList(), acts[u.Targets[0].Name], o, out double alpha);
                    u.Alpha = alpha;
                }
                // 2. per block: refine the scales on the block's output error (see AwqBlockSearch)
                foreach (var (blockName, block) in blocks)
                {
                    var members = units.Where(u => u.Targets[0].Name.StartsWith(blockName + ".", StringComparison.Ordinal)).ToList();
                    if (members.Count == 0 || !blockInputs.TryGetValue(blockName, out var inputs) || inputs.Count == 0) continue;
                    report.BlockErrors.Add(RefineInBlock(blockName, block, inputs, members, acts, o));
                }
                // 3. fold 1/s into the norm that feeds only the group, or keep it as the layers' input scale
                foreach (var u in units)
                {
                    report.AwqAlpha[u.Targets[0].Name] = u.Alpha;
                    if (u.Norm is not null)
                    {
                        using (torch.no_grad()) u.Norm.div_(u.Scale!.to_type(u.Norm.dtype));
                        report.Folded[u.NormName!] = u.Targets.Select(t => t.Name).ToArray();
                    }
                    foreach (var t in u.Targets)
                    {
                        scalesByLayer[t.Name] = u.Scale!;
                        if (u.Norm is not null) foldedLayers.Add(t.Name);
                    }
                }
            }
            finally
            {
                foreach (var a in acts.Values) a.Dispose();
                foreach (var list in blockInputs.Values) foreach (var x in list) x.Dispose();
            }
        }

        foreach (var t in targets)
        {
            scalesByLayer.TryGetValue(t.Name, out var s);
            var q = QuantizedLinear.FromWeight(t.Weight, t.Bias, o.Mode, GroupFor(t.Weight, o), s, keepInputScale: s is not null && !foldedLayers.Contains(t.Name));
            report.BytesBefore += t.Weight.numel() * (long)t.Weight.element_size();
            report.BytesAfter += q.WeightBytes;
            t.Install(q);
            report.Quantized.Add(t.Name);
        }
        // fold groups share one scale tensor; compare by reference (Tensor.Equals reads the handles) and list them before disposing
        foreach (var s in scalesByLayer.Values.Distinct<Tensor>(ReferenceEqualityComparer.Instance).ToList()) s.Dispose();
        return report;
    }

    /// <summary>The int4 group of the layer of <paramref name="weight"/>: the configured size, or the whole row when the layer reads
    /// fewer features than that (a 64-wide layer under group 128 gets one group of 64 per output channel).</summary>
    internal static int GroupFor(Tensor weight, QuantizationOptions o) => (int)Math.Min(o.GroupSize, weight.shape[1]);

    /// <summary>A layer to quantize: a TorchSharp <see cref="Linear"/> in a field that can hold a
    /// <see cref="QuantizedLinear"/>, or a <see cref="QuantizableLinear"/> (quantized in place, <paramref name="Field"/> null).</summary>
    internal sealed record Target(string Name, nn.Module Parent, string ChildName, nn.Module<Tensor, Tensor> Layer, FieldInfo? Field)
    {
        public Tensor Weight => Layer is QuantizableLinear q ? q.weight : ((Linear)Layer).weight!;
        public Tensor? Bias => Layer is QuantizableLinear q ? q.bias : ((Linear)Layer).bias;

        /// <summary>The full-precision forward.</summary>
        public Tensor Dense(Tensor x) => Layer is QuantizableLinear q ? q.DenseForward(x) : Layer.forward(x);

        /// <summary>Puts the quantized layer in place of the full-precision one.</summary>
        public void Install(QuantizedLinear q)
        {
            if (Layer is QuantizableLinear ql) { ql.UseQuantized(q); return; }
            Swap(Parent, ChildName, Field!, q);
            Layer.Dispose();
        }

        /// <summary>Sends the layer's calls to <paramref name="recorder"/> (null: back to the layer).</summary>
        public void Reroute(nn.Module<Tensor, Tensor>? recorder)
        {
            if (Layer is QuantizableLinear ql) ql.Route(recorder is null ? null : recorder.forward);
            else Swap(Parent, ChildName, Field!, recorder ?? Layer);
        }
    }

    /// <summary>The target for a layer <see cref="Linears"/> found, or null when it cannot be replaced (a TorchSharp
    /// <see cref="Linear"/> in a field typed <c>Linear</c>).</summary>
    internal static Target? Replaceable(string name, nn.Module parent, string childName, nn.Module<Tensor, Tensor> linear)
    {
        if (linear is QuantizableLinear) return new Target(name, parent, childName, linear, null);
        return FindField(parent, linear) is { } field ? new Target(name, parent, childName, linear, field) : null;
    }

    /// <summary>The full-precision linear layers of <paramref name="model"/>: TorchSharp <see cref="Linear"/>s and the
    /// <see cref="QuantizableLinear"/>s of generated models.</summary>
    internal static IEnumerable<(string name, nn.Module parent, string childName, nn.Module<Tensor, Tensor> linear)> Linears(nn.Module model)
    {
        var list = new List<(string, nn.Module, string, nn.Module<Tensor, Tensor>)>();
        void Walk(nn.Module m, string prefix)
        {
            foreach (var (childName, child) in m.named_children())
            {
                string full = prefix.Length == 0 ? childName : prefix + "." + childName;
                if (child is Linear lin) list.Add((full, m, childName, lin));
                else if (child is QuantizableLinear { IsQuantized: false } ql) list.Add((full, m, childName, ql));
                else Walk(child, full);
            }
        }
        Walk(model, "");
        return list;
    }

    internal static bool IsExcluded(string name, IReadOnlyCollection<string> exclude) =>
        exclude.Any(e => name == e || name.EndsWith("." + e, StringComparison.Ordinal) || name.Split('.').Contains(e));

    internal static FieldInfo? FindField(nn.Module parent, nn.Module child)
    {
        for (var t = parent.GetType(); t is not null && t != typeof(nn.Module); t = t.BaseType)
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (ReferenceEquals(f.GetValue(parent), child))
                    return f.FieldType.IsAssignableFrom(typeof(QuantizedLinear)) ? f : null;
        return null;
    }

    internal static void Swap(nn.Module parent, string childName, FieldInfo field, nn.Module replacement)
    {
        field.SetValue(parent, replacement);
        parent.register_module(childName, null!);
        parent.register_module(childName, replacement);
    }

    /// <summary>Norm-fold groups from <see cref="QuantizationOptions.FoldRules"/>: (norm parameter name, the norm weight,
    /// the linear layers reading only that norm's output).</summary>
    internal static List<(string normName, Parameter norm, string[] members)> FoldGroups(nn.Module model, QuantizationOptions o)
    {
        var groups = new List<(string, Parameter, string[])>();
        if (!o.FoldAwqScales || o.FoldRules.Count == 0) return groups;
        var modules = model.named_modules().ToDictionary(p => p.name, p => p.module, StringComparer.Ordinal);
        foreach (var (name, _) in modules)
        {
            string p = name.Length == 0 ? "" : name + ".";
            foreach (var rule in o.FoldRules)
            {
                if (!modules.TryGetValue(p + rule.Norm, out var norm) || FoldableWeight(norm) is not { } weight) continue;
                groups.Add((p + rule.Norm + ".weight", weight, rule.Layers.Select(l => p + l).ToArray()));
            }
        }
        return groups;
    }

    /// <summary>The weight of a norm that 1/s can be folded into: its only parameter, <c>weight</c> of rank 1 (a norm
    /// with a bias, or any other module, is not folded into).</summary>
    private static Parameter? FoldableWeight(nn.Module norm)
    {
        var ps = norm.named_parameters(recurse: false).ToList();
        return ps.Count == 1 && ps[0].name == "weight" && ps[0].parameter.dim() == 1 && norm.GetType().Name.Contains("Norm", StringComparison.Ordinal)
            ? ps[0].parameter
            : null;
    }

    /// <summary>Wraps every target to record its inputs and hooks every block to record its inputs, runs the calibration
    /// batches, restores the layers. A block whose parent calls it with <c>forward</c> rather than <c>call</c> records
    /// nothing (its layers keep their per-layer scales).</summary>
    private static (Dictionary<string, Tensor> Layers, Dictionary<string, List<Tensor>> Blocks) Capture(nn.Module model, List<Target> targets,
        Dictionary<string, nn.Module<Tensor, Tensor>> blocks, IReadOnlyList<Tensor> inputs)
    {
        var wrappers = targets.Select(t => new Recorder(t.Dense)).ToList();
        var blockInputs = blocks.Keys.ToDictionary(k => k, _ => new List<Tensor>());
        var hooks = blocks.Select(b => b.Value.register_forward_pre_hook((_, x) =>
        {
            blockInputs[b.Key].Add(x.detach().clone().DetachFromDisposeScope());
            return x;
        })).ToList();
        for (int i = 0; i < targets.Count; i++) targets[i].Reroute(wrappers[i]);
        try
        {
            using var noGrad = torch.no_grad();
            foreach (var x in inputs)
            {
                using var scope = torch.NewDisposeScope();
                switch (model)
                {
                    case nn.Module<Tensor, Tensor> m: m.forward(x); break;
                    default: throw new ArgumentException("AWQ calibration needs a Module<Tensor, Tensor>", nameof(model));
                }
            }
        }
        finally
        {
            foreach (var h in hooks) h.remove();
            for (int i = 0; i < targets.Count; i++) targets[i].Reroute(null);
        }
        var result = new Dictionary<string, Tensor>();
        for (int i = 0; i < targets.Count; i++) result[targets[i].Name] = wrappers[i].Take();
        return (result, blockInputs);
    }

    /// <summary>
    /// AWQ grid search: s(α) = mean|x|^α / √(max·min), error(α) = Σ over layers ‖x Wᵀ − (x/s) Q(W·diag s)ᵀ‖²; returns the
    /// best s (α = 0 is plain quantization, so AWQ never does worse than it on the calibration data).
    /// </summary>
    /// <param name="layers">Layers sharing the input.</param>
    /// <param name="x">Calibration inputs <c>[N, in]</c>.</param>
    /// <param name="o">Options.</param>
    /// <param name="bestAlpha">The chosen α.</param>
    public static Tensor SearchScale(IReadOnlyList<Linear> layers, Tensor x, QuantizationOptions o, out double bestAlpha) =>
        SearchScale(layers.Select(l => (Tensor)l.weight!).ToList(), x, o, out bestAlpha);

    /// <summary>The AWQ grid search of <see cref="SearchScale(IReadOnlyList{Linear}, Tensor, QuantizationOptions, out double)"/>
    /// over the layers' weights <c>[out, in]</c>.</summary>
    /// <param name="weights">Weights of the layers sharing the input.</param>
    /// <param name="x">Calibration inputs <c>[N, in]</c>.</param>
    /// <param name="o">Options.</param>
    /// <param name="bestAlpha">The chosen α.</param>
    public static Tensor SearchScale(IReadOnlyList<Tensor> weights, Tensor x, QuantizationOptions o, out double bestAlpha)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var xf = x.to_type(ScalarType.Float32);
        var mean = MeanMagnitude(xf);
        var refs = weights.Select(w => torch.matmul(xf, w.detach().to_type(ScalarType.Float32).t())).ToList();
        double best = double.PositiveInfinity;
        bestAlpha = 0;
        Tensor? bestS = null;
        foreach (double alpha in o.AwqAlphaGrid)
        {
            var s = ScaleFor(mean, alpha);
            double err = 0;
            for (int i = 0; i < weights.Count; i++)
            {
                var w = weights[i].detach().to_type(ScalarType.Float32) * s.unsqueeze(0);
                var wq = WeightQuantizer.FakeQuantize(w, o.Mode, GroupFor(weights[i], o));
                var y = torch.matmul(xf / s, wq.t());
                err += (y - refs[i]).square().sum().item<float>();
            }
            if (err < best) { best = err; bestAlpha = alpha; bestS = s; }
        }
        return bestS!.MoveToOuterDisposeScope();
    }

    private sealed class Recorder : nn.Module<Tensor, Tensor>
    {
        private readonly Func<Tensor, Tensor> inner;
        private readonly List<Tensor> seen = new();

        public Recorder(Func<Tensor, Tensor> inner) : base("AwqRecorder")
        {
            this.inner = inner;
        }

        public override Tensor forward(Tensor input)
        {
            seen.Add(input.detach().reshape(-1, input.shape[^1]).to_type(ScalarType.Float32).clone().DetachFromDisposeScope());
            return inner(input);
        }

        public Tensor Take()
        {
            var all = torch.cat(seen, 0).DetachFromDisposeScope();
            foreach (var t in seen) t.Dispose();
            seen.Clear();
            return all;
        }
    }
}
