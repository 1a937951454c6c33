using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

// Decoding state (`s = state([B, d, n])` in a mixer's body, updated by a later binding of `s`) and member access to a
// layer's weights (`conv1d.weight`), which lets a stateful mixer hand its layers' weights to a scan primitive.
internal sealed partial class Evaluator
{
    /// <summary>A declared state of the body being checked.</summary>
    internal sealed class StateInfo
    {
        public StateInfo(Identifier name, Shape shape) { Name = name; Shape = shape; }
        public Identifier Name { get; }
        public Shape Shape { get; }
        public bool Updated { get; set; }
    }

    /// <summary>Marks <paramref name="frame"/> as the body of a mixer whose first input is the first of <paramref name="inputs"/>; the
    /// sizes of its signature's shape symbols are what a state's non-batch axes may not depend on.</summary>
    void EnterMixerBody(UserCallable u, Signature sig, IReadOnlyList<Value> inputs, Frame frame)
    {
        if (u.Kind != CallableKind.Mixer || inputs.Count == 0 || inputs[0] is not TensorValue first) return;
        frame.MixerInput = first.Shape;
        foreach (var decl in sig.Inputs)
            foreach (var d in decl.Shape.Dims)
                if (d is NameExpr n && IsShapeSymbol(n.Name) && u.FindParam(n.Name) is null && frame.Scope.TryGet(n.Name, out var v) && v is IntValue iv)
                    foreach (var s in iv.Dim.Symbols) (frame.InputSymbols ??= new HashSet<string>()).Add(s);
    }

    /// <summary><c>name = state(...)</c>: checked against the mixer's input, then the name is a tensor of that shape.</summary>
    void BindState(BindingStatement b, StateDeclValue s, Frame f, Dictionary<string, TextSpan> layerNames)
    {
        var target = b.Targets[0];
        f.Scope.Set(target.Name, new TensorValue(s.Shape));
        if (f.MixerInput is not Shape input)
        {
            Report(f, b.Value.Span, DiagnosticIds.StateOutsideMixer,
                $"'{target.Name} = state(...)' declares decoding state, which only a mixer definition has (the inference cache gives each mixer a slot); move it into a `mixer`");
            return;
        }
        if (layerNames.ContainsKey(target.Name) || f.States?.ContainsKey(target.Name) == true)
        {
            Report(f, target.Span, DiagnosticIds.DuplicateLayer, $"'{target.Name}' is already declared in this body");
            return;
        }
        layerNames[target.Name] = target.Span;
        var items = b.Value is CallExpr { Args.Count: > 0 } call && call.Args[0].Value is ArrayExpr arr ? arr.Items : null;
        TextSpan At(int axis) => items is not null && axis < items.Count ? items[axis].Span : b.Value.Span;
        if (!Shape.Compatible(s.Shape[0], input[0]))
        {
            Report(f, At(0), DiagnosticIds.StateNotBatchFirst,
                $"a state is batch-first: its first axis must be the batch axis of the mixer's input {input}, i.e. {input[0]}; got {s.Shape[0]} in {s.Shape}");
            return;
        }
        for (int k = 1; k < s.Shape.Rank; k++)
        {
            var leak = f.InputSymbols is { } symbols ? s.Shape[k].Symbols.FirstOrDefault(symbols.Contains) : null;
            if (leak is not null)
            {
                Report(f, At(k), DiagnosticIds.StateNotBatchFirst,
                    $"axis {k} of state {s.Shape} depends on the input's size {leak}; a state's size per row is fixed by the mixer's parameters (the cache allocates it before any token)");
                return;
            }
        }
        (f.States ??= new Dictionary<string, StateInfo>())[target.Name] = new StateInfo(target, s.Shape);
    }

