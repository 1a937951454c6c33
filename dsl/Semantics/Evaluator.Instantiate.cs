using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

internal sealed partial class Evaluator
{
    internal Dictionary<MixFile, FileContext> Contexts { get; } = new();

    string RecursionMessage(UserCallable u) =>
        $"{u.Name} uses itself ({string.Join(" → ", _active.SkipWhile(a => a != u).Select(a => a.Name).Concat(new[] { u.Name }))}); definitions cannot be recursive";

    /// <summary>Instances (by key) that nested too deep, with the most room they had when they did.</summary>
    readonly Dictionary<string, int> _tooDeepWithRoom = new();
    int _tooDeepReports;

    void ReportTooDeep(Frame caller, TextSpan callSpan)
    {
        _tooDeepReports++;
        Report(caller, callSpan, DiagnosticIds.TooLarge, $"layers nest more than {MaxInstantiationDepth} deep");
    }

    FileContext ContextOf(MixFile file, FileContext fallback) => Contexts.TryGetValue(file, out var c) ? c : fallback;

    /// <summary>
    /// Applies a user definition to tensors: binds parameters (arguments, then defaults), matches the inputs against
    /// the signature (binding shape symbols such as H and W), runs the body and checks the result against the
    /// declared output.
    /// </summary>
    Value Instantiate(UserCallable u, IReadOnlyDictionary<string, Value> args, IReadOnlyList<Value> inputs, LayerNode node,
        TextSpan callSpan, Frame caller)
    {
        var file = ContextOf(u.File, caller.File);
        if (_active.Contains(u))
        {
            Report(caller, callSpan, DiagnosticIds.Recursion, RecursionMessage(u));
            return UnknownValue.Instance;
        }
        var key = Reusable(u, node) ? InstanceKey(u, args, inputs) : null;
        // An instance that went too deep with this much room left goes too deep with less: say so here, at once,
        // instead of walking down again (a chain of 800 definitions each using the previous one was quadratic).
        int room = MaxInstantiationDepth - _active.Count;
        if (room <= 0 || key is not null && _tooDeepWithRoom.TryGetValue(key, out var failedWith) && room <= failedWith)
        {
            ReportTooDeep(caller, callSpan);
            return UnknownValue.Instance;
        }
        if (key is not null && TryReuse(key, node, out var reused)) return reused;
        int start = _active.Count, reports = _diagnostics.Items.Count, deepest = _deepest, tooDeep = _tooDeepReports;
        _deepest = start + 1;
        var result = InstantiateBody(u, args, inputs, node, callSpan, caller, file);
        if (key is not null && _tooDeepReports > tooDeep) _tooDeepWithRoom[key] = System.Math.Max(room, _tooDeepWithRoom.TryGetValue(key, out var r) ? r : 0);
        var depth = _deepest - start;
        _deepest = System.Math.Max(deepest, _deepest);
        // Past the step budget a result is not a real evaluation (and MIX0406 is reported only once per file).
        if (key is not null && _diagnostics.Items.Count == reports && _steps <= _budget) Remember(key, node, result, depth);
        return result;
    }

    Value InstantiateBody(UserCallable u, IReadOnlyDictionary<string, Value> args, IReadOnlyList<Value> inputs, LayerNode node,
        TextSpan callSpan, Frame caller, FileContext file)
    {
        _active.Add(u);
        _deepest = System.Math.Max(_deepest, _active.Count);
        try
        {
            var scope = BindParameters(u, args, file, callSpan, caller);
            if (scope is null) return UnknownValue.Instance;
            var frame = new Frame(file, scope, node, !node.Expanded);
            node.Expanded = true;

            if (u.Definition.Alias is Expr alias)
            {
                var v = Eval(alias, frame);
                if (v is not FactoryValue fv || !fv.IsComplete)
                {
                    if (v is not UnknownValue)
                        Report(file, alias.Span, DiagnosticIds.WrongKind, $"'{u.Name} = ...' must name a complete layer; found {Describe(v)}");
                    return UnknownValue.Instance;
                }
                // The alias is this layer: its weights are this node's (no extra key segment).
                if (fv.Callable is BuiltinCallable b)
                {
                    var call = new BuiltinCall(b, fv.Args, System.Array.Empty<Value>(), frame.CreatesChildren ? node : null, (d, m) => Report(file, alias.Span, d, m));
                    b.Validate?.Invoke(call);
                    b.Weights?.Invoke(call);
                }
                node.Expanded = !frame.CreatesChildren;
                return ApplyLayer(new LayerValue(fv, node), inputs, alias.Span, frame);
            }

            var sig = u.Definition.Signature;
            if (sig is null) return UnknownValue.Instance; // reported by the definition check
            if (!MatchInputs(u, sig, inputs, frame, callSpan, caller)) return UnknownValue.Instance;
            if (u.IsExternal) return ExternalOutput(sig, frame);
            EnterMixerBody(u, sig, inputs, frame);

            var ret = RunStatements(u.Definition.Body ?? System.Array.Empty<Statement>(), frame);
            Value result;
            TextSpan resultSpan;
            if (ret is Returned r)
            {
                result = r.Value;
                resultSpan = r.Span;
            }
            else
            {
                if (frame.HadError) return UnknownValue.Instance;
                if (frame.DeclaredLayers.Count == 0)
                {
                    if (Broken.Contains(u.Definition)) return UnknownValue.Instance;
                    Report(file, u.Definition.Name.Span, DiagnosticIds.MissingReturn,
                        $"{u.Name} neither returns a value nor declares layers to run in order; add `return ...`");
                    return UnknownValue.Instance;
                }
                result = RunPipeline(frame, inputs, callSpan);
                resultSpan = u.Definition.Name.Span;
            }
            ResolveTies(frame);
            if (!Broken.Contains(u.Definition))
            {
                WarnUnused(frame, ret is not null);
                WarnStaleStates(frame);
            }
            return CheckOutput(u, sig, result, frame, resultSpan);
        }
        finally
        {
            _active.RemoveAt(_active.Count - 1);
        }
    }

