using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Training.Distillation;

/// <summary>Initial values of the stage-2 tensors that have no stage-1 counterpart.</summary>
public sealed record Stage2Init
{
    /// <summary>The per-token decay rate <c>-A = exp(A_log)</c> the SSM starts with; small, so that with dt = 1 the
    /// scan starts as the (decay-free) linear attention, yet large enough that A_log still learns (its gradient is
    /// proportional to it). 1e-4 forgets 0.6 % over 64 tokens.</summary>
    public double DecayRate { get; init; } = 1e-4;

    /// <summary>The time step the SSM starts with (<c>dt_bias = inv_softplus(dt)</c>, dt rows of in_proj zero): 1
    /// makes the scan's input weight the attention's.</summary>
    public double TimeStep { get; init; } = 1.0;
}

/// <summary>
/// The weight surgery of the Attention-to-Mamba recipe, by name mapping. Stage 1: an attention teacher (a <c>.mix</c>
/// model whose mixers are the standard library's <c>attention</c>, or one Hugging Face GPT-NeoX/Llama attention
/// block through <see cref="AttentionWeights"/>) into a student whose mixers are <c>hedgehog_attention</c> at the same
/// keys: q, k, v and the output projection are copied, the feature maps start as the identity per head. Stage 2: that
/// student into one whose mixers are <c>linear_mamba</c>: x ← v, B ← k, C ← q (in_proj rows), out_proj ← proj,
/// feature_map_b ← feature_map_k, feature_map_c ← feature_map_q, the conv the identity (last tap 1, bias 0), dt = 1
/// (dt rows 0, dt_bias = inv_softplus(1)), A = −1e-4, D = 0, so it starts computing the stage-1 attention. Every
/// other student tensor is copied from the tensor of the same key and shape (embeddings, norms, MLPs, head) or, if
/// there is none, kept as constructed; the <see cref="SurgeryReport"/> lists each. The student is changed in place.
/// </summary>
public static class StudentSurgery
{
    /// <summary>Key suffix that marks a <c>hedgehog_attention</c> mixer in a state dict.</summary>
    public const string HedgehogMarker = "feature_map_q";
    /// <summary>Key suffix that marks a <c>linear_mamba</c> mixer in a state dict.</summary>
    public const string LinearMambaMarker = "feature_map_b";

    /// <summary>The key prefixes (<c>backbone.layers.0.mixer.</c>) of the mixers whose keys end in
    /// <paramref name="marker"/>, in state-dict order.</summary>
    public static IReadOnlyList<string> MixerPrefixes(IEnumerable<string> keys, string marker) =>
        keys.Where(k => k == marker || k.EndsWith("." + marker, StringComparison.Ordinal)).Select(k => k[..^marker.Length]).ToList();

    /// <summary>Stage 1 from a whole <c>.mix</c> teacher: each <c>hedgehog_attention</c> mixer of
    /// <paramref name="student"/> takes the <c>attention</c> mixer at the same key in <paramref name="teacher"/>; every
    /// other tensor is copied by key. An attention's weights do not show how its rows split into heads: pass the
    /// teacher's <paramref name="teacherHeads"/> to have the student's checked against it (else the student's count is
    /// assumed).</summary>
    public static SurgeryReport Stage1(nn.Module teacher, nn.Module student, int? teacherHeads = null) =>
        Stage1(teacher.state_dict(), student, teacherHeads);

    /// <summary>Stage 1 from a teacher state dict (see <see cref="Stage1(nn.Module, nn.Module, int?)"/>).</summary>
    public static SurgeryReport Stage1(IReadOnlyDictionary<string, Tensor> teacher, nn.Module student, int? teacherHeads = null)
    {
        var target = student.state_dict();
        var prefixes = MixerPrefixes(target.Keys, HedgehogMarker);
        if (prefixes.Count == 0) throw new ArgumentException("The student has no hedgehog_attention mixer (no key ending in 'feature_map_q').");
        var plan = new Plan(target, teacher);
        foreach (var p in prefixes)
        {
            int heads = teacherHeads ?? (int)target[p + HedgehogMarker].shape[0];
            plan.Hedgehog(p, AttentionWeights.FromMix(teacher, p, heads));
        }
        plan.CopyRest();
        return plan.Apply("stage 1: attention → hedgehog_attention");
    }