    /// <summary>A binding of a declared state's name is its update: the same shape and element type as declared.</summary>
    void CheckStateUpdate(Identifier target, Value value, Frame f)
    {
        if (f.States is null || !f.States.TryGetValue(target.Name, out var info)) return;
        info.Updated = true;
        if (value is UnknownValue) return;
        if (value is TensorValue t && t.Shape.CompatibleWith(info.Shape) && t.Shape.ElementType == info.Shape.ElementType) return;
        Report(f, target.Span, DiagnosticIds.StateShapeMismatch,
            value is TensorValue other
                ? $"state '{target.Name}' is declared {info.Shape} but is updated with {other.Shape}; an update keeps the declared shape and element type"
                : $"state '{target.Name}' is declared {info.Shape} but is updated with {Describe(value)}; an update is a tensor of the declared shape");
    }

    /// <summary>After the body: the layer's decoding cache is its states (fixed elements per row), and a state never
    /// updated would be carried unchanged by decoding.</summary>
    void WarnStaleStates(Frame frame)
    {
        if (!frame.CreatesChildren) return;
        if (frame.KeyValues is var (heads, headDim) && frame.Node is LayerNode kvNode)
            kvNode.Cache = new CacheFootprint("kv", Dim.Const(2) * heads * headDim, Dim.Const(0)) { HeadDim = headDim };
        else if (frame.States is { Count: > 0 } && frame.Node is LayerNode node)
        {
            var perRow = Dim.Const(0);
            foreach (var s in frame.States.Values)
            {
                var row = Dim.Const(1);
                for (int k = 1; k < s.Shape.Rank; k++) row = row * s.Shape[k];
                perRow = perRow + row;
            }
            node.Cache = new CacheFootprint("state", Dim.Const(0), perRow);
        }
        if (frame.States is null) return;
        foreach (var s in frame.States.Values)
            if (!s.Updated)
                Report(frame, s.Name.Span, DiagnosticIds.StateNeverUpdated,
                    $"state '{s.Name.Name}' is declared but never updated; rebind it to the final state of a scan (e.g. `y, {s.Name.Name} = ssd_scan(..., initial_state = {s.Name.Name})`)");
    }

    /// <summary><c>causal_attention</c> keeps keys and values across decoding steps: only in a mixer's body (whose
    /// layer then has a KV footprint of 2 · heads · head_dim elements per token).</summary>
    void CausalAttentionUsed(Value result, Frame f, TextSpan span)
    {
        if (f.MixerInput is null)
        {
            Report(f, span, DiagnosticIds.StateOutsideMixer,
                "causal_attention keeps its keys and values as decoding state, which only a mixer definition has (the inference cache gives each mixer a slot); call it in a `mixer`");
            return;
        }
        if (result is TensorValue { Shape.Rank: 4 } o) f.KeyValues = (o.Shape[1], o.Shape[3]);
    }

    /// <summary><c>layer.weight</c>: a weight of a layer of this body, as a tensor (<c>none</c> for an absent bias, as in PyTorch).</summary>
    Value EvalMember(MemberExpr m, Frame f)
    {
        var target = Eval(m.Target, f);
        if (target is UnknownValue) return target;
        if (target is not LayerValue layer)
        {
            Report(f, m.NameSpan, DiagnosticIds.WrongKind, $"'.{m.Name}' reads a weight of a layer; {Describe(target)} has none");
            return UnknownValue.Instance;
        }
        layer.Node.Used = true;
        var w = layer.Node.Weights.FirstOrDefault(x => x.Name == m.Name);
        if (w is not null) return new TensorValue(new Shape(w.Shape));
        if (m.Name == "bias") return NoneValue.Instance;
        var names = layer.Node.Weights.Select(x => x.Name).ToList();
        var best = Suggestions.Closest(m.Name, names);
        Report(f, m.NameSpan, DiagnosticIds.UnknownName,
            $"layer '{layer.Node.Name}' ({layer.Factory.Callable.Name}) has no weight '{m.Name}'" +
            (best is not null ? $"; did you mean '{best}'?" : names.Count > 0 ? $"; its weights are {string.Join(", ", names)}" : "; it has no weights of its own"));
        return UnknownValue.Instance;
    }
}