    /// <summary>A C# mixer's output: its declared output shape with the symbols its inputs bound.</summary>
    Value ExternalOutput(Signature sig, Frame frame)
    {
        var f = frame.WithScope(frame.Scope);
        f.FreeSymbols = FreeSymbols.Symbol;
        var dims = sig.Output.Dims.Select(d => Eval(d, f) is IntValue iv ? iv.Dim : Dim.Symbol("?")).ToList();
        return new TensorValue(new Shape(dims, sig.Output.ElementType ?? "float"));
    }

    void WarnUnused(Frame frame, bool hasReturn)
    {
        if (!hasReturn || !frame.CreatesChildren) return;
        foreach (var (name, layer) in frame.DeclaredLayers)
        {
            // An identity is how a configuration leaves a layer out (`ff4 = if level >= 4 then ... else identity`): never
            // applying it is the point, and it has no weights.
            if (!layer.Node.Used && !layer.Node.KeptUnused && !layer.Node.Children.Any(c => c.Used) && layer.Node.Kind != "identity")
                Report(frame, name.Span, DiagnosticIds.UnusedLayer, $"layer '{name.Name}' is declared but never applied; its weights would load but do nothing");
        }
    }

    Scope? BindParameters(UserCallable u, IReadOnlyDictionary<string, Value> args, FileContext file, TextSpan callSpan, Frame caller)
    {
        var scope = new Scope(null);
        var paramFrame = new Frame(file, scope, null, false);
        foreach (var p in u.Params)
        {
            if (args.TryGetValue(p.Name, out var v)) { scope.Set(p.Name, v); continue; }
            if (p.DefaultExpr is not null)
            {
                var d = Eval(p.DefaultExpr, paramFrame);
                if (!Conforms(d, p.Type))
                {
                    Report(file, p.DefaultExpr.Span, DiagnosticIds.WrongType, $"the default of '{p.Name}' must be {p.Type}; found {Describe(d)}");
                    d = UnknownValue.Instance;
                }
                scope.Set(p.Name, d);
                continue;
            }
            if (p.IsImplicitDim || p.Required)
            {
                Report(caller, callSpan, DiagnosticIds.MissingArgument,
                    p.IsImplicitDim ? $"mixer {u.Name} needs dim: instantiate it as `name = value(dim)`"
                                    : $"{u.Name} needs '{p.Name}' ({p.Type})");
                return null;
            }
            scope.Set(p.Name, p.Default ?? NoneValue.Instance);
        }
        return scope;
    }