    /// <summary>Stage 1 for one attention block read from elsewhere (a Hugging Face GPT-NeoX or Llama layer): the
    /// <c>hedgehog_attention</c> mixer of <paramref name="student"/> at <paramref name="mixerPrefix"/> takes
    /// <paramref name="attention"/>; only that mixer's tensors change, and the report lists those.</summary>
    public static SurgeryReport Stage1(AttentionWeights attention, nn.Module student, string mixerPrefix)
    {
        var target = student.state_dict();
        if (!target.ContainsKey(mixerPrefix + HedgehogMarker))
            throw new ArgumentException($"The student has no hedgehog_attention mixer at '{mixerPrefix}' (no key '{mixerPrefix}{HedgehogMarker}').");
        var plan = new Plan(target, new Dictionary<string, Tensor>());
        plan.Hedgehog(mixerPrefix, attention);
        return plan.Apply($"stage 1: attention block → hedgehog_attention at '{mixerPrefix}'", onlyPrefix: mixerPrefix);
    }

    /// <summary>Stage 2: each <c>linear_mamba</c> mixer of <paramref name="student"/> takes the
    /// <c>hedgehog_attention</c> mixer at the same key in <paramref name="stage1"/>; every other tensor is copied by key.</summary>
    public static SurgeryReport Stage2(nn.Module stage1, nn.Module student, Stage2Init? init = null) => Stage2(stage1.state_dict(), student, init);

    /// <summary>Stage 2 from a stage-1 state dict (see <see cref="Stage2(nn.Module, nn.Module, Stage2Init?)"/>).</summary>
    public static SurgeryReport Stage2(IReadOnlyDictionary<string, Tensor> stage1, nn.Module student, Stage2Init? init = null)
    {
        init ??= new Stage2Init();
        var target = student.state_dict();
        var prefixes = MixerPrefixes(target.Keys, LinearMambaMarker);
        if (prefixes.Count == 0) throw new ArgumentException("The student has no linear_mamba mixer (no key ending in 'feature_map_b').");
        var plan = new Plan(target, stage1);
        foreach (var p in prefixes) plan.LinearMamba(p, init);
        plan.CopyRest();
        return plan.Apply("stage 2: hedgehog_attention → linear_mamba");
    }

    /// <summary>The values the student gets, key by key, built before anything is written, so a failed mapping
    /// leaves the student as it was.</summary>
    sealed class Plan
    {
        readonly Dictionary<string, Tensor> _target;
        readonly IReadOnlyDictionary<string, Tensor> _source;
        readonly Dictionary<string, Tensor> _values = new();
        readonly Dictionary<string, MappedTensor> _mapped = new();
        readonly Dictionary<string, NewTensor> _new = new();
        readonly HashSet<string> _used = new();

        public Plan(IReadOnlyDictionary<string, Tensor> target, IReadOnlyDictionary<string, Tensor> source)
        {
            _target = target.ToDictionary(kv => kv.Key, kv => kv.Value);
            _source = source;
        }

        public void Hedgehog(string p, AttentionWeights a)
        {
            var qkv = Target(p + "qkv.weight");
            if (qkv.shape[0] != 3 * a.Inner || qkv.shape[1] != a.Q.shape[1])
                throw new ArgumentException($"{p}qkv.weight is [{string.Join(", ", qkv.shape)}] but the attention's q, k, v make [{3 * a.Inner}, {a.Q.shape[1]}].");
            int heads = (int)Target(p + HedgehogMarker).shape[0];
            if (heads != a.Heads)
                throw new ArgumentException($"{p}: the student has {heads} heads, the attention {a.Heads}.");
            Map(p + "qkv.weight", torch.cat(new[] { a.Q, a.K, a.V }), $"{a.Sources["q"]}; {a.Sources["k"]}; {a.Sources["v"]}",
                "rows [q | k | v]");
            Bias(p + "qkv.bias", a.QBias is null ? null : torch.cat(new[] { a.QBias, a.KBias!, a.VBias! }), a.Sources.GetValueOrDefault("qkv bias"),
                "qkv_bias", "rows [q | k | v]");
            Map(p + "proj.weight", a.O, a.Sources["o"], "copied");
            Bias(p + "proj.bias", a.OBias, a.Sources.GetValueOrDefault("o bias"), "proj_bias", "copied");
            foreach (var f in new[] { "feature_map_q", "feature_map_k" })
                New(p + f, Identity(Target(p + f)), "identity per head: phi(x) = softmax([x, -x]) (linear_features: x)");
            foreach (var k in Sources(p, "qkv.weight", "qkv.bias", "proj.weight", "proj.bias")) _used.Add(k);
        }

