using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

internal sealed partial class Evaluator
{
    sealed record EvaluatedArg(Argument Syntax, string? Name, Value Value, TextSpan Span);

    Value EvalCall(CallExpr call, Frame f, Value? pipeInput)
    {
        if (TryMathCall(call, f, pipeInput) is Value math) return math;
        var args = new List<EvaluatedArg>();
        if (pipeInput is not null) args.Add(new EvaluatedArg(null!, null, pipeInput, call.Span));
        foreach (var a in call.Args) args.Add(new EvaluatedArg(a, a.Name, Eval(a.Value, f), a.Span));

        // A definition called by name configures it; anything else (a parameter, a layer) is applied or completed.
        bool byName = call.Callee is NameExpr ne && !f.Scope.TryGet(ne.Name, out _) && FindCallable(f.File, ne.Name) is not null;
        var callee = Eval(call.Callee, f);
        if (callee is UnknownValue) return UnknownValue.Instance;
        // An argument derived from an error (reported already) makes the call's result unknown, silently: a layer
        // applied to it counts as used, and nothing about this call is a new mistake.
        if (args.Any(a => a.Value is UnknownValue))
        {
            MarkUsed(callee);
            return UnknownValue.Instance;
        }

        // Leading tensors are the inputs; a piped value always is one (even when unknown after an error).
        var tensors = args.TakeWhile((a, i) => a.Name is null && (a.Value is TensorValue || (i == 0 && pipeInput is not null))).ToList();
        var rest = args.Skip(tensors.Count).ToList();

        if (callee is FactoryValue factory)
        {
            if (factory.Callable.Kind == CallableKind.Function)
            {
                var bound = Bind(factory, rest, f, call, byName: true, skipTensorParams: true);
                if (bound is null) return UnknownValue.Instance;
                var fn = (BuiltinCallable)factory.Callable;
                if (tensors.Count < fn.TensorParams)
                {
                    if (tensors.Count == 0 && fn.TensorParams == 1) return bound; // partial: x |> transpose(1, 2)
                    Report(f, call.Span, DiagnosticIds.MissingArgument, $"{fn.Name} needs {fn.TensorParams} tensor argument(s); got {tensors.Count}");
                    return UnknownValue.Instance;
                }
                if (tensors.Count > fn.TensorParams && fn.TensorParams > 0)
                {
                    var named = fn.Params.Where(p => p.Type.Kind == TypeKind.Tensor && p.Type.IsOptional).Select(p => p.Name).ToList();
                    Report(f, tensors[fn.TensorParams].Span, DiagnosticIds.TooManyArguments, $"{fn.Name} takes {fn.TensorParams} tensor argument(s); got {tensors.Count}"
                        + (named.Count > 0 ? $" (pass the optional tensors by name: {string.Join(", ", named.Select(n => n + " = ..."))})" : ""));
                    return UnknownValue.Instance;
                }
                return CallFunction(fn, bound, tensors.Select(t => t.Value).ToList(), f, call.Span);
            }
            var configured = Bind(factory, rest, f, call, byName, skipTensorParams: false);
            if (configured is null) return UnknownValue.Instance;
            if (tensors.Count == 0) return configured;
            return ApplyAnonymous(configured, tensors.Select(t => t.Value).ToList(), call.Callee.Span, call.Span, f);
        }

        if (rest.Count > 0)
        {
            Report(f, rest[0].Span, DiagnosticIds.NotApplicable,
                callee is LayerValue lv ? $"layer '{lv.Node.Name}' takes tensors; it is already configured (found {Describe(rest[0].Value)})"
                                        : $"{Describe(callee)} cannot be called");
            return UnknownValue.Instance;
        }
        return ApplyValue(callee, tensors.Select(t => t.Value).ToList(), call.Callee.Span, call.Span, f);
    }

    static void MarkUsed(Value callee)
    {
        switch (callee)
        {
            case LayerValue layer: layer.Node.Used = true; break;
            case ArrayValue arr:
                foreach (var item in arr.Items ?? (arr.Element is null ? System.Array.Empty<Value>() : new[] { arr.Element })) MarkUsed(item);
                break;
        }
    }

