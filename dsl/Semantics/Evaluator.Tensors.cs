using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;

namespace Mix.Dsl.Semantics;

// Tensor math, parameters and buffers: calls of built-ins whose arguments all bind by parameter (tensors included),
// number forms of elementwise functions, tensor forms of number functions, and param/buffer with their init context.
internal sealed partial class Evaluator
{
    /// <summary>A call of a tensor-math built-in by name, or null when the call is not one (the general path runs).</summary>
    Value? TryMathCall(CallExpr call, Frame f, Value? pipeInput)
    {
        if (call.Callee is not NameExpr ne || f.Scope.TryGet(ne.Name, out _)) return null;
        if (FindCallable(f.File, ne.Name) is not BuiltinCallable fn || !(fn.BindsAll || fn.TakesInit || fn.TensorForm is not null)) return null;

        var args = new List<EvaluatedArg>();
        if (pipeInput is not null) args.Add(new EvaluatedArg(null!, null, pipeInput, call.Span));
        if (fn.TakesInit) EvalWeightArgs(call, f, args);
        else foreach (var a in call.Args) args.Add(new EvaluatedArg(a, a.Name, Eval(a.Value, f), a.Span));

        if (fn.TensorForm is { } tensorForm && args.Any(a => a.Value is TensorValue)) fn = tensorForm;
        if (!fn.BindsAll)
        {
            // A number function (sum(array), max(a, b)): its arguments bind as always.
            var plain = Bind(new FactoryValue(fn, new Dictionary<string, Value>()), args, f, call, byName: true, skipTensorParams: true);
            return plain is null ? UnknownValue.Instance : CallFunction(fn, plain, Array.Empty<Value>(), f, call.Span);
        }

        if (fn.Scalar is { } scalar && args.Count > 0 && args.All(a => a.Name is null && a.Value is IntValue or FloatValue)
            && args.Count == fn.Params.Count(p => p.Required))
        {
            var xs = args.Select(a => a.Value.AsDouble()).ToList();
            if (xs.Any(x => x is null)) return new FloatValue(null);
            var y = scalar(xs.Select(x => x!.Value).ToArray());
            if (double.IsNaN(y) || double.IsInfinity(y))
            {
                Report(f, call.Span, DiagnosticIds.OutOfRange, $"{fn.Name}({string.Join(", ", xs)}) is not a finite number");
                return UnknownValue.Instance;
            }
            return new FloatValue(y);
        }

        var bound = Bind(new FactoryValue(fn, new Dictionary<string, Value>()), args, f, call, byName: true, skipTensorParams: false);
        if (bound is null) return UnknownValue.Instance;
        if (!bound.IsComplete && !args.Any(a => a.Value is TensorValue) && bound.Missing.All(p => p.Type.Kind == TypeKind.Tensor))
            return bound; // partial, applied later: x |> cumsum(dim = 1)
        return CallBindsAll(fn, bound, Array.Empty<Value>(), f, call.Span);
    }

    /// <summary>A tensor-math built-in with its arguments bound; <paramref name="inputs"/> fill the first unbound parameters.</summary>
    Value CallBindsAll(BuiltinCallable fn, FactoryValue bound, IReadOnlyList<Value> inputs, Frame f, Text.TextSpan span)
    {
        var args = bound.Args.ToMutable();
        var free = fn.Params.Where(p => !args.ContainsKey(p.Name)).ToList();
        for (int i = 0; i < inputs.Count; i++)
        {
            if (i >= free.Count)
            {
                Report(f, span, DiagnosticIds.TooManyArguments, $"{fn.Name} takes no more tensors; got {inputs.Count}");
                return UnknownValue.Instance;
            }
            args[free[i].Name] = inputs[i];
        }
        if (args.Values.Any(v => v is UnknownValue)) return UnknownValue.Instance;
        var missing = fn.Params.Where(p => p.Required && !args.ContainsKey(p.Name)).ToList();
        if (missing.Count > 0)
        {
            Report(f, span, DiagnosticIds.MissingArgument, $"{fn.Name} needs {string.Join(", ", missing.Select(m => m.Name))}");
            return UnknownValue.Instance;
        }
        if (fn.IsInit && f.InitShape is null)
        {
            Report(f, span, DiagnosticIds.InitOutsideParam,
                $"{fn.Name} makes a tensor of a declared parameter's shape, so it is used only as an init: e.g. `w = param([dim], init = {fn.Name})`");
            return UnknownValue.Instance;
        }
        var call = new BuiltinCall(fn, args, Array.Empty<Value>(), null, (d, m) => Report(f, span, d, m)) { InitShape = f.InitShape };
        return fn.Apply!(call);
    }

    /// <summary>param/buffer arguments: the shape first, then <c>init</c> with that shape as its context.</summary>
    void EvalWeightArgs(CallExpr call, Frame f, List<EvaluatedArg> args)
    {
        Argument? init = null;
        int positional = 0;
        Value? shapeValue = null;
        foreach (var a in call.Args)
        {
            bool isInit = a.Name == "init" || (a.Name is null && positional == 1);
            if (a.Name is null) positional++;
            if (isInit && init is null) { init = a; args.Add(null!); continue; }
            var v = Eval(a.Value, f);
            if (a.Name == "shape" || (a.Name is null && positional == 1)) shapeValue = v;
            args.Add(new EvaluatedArg(a, a.Name, v, a.Span));
        }
        if (init is null) return;
        var frame = f.WithScope(f.Scope);
        frame.InitShape = shapeValue is not null && ShapeOf(shapeValue, "float") is Shape s ? s : new Shape(new[] { Dim.Symbol("?init") });
        var index = args.IndexOf(null!);
        args[index] = new EvaluatedArg(init, init.Name, Eval(init.Value, frame), init.Span);
    }

    /// <summary>An <c>int[]</c> value as a shape, or null when it is not one.</summary>
    internal static Shape? ShapeOf(Value v, string elementType)
    {
        if (v.AsItems() is not { } items || items.Any(i => i is not IntValue)) return null;
        return new Shape(items.Select(i => ((IntValue)i).Dim).ToList(), elementType);
    }

    /// <summary><c>name = param(...)</c>: a weight of the current module; the name is then a tensor.</summary>
    bool BindWeight(Identifier target, WeightDeclValue w, Frame f, Dictionary<string, Text.TextSpan> layerNames)
    {
        if (layerNames.ContainsKey(target.Name))
            Report(f, target.Span, DiagnosticIds.DuplicateLayer,
                $"'{target.Name}' is already declared in this body; each name is one state-dict key");
        layerNames[target.Name] = target.Span;
        if (f.CreatesChildren && f.Node is not null && (!w.IsBuffer || w.Persistent))
            f.Node.AddWeight(target.Name, w.Shape.Dims, w.IsBuffer);
        f.Scope.Set(target.Name, new TensorValue(w.Shape));
        return true;
    }
}