        public void LinearMamba(string p, Stage2Init init)
        {
            var qkv = Source(p + "qkv.weight");
            long inner = qkv.shape[0] / 3;
            var inProj = Target(p + "in_proj.weight");
            long heads = inProj.shape[0] - 3 * inner;
            if (heads <= 0 || inProj.shape[1] != qkv.shape[1])
                throw new ArgumentException($"{p}in_proj.weight is [{string.Join(", ", inProj.shape)}] but {p}qkv.weight of the stage-1 model is " +
                                            $"[{string.Join(", ", qkv.shape)}]: the students must have the same width and heads.");
            var (q, k, v) = Thirds(qkv);
            Map(p + "in_proj.weight", torch.cat(new[] { v, k, q, torch.zeros(heads, qkv.shape[1], dtype: qkv.dtype) }), p + "qkv.weight",
                $"rows [x | B | C | dt] = [v | k | q | 0]: x from the values, B from the keys, C from the queries; dt rows zero so dt = softplus(dt_bias)");
            if (_target.ContainsKey(p + "in_proj.bias"))
            {
                if (_source.TryGetValue(p + "qkv.bias", out var qb))
                {
                    var (bq, bk, bv) = Thirds(qb);
                    Map(p + "in_proj.bias", torch.cat(new[] { bv, bk, bq, torch.zeros(heads, dtype: qb.dtype) }), p + "qkv.bias", "rows [v | k | q | 0]");
                }
                else New(p + "in_proj.bias", torch.zeros_like(Target(p + "in_proj.bias")), "zeros (the stage-1 mixer has no qkv bias)");
            }
            else if (_source.ContainsKey(p + "qkv.bias"))
                throw new ArgumentException($"{p}: the stage-1 mixer has a qkv bias but the student's in_proj has none: build it with bias = true.");
            Map(p + "out_proj.weight", Source(p + "proj.weight"), p + "proj.weight", "copied");
            if (_target.ContainsKey(p + "out_proj.bias"))
            {
                if (_source.TryGetValue(p + "proj.bias", out var ob)) Map(p + "out_proj.bias", ob, p + "proj.bias", "copied");
                else New(p + "out_proj.bias", torch.zeros_like(Target(p + "out_proj.bias")), "zeros (the stage-1 mixer has no proj bias)");
            }
            else if (_source.ContainsKey(p + "proj.bias"))
                throw new ArgumentException($"{p}: the stage-1 mixer has a proj bias but the student's out_proj has none: build it with bias = true.");
            Map(p + "feature_map_b", Source(p + "feature_map_k"), p + "feature_map_k", "the key feature map drives B");
            Map(p + "feature_map_c", Source(p + "feature_map_q"), p + "feature_map_q", "the query feature map drives C");
            var conv = Target(p + "conv1d.weight");
            var identity = torch.zeros_like(conv);
            identity.select(-1, conv.shape[^1] - 1).fill_(1.0);
            New(p + "conv1d.weight", identity, "identity: last tap 1, others 0 (the conv passes x, B, C through)");
            if (_target.ContainsKey(p + "conv1d.bias")) New(p + "conv1d.bias", torch.zeros_like(Target(p + "conv1d.bias")), "zeros");
            double dtBias = init.TimeStep + Math.Log(1 - Math.Exp(-init.TimeStep));
            New(p + "dt_bias", torch.full_like(Target(p + "dt_bias"), dtBias), $"inv_softplus({init.TimeStep}) = {dtBias:G6}: dt = {init.TimeStep}");
            New(p + "A_log", torch.full_like(Target(p + "A_log"), Math.Log(init.DecayRate)), $"log({init.DecayRate}): A = -{init.DecayRate}, almost no decay");
            New(p + "D", torch.zeros_like(Target(p + "D")), "zeros (no skip, as the attention)");
            foreach (var key in Sources(p, "qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "feature_map_q", "feature_map_k")) _used.Add(key);
            foreach (var key in _target.Keys.Where(t => t.StartsWith(p, StringComparison.Ordinal) && !_values.ContainsKey(t)))
                throw new ArgumentException($"The stage-2 surgery has no rule for '{key}' (not a linear_mamba key this version knows).");
        }

        public void CopyRest()
        {
            foreach (var (key, t) in _target)
            {
                if (_values.ContainsKey(key)) continue;
                if (_source.TryGetValue(key, out var s))
                {
                    if (!s.shape.SequenceEqual(t.shape))
                        throw new ArgumentException($"'{key}' is [{string.Join(", ", t.shape)}] in the student but [{string.Join(", ", s.shape)}] in the source.");
                    Map(key, s, key, "copied");
                    _used.Add(key);
                }
                else _new[key] = new NewTensor(key, t.shape, "as constructed (no source tensor of this key)");
            }
        }

        public SurgeryReport Apply(string step, string? onlyPrefix = null)
        {
            using (torch.no_grad())
                foreach (var (key, value) in _values)
                    _target[key].copy_(value.to(_target[key].dtype).to(_target[key].device));
            bool Listed(string key) => onlyPrefix is null || key.StartsWith(onlyPrefix, StringComparison.Ordinal);
            var order = _target.Keys.Where(Listed).ToList();
            return new SurgeryReport(step,
                order.Where(_mapped.ContainsKey).Select(k => _mapped[k]).ToList(),
                order.Where(_new.ContainsKey).Select(k => _new[k]).ToList(),
                _source.Keys.Where(k => !_used.Contains(k)).ToList());
        }

        IEnumerable<string> Sources(string p, params string[] names) => names.Select(n => p + n).Where(_source.ContainsKey);

        Tensor Target(string key) => _target.TryGetValue(key, out var t) ? t
            : throw new ArgumentException($"The student has no tensor '{key}'.");

        Tensor Source(string key) => _source.TryGetValue(key, out var t) ? t
            : throw new ArgumentException($"The source model has no tensor '{key}' (the student has a mixer there).");

        void Map(string key, Tensor value, string source, string rule)
        {
            var t = Target(key);
            if (!value.shape.SequenceEqual(t.shape))
                throw new ArgumentException($"'{key}' is [{string.Join(", ", t.shape)}] in the student but its source ({source}) gives [{string.Join(", ", value.shape)}].");
            _values[key] = value.detach();
            _mapped[key] = new MappedTensor(key, t.shape, source, rule);
        }

        void New(string key, Tensor value, string init)
        {
            _values[key] = value;
            _new[key] = new NewTensor(key, Target(key).shape, init);
        }

        void Bias(string key, Tensor? value, string? source, string flag, string rule)
        {
            bool has = _target.ContainsKey(key);
            if (value is null && has) New(key, torch.zeros_like(_target[key]), "zeros (the attention has no bias here)");
            else if (value is not null && !has)
                throw new ArgumentException($"The attention has a bias for '{key}' but the student has none: build the student with {flag} = true.");
            else if (value is not null) Map(key, value, source!, rule);
        }

        static Tensor Identity(Tensor featureMap)
        {
            long heads = featureMap.shape[0], d = featureMap.shape[1];
            return torch.eye(d, featureMap.shape[2], dtype: featureMap.dtype).unsqueeze(0).expand(heads, d, featureMap.shape[2]).clone();
        }

        static (Tensor Q, Tensor K, Tensor V) Thirds(Tensor t)
        {
            var parts = t.chunk(3, 0);
            return (parts[0], parts[1], parts[2]);
        }
    }
}