    bool MatchInputs(UserCallable u, Signature sig, IReadOnlyList<Value> inputs, Frame frame, TextSpan callSpan, Frame caller)
    {
        if (inputs.Count != sig.Inputs.Count)
        {
            Report(caller, callSpan, DiagnosticIds.NotApplicable,
                $"{u.Name} takes {sig.Inputs.Count} tensor(s) ({string.Join(", ", sig.Inputs.Select(i => i.Name.Name))}); got {inputs.Count}");
            return false;
        }
        var bindings = new Dictionary<string, Dim>();
        for (int i = 0; i < inputs.Count; i++)
        {
            var decl = sig.Inputs[i];
            if (inputs[i] is not TensorValue t)
            {
                frame.Scope.Set(decl.Name.Name, UnknownValue.Instance);
                foreach (var d in decl.Shape.Dims) if (d is NameExpr n && IsShapeSymbol(n.Name) && !frame.Scope.TryGet(n.Name, out _)) bindings[n.Name] = Dim.Symbol("?" + n.Name);
                continue;
            }
            var actual = t.Shape;
            var pattern = decl.Shape;
            if (pattern.Dims.Count != actual.Rank)
            {
                Report(caller, callSpan, DiagnosticIds.InputShapeMismatch,
                    $"{u.Name} expects {decl.Name.Name}: {PatternText(frame, pattern)} (rank {pattern.Dims.Count}) but got {actual} (rank {actual.Rank})");
                return false;
            }
            if (pattern.ElementType is string et && et != actual.ElementType && !(IsInteger(et) && IsInteger(actual.ElementType)))
            {
                Report(caller, callSpan, DiagnosticIds.DtypeMismatch, $"{u.Name} expects {decl.Name.Name} of {et} but got {actual}");
                return false;
            }
            // Bare symbols bind first, so that H/4 can then be solved against a known H.
            var order = Enumerable.Range(0, pattern.Dims.Count)
                .OrderBy(k => pattern.Dims[k] is NameExpr n && IsShapeSymbol(n.Name) ? 0 : 1).ToList();
            foreach (var k in order)
            {
                if (!UnifyDim(pattern.Dims[k], actual.Dims[k], bindings, frame, out var expected))
                {
                    Report(caller, callSpan, DiagnosticIds.InputShapeMismatch,
                        $"{u.Name} expects {decl.Name.Name}: {PatternText(frame, pattern)} but got {actual}: axis {k} should be {expected}, not {actual.Dims[k]}");
                    return false;
                }
            }
            frame.Scope.Set(decl.Name.Name, t);
        }
        foreach (var kv in bindings) frame.Scope.Set(kv.Key, new IntValue(kv.Value));
        return true;
    }

    static bool IsInteger(string et) => et is "long" or "int";

    /// <summary>Matches one signature dimension against an actual one, solving for a single unbound symbol.</summary>
    bool UnifyDim(Expr pattern, Dim actual, Dictionary<string, Dim> bindings, Frame frame, out Dim expected)
    {
        expected = actual;
        if (pattern is NameExpr n && IsShapeSymbol(n.Name) && !frame.Scope.TryGet(n.Name, out _) && FindCallable(frame.File, n.Name) is null)
        {
            if (bindings.TryGetValue(n.Name, out var b))
            {
                expected = b;
                return Shape.Compatible(b, actual);
            }
            bindings[n.Name] = actual;
            return true;
        }
        var v = EvalPattern(pattern, frame, bindings);
        if (v is not IntValue iv) return true;
        var dim = iv.Dim;
        var holes = dim.Symbols.Where(s => s.StartsWith("$", System.StringComparison.Ordinal)).ToList();
        if (holes.Count == 0)
        {
            expected = dim;
            return Shape.Compatible(dim, actual);
        }
        if (holes.Count == 1 && dim.TryLinearIn(holes[0], out var coef, out var rest))
        {
            var solved = (actual - rest).DivideBy(Dim.Const(coef));
            if (solved is not null) bindings[holes[0].Substring(1)] = solved;
        }
        return true;
    }

    Value EvalPattern(Expr e, Frame frame, Dictionary<string, Dim> bindings)
    {
        var scope = new Scope(frame.Scope);
        foreach (var kv in bindings) scope.Set(kv.Key, new IntValue(kv.Value));
        var f = frame.WithScope(scope);
        f.FreeSymbols = FreeSymbols.Placeholder;
        return Eval(e, f);
    }

    string PatternText(Frame frame, ShapeRef pattern) => frame.File.Source.Slice(pattern.Span).Trim();

    Value CheckOutput(UserCallable u, Signature sig, Value result, Frame frame, TextSpan resultSpan)
    {
        if (result is UnknownValue) return result;
        if (result is not TensorValue t)
        {
            Report(frame, resultSpan, DiagnosticIds.WrongKind, $"{u.Name} must return a tensor {PatternText(frame, sig.Output)}; found {Describe(result)}");
            return UnknownValue.Instance;
        }
        var pattern = sig.Output;
        if (pattern.Dims.Count != t.Shape.Rank)
        {
            Report(frame, resultSpan, DiagnosticIds.OutputShapeMismatch,
                $"{u.Name} returns {t.Shape} but its signature says {PatternText(frame, pattern)} (rank {pattern.Dims.Count})");
            return t;
        }
        var bindings = new Dictionary<string, Dim>();
        for (int k = 0; k < pattern.Dims.Count; k++)
        {
            if (!UnifyDim(pattern.Dims[k], t.Shape.Dims[k], bindings, frame, out var expected))
            {
                Report(frame, resultSpan, DiagnosticIds.OutputShapeMismatch,
                    $"{u.Name} returns {t.Shape} but its signature says {PatternText(frame, pattern)}: axis {k} should be {expected}, not {t.Shape.Dims[k]}");
                return t;
            }
        }
        var declared = pattern.ElementType ?? "float";
        if ((declared == "complex") != (t.Shape.ElementType == "complex"))
            Report(frame, resultSpan, DiagnosticIds.DtypeMismatch,
                $"{u.Name} returns {t.Shape} but its signature says {PatternText(frame, pattern)}: {(declared == "complex" ? "complex values are declared" : "declare complex values as complex[...]")}");
        return t;
    }
}