    /// <summary>Applies a value to tensors: a layer, a sequence of layers, a partial function or a weightless factory.</summary>
    Value ApplyValue(Value callee, IReadOnlyList<Value> inputs, TextSpan calleeSpan, TextSpan span, Frame f)
    {
        switch (callee)
        {
            case UnknownValue: return UnknownValue.Instance;
            case LayerValue layer: return ApplyLayer(layer, inputs, span, f);
            case ArrayValue arr: return ApplySequence(arr, inputs, span, f);
            case FactoryValue { Callable: BuiltinCallable { Kind: CallableKind.Function } fn } partial:
                return CallFunction(fn, partial, inputs, f, span);
            case FactoryValue factory: return ApplyAnonymous(factory, inputs, calleeSpan, span, f);
        }
        Report(f, calleeSpan, DiagnosticIds.NotApplicable, $"{Describe(callee)} cannot be applied to a tensor");
        return UnknownValue.Instance;
    }

    Value CallFunction(BuiltinCallable fn, FactoryValue bound, IReadOnlyList<Value> tensors, Frame f, TextSpan span)
    {
        if (fn.BindsAll) return CallBindsAll(fn, bound, tensors, f, span);
        if (tensors.Any(t => t is UnknownValue)) return UnknownValue.Instance;
        if (tensors.Count < fn.TensorParams)
        {
            Report(f, span, DiagnosticIds.MissingArgument, $"{fn.Name} needs {fn.TensorParams} tensor argument(s)");
            return UnknownValue.Instance;
        }
        var missing = bound.Missing.Where(p => p.Type.Kind != TypeKind.Tensor).ToList();
        if (missing.Count > 0)
        {
            Report(f, span, DiagnosticIds.MissingArgument, $"{fn.Name} needs {string.Join(", ", missing.Select(m => m.Name))}");
            return UnknownValue.Instance;
        }
        var call = new BuiltinCall(fn, bound.Args, tensors, null, (d, m) => Report(f, span, d, m));
        var result = fn.Apply!(call);
        if (fn.Name == "causal_attention") CausalAttentionUsed(result, f, span);
        return result;
    }

    Value ApplySequence(ArrayValue arr, IReadOnlyList<Value> inputs, TextSpan span, Frame f)
    {
        if (inputs.Count != 1)
        {
            Report(f, span, DiagnosticIds.NotApplicable, $"a sequence of layers takes one tensor; got {inputs.Count}");
            return UnknownValue.Instance;
        }
        var x = inputs[0];
        var items = arr.Items ?? (arr.Element is null ? new List<Value>() : new List<Value> { arr.Element });
        bool first = true;
        foreach (var item in items)
        {
            var input = x;
            x = ApplyValue(item, new[] { x }, span, span, f);
            if (first && arr.RepeatSpan is TextSpan rs && input is TensorValue ti && x is TensorValue to && !ti.Shape.CompatibleWith(to.Shape))
            {
                Report(f, rs, DiagnosticIds.RepeatChangesShape,
                    $"repeated layers run one after another, so each must keep its shape; this one maps {ti.Shape} to {to.Shape}");
                return UnknownValue.Instance;
            }
            first = false;
            if (x is UnknownValue) return x;
        }
        return x;
    }

    /// <summary><c>gelu(x)</c>, <c>dropout(0.1)(x)</c>: allowed for weightless layers only (weights need a name).</summary>
    Value ApplyAnonymous(FactoryValue factory, IReadOnlyList<Value> inputs, TextSpan calleeSpan, TextSpan span, Frame f)
    {
        var c = factory.Callable;
        if (!factory.IsComplete)
        {
            var missing = string.Join(", ", factory.Missing.Select(p => p.Name));
            Report(f, calleeSpan, DiagnosticIds.MissingArgument,
                c.HasImplicitDim && factory.Missing.Any(p => p.IsImplicitDim)
                    ? $"{c.KindName} {c.Name} needs its dim before it can be applied: declare it as a layer, e.g. `{c.Name.ToLowerInvariant()}_layer = ...(dim)`"
                    : $"{c.Name} is missing {missing}");
            return UnknownValue.Instance;
        }
        if (c is not BuiltinCallable b || BuiltinCatalog.FactoryHasWeights(factory, null))
        {
            Report(f, calleeSpan, DiagnosticIds.NotApplicable,
                $"{c.Name} has weights, so it needs a name (its state-dict key): declare it first, e.g. `{Suggest(c.Name)} = {c.Name}(...)`, then apply `{Suggest(c.Name)}(x)`");
            return UnknownValue.Instance;
        }
        var node = new LayerNode(c.Name, null, c.Name);
        var call = new BuiltinCall(b, factory.Args, inputs, node, (d, m) => Report(f, span, d, m));
        b.Validate?.Invoke(call);
        return b.Apply is null ? UnknownValue.Instance : b.Apply(call);
    }

