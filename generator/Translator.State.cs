using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Generator;

// Decoding state in generated code: `s = state([B, d, n])` reads the mixer's slot (zeros outside a cache) with
// MixState.Read, the forward rebinds s like any local, and MixState.Write stores its final value before the return.
// The class lists its states for the cache (IStatefulMixer.States), with sizes from the options alone.
internal sealed partial class Translator
{
    readonly List<StateSpec> _states = new();
    /// <summary>While rendering a state's per-row sizes: shape symbols (input sizes) are not available there.</summary>
    bool _noShapeSymbols;

    void TranslateState(BindingStatement b, VState s, Scope scope, int line)
    {
        var name = b.Targets[0].Name;
        var shapeArg = s.Call.Args.FirstOrDefault(a => a.Name == "shape") ?? s.Call.Args.FirstOrDefault(a => a.Name is null);
        if (shapeArg?.Value is not ArrayExpr shape || shape.Items.Count < 2)
            throw new UnsupportedException(s.Call.Span, "the generator needs a state's shape written out, e.g. state([B, inner, d_state])");
        var batch = Code(Eval(shape.Items[0], scope), shape.Items[0].Span);
        var sizes = new List<string>();
        _noShapeSymbols = true;
        try
        {
            foreach (var item in shape.Items.Skip(1)) sizes.Add(Code(Eval(item, scope), item.Span));
        }
        finally
        {
            _noShapeSymbols = false;
        }
        var id = Names.Escape(name);
        var dims = string.Join(", ", new[] { batch }.Concat(sizes));
        _forward.Add(new CodeLine(line, $"var {id} = MixState.Read(this, {Names.Literal(name)}, {_deviceOf}, new long[] {{ {dims} }});"));
        _forwardLocals.Add(name);
        scope.Set(name, new VCode(id, GType.Tensor));
        _states.Add(new StateSpec(name, sizes.ToEquatableArray(), "ScalarType.Float32"));
    }

    /// <summary>Stores every state's final value (before the forward returns).</summary>
    void WriteStates(int line)
    {
        foreach (var s in _states)
            _forward.Add(new CodeLine(line, $"MixState.Write(this, {Names.Literal(s.Name)}, {Names.Escape(s.Name)});"));
    }

    /// <summary><c>conv1d.weight</c>: the layer's own parameter (null for an absent bias).</summary>
    V EvalMember(MemberExpr m, Scope scope)
    {
        if (Eval(m.Target, scope) is not VLayer { IsSequence: false } layer)
            throw new UnsupportedException(m.Span, "the generator reads weights of a layer declared in the body (conv1d.weight)");
        // A bias may be absent (bias = false): it reads as none then, as the checker types it.
        var get = m.Name == "bias" ? "GetOptional" : "Get";
        return new VCode($"MixWeights.{get}({layer.Field}, {Names.Literal(m.Name)})", GType.Tensor);
    }

    /// <summary>The conditions (<c>if causal then ...</c>) under which the expression being translated runs.</summary>
    readonly List<string> _guards = new();
    /// <summary>Where the forward calls causal_attention: the conjunction of its guards, one entry per call.</summary>
    readonly List<string> _kvCalls = new();

    /// <summary><c>causal_attention(q, k, v, scale)</c>: the mixer's KV slot while a cache decodes it.</summary>
    V CausalAttention(VFactory bound, List<V> tensors, TextSpan span)
    {
        _kvCalls.Add(_guards.Count == 0 ? "true" : string.Join(" && ", _guards));
        var args = tensors.Select(t => Code(t, span)).ToList();
        if (bound.Args.TryGetValue("scale", out var scale) && scale is not VCode { Type.Kind: "none" })
            args.Add("scale: " + Val(scale, GType.Float, span));
        if (bound.Args.TryGetValue("dropout_p", out var p)) args.Add("dropoutP: " + Val(p, GType.Float, span));
        return new VCode($"MixState.CausalAttention(this, {string.Join(", ", args)})", GType.Tensor);
    }

    /// <summary>C# of whether an instance calls causal_attention (so needs a KV slot), or null when it never does.</summary>
    string? KeyValuesCondition() =>
        _kvCalls.Count == 0 ? null : _kvCalls.Contains("true") ? "true"
        : _kvCalls.Distinct().Count() == 1 ? _kvCalls[0] : string.Join(" || ", _kvCalls.Distinct().Select(c => "(" + c + ")"));
}