    static string Suggest(string name) => name switch { "starrelu" => "act", "linear" => "fc", _ => name + "1" };

    /// <summary>
    /// Binds call arguments. A definition called by name binds positional arguments to its explicit parameters
    /// (not the implicit <c>dim</c>); a configured value binds them to its still-unbound parameters in order.
    /// </summary>
    FactoryValue? Bind(FactoryValue factory, List<EvaluatedArg> args, Frame f, CallExpr call, bool byName, bool skipTensorParams)
    {
        var c = factory.Callable;
        var result = factory.Args.ToMutable();
        var positional = (byName ? c.ExplicitParams : c.Params)
            .Where(p => !factory.Args.ContainsKey(p.Name))
            .Where(p => !(skipTensorParams && p.Type.Kind == TypeKind.Tensor && !p.Type.IsArray))
            .ToList();
        int next = 0;
        bool ok = true;
        bool seenNamed = false;
        foreach (var a in args)
        {
            ParamSpec? p;
            if (a.Name is null)
            {
                if (seenNamed)
                {
                    Report(f, a.Span, DiagnosticIds.SyntaxError, "positional arguments must come before named ones");
                    ok = false;
                    continue;
                }
                if (next >= positional.Count)
                {
                    Report(f, a.Span, DiagnosticIds.TooManyArguments,
                        $"{c.Name} takes {positional.Count + next - positional.Count} more positional argument(s) here; " +
                        (positional.Count == 0 ? "it has no parameter left to bind" : $"parameters: {string.Join(", ", positional.Select(q => q.Name))}"));
                    ok = false;
                    continue;
                }
                p = positional[next++];
            }
            else
            {
                seenNamed = true;
                p = c.FindParam(a.Name);
                if (p is null)
                {
                    var best = Suggestions.Closest(a.Name, c.Params.Select(q => q.Name));
                    Report(f, a.Syntax.NameSpan, DiagnosticIds.UnknownArgument,
                        $"{c.Name} has no parameter '{a.Name}'{(best is null ? $"; its parameters are {string.Join(", ", c.Params.Select(q => q.Name))}" : $"; did you mean '{best}'?")}");
                    ok = false;
                    continue;
                }
            }
            if (result.ContainsKey(p.Name) && (a.Name is not null))
            {
                Report(f, a.Span, DiagnosticIds.DuplicateArgument, $"'{p.Name}' of {c.Name} is given twice");
                ok = false;
                continue;
            }
            if (!CheckArgType(p, a.Value, a.Span, c, f)) { ok = false; continue; }
            result[p.Name] = a.Value;
        }
        return ok ? new FactoryValue(c, result) : null;
    }

    bool CheckArgType(ParamSpec p, Value v, TextSpan span, Callable c, Frame f)
    {
        if (!Conforms(v, p.Type))
        {
            var hint = p.Type.Kind switch
            {
                TypeKind.Mixer => " (a mixer such as pool(3), sepconv() or attention())",
                TypeKind.Norm => " (a norm such as layernorm or groupnorm1)",
                TypeKind.Act => " (an activation such as gelu or starrelu)",
                _ => "",
            };
            Report(f, span, DiagnosticIds.WrongType, $"'{p.Name}' of {c.Name} expects {p.Type}{hint}; found {Describe(v)}");
            return false;
        }
        if (p.Type.Kind == TypeKind.Int && !p.Type.IsArray && v is IntValue iv && !iv.Dim.HasIntegerCoefficients && iv.Dim.IsConstant)
        {
            Report(f, span, DiagnosticIds.FractionalDimension, $"'{p.Name}' of {c.Name} must be whole; {iv.Dim} is a fraction (round it with int() or ceil())");
            return false;
        }
        // A shape or a list of sizes (param([dim / num_blocks]), reshape, split) is whole too.
        if (p.Type.Kind == TypeKind.Int && p.Type.IsArray && v.AsItems() is { } items
            && items.OfType<IntValue>().FirstOrDefault(i => !i.Dim.HasIntegerCoefficients && i.Dim.IsConstant) is { } fraction)
        {
            Report(f, span, DiagnosticIds.FractionalDimension, $"'{p.Name}' of {c.Name} must be whole numbers; {fraction.Dim} is a fraction (round it with int() or ceil())");
            return false;
        }
        return true;
    }
}
