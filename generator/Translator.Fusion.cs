using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Dsl.Semantics;

namespace Mix.Generator;

// Fused regions. While the forward is translated, a tensor value built by fusible ops (pointwise arithmetic,
// activations, elementwise functions, reductions and softmax over one axis) carries a FusionExpr next to its reference
// code. Where such a value is consumed by something that is not fusible (a layer, a library call, a local, the
// return), the expression is planned (FusionPlanner) and each region becomes one call,
// `fusedK.Run(inputs..., (inputs...) => reference)`: the region's kernel on CUDA, the reference lambda elsewhere.
internal sealed partial class Translator
{
    /// <summary>Whether tensor values may carry fusion expressions (the forward, outside layer construction and inits).</summary>
    bool _fusing = true;
    readonly List<RegionSpec> _regions = new();

    static readonly Regex s_identifier = new(@"^@?[A-Za-z_][A-Za-z0-9_]*$");
    static readonly Regex s_words = new(@"(?<![\w.])[A-Za-z_]\w*");

    /// <summary>The fusion expression of an operand, or null when it cannot be part of a region.</summary>
    FusionExpr? FusionOf(V v)
    {
        if (!_fusing || _initShape is not null || v is not VCode c) return null;
        if (c.Fx is { } fx) return fx;
        switch (c.Type.Kind)
        {
            case "tensor":
                return new FusionExpr("input", "", Array.Empty<FusionExpr>(), c.Code, c.Prec);
            case "int" or "float" when !c.Type.Nullable:
            {
                var literal = c.Code.StartsWith("(double)", StringComparison.Ordinal) ? c.Code.Substring(8) : c.Code;
                if (double.TryParse(literal, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                    return new FusionExpr("const", "", Array.Empty<FusionExpr>(), c.Code, c.Prec, value: literal);
                return IsInstanceConstant(c.Code) ? new FusionExpr("scalar", "", Array.Empty<FusionExpr>(), c.Code, c.Prec) : null;
            }
        }
        return null;
    }

    /// <summary>
    /// Whether a number's C# is fixed per module instance (options and literals only), so a region can take it once,
    /// in the constructor. Sizes of the input (B, N) and nullable values (<c>.Value</c>, valid only behind their test) are not.
    /// </summary>
    static bool IsInstanceConstant(string code)
    {
        if (code.Contains(".Value") || code.Contains("?") || code.Contains("[")) return false;
        foreach (Match m in s_words.Matches(code))
            if (m.Value is not ("options" or "double" or "long")) return false;
        return true;
    }

    /// <summary>A fusible op over <paramref name="operands"/>, or null when one of them cannot join a region.</summary>
    VCode? FusibleOp(string kind, string op, IReadOnlyList<V> operands, Func<IReadOnlyList<(string Code, int Prec)>, string> render, int prec,
        int axis = 0, bool keepDim = true)
    {
        var args = new FusionExpr[operands.Count];
        for (int i = 0; i < operands.Count; i++)
        {
            if (FusionOf(operands[i]) is not { } a) return null;
            args[i] = a;
        }
        if (!args.Any(a => a.Kind is "input" or "cond" || a.IsOp)) return null;
        var code = render(args.Select(a => (a.Code, a.Prec)).ToList());
        return new VCode(code, GType.Tensor, prec) { Fx = new FusionExpr(kind, op, args, code, prec, render, axis, keepDim) };
    }

    /// <summary>
    /// An activation layer (<c>act = act</c>, chosen per instance) applied to a tensor, as a fusible op: the region
    /// computes it by the number <c>FusedRegion.ActivationCode</c> binds for the layer in the constructor (NaN, for a
    /// module the kernels do not compute, keeps that instance's region on its reference).
    /// </summary>
    VCode? FusibleActLayer(VLayer layer, V tensor)
    {
        if (!s_identifier.IsMatch(layer.Field) || FusionOf(tensor) is not { } x || !(x.Kind is "input" or "cond" || x.IsOp)) return null;
        var code = $"FusedRegion.ActivationCode({layer.Field})";
        var scalar = new FusionExpr("scalar", "", Array.Empty<FusionExpr>(), code, 100);
        Func<IReadOnlyList<(string Code, int Prec)>, string> render = a => $"{layer.Field}.call({a[0].Code})";
        var call = render(new[] { (x.Code, x.Prec), (code, 100) });
        return new VCode(call, GType.Tensor, 100) { Fx = new FusionExpr("binary", "act", new[] { x, scalar }, call, 100, render) };
    }

    static readonly Dictionary<string, string> s_binaryOps = new() { ["+"] = "add", ["-"] = "sub", ["*"] = "mul", ["/"] = "div" };

    /// <summary><c>a op b</c> with a tensor operand, as a fusible op.</summary>
    VCode? FusibleBinary(string op, V left, V right)
    {
        if (!s_binaryOps.TryGetValue(op, out var name) || !(IsTensor(left) || IsTensor(right))) return null;
        int prec = s_prec[op];
        return FusibleOp("binary", name, new[] { left, right },
            a => $"{Paren(a[0].Code, a[0].Prec, prec)} {op} {Paren(a[1].Code, a[1].Prec, prec + 1)}", prec);
    }

    /// <summary>A call whose C# is <paramref name="template"/> with the tensor's code at <c>\u0001</c>.</summary>
    VCode? FusibleCall(string kind, string op, V tensor, string template, int axis = 0, bool keepDim = true) =>
        !IsTensor(tensor) ? null : FusibleOp(kind, op, new[] { tensor }, a => template.Replace("\u0001", a[0].Code), 100, axis, keepDim);

    /// <summary>A tensor-math built-in as a fusible op, or null (the built-in's general emission runs).</summary>
    VCode? FusibleMath(BuiltinCallable fn, IReadOnlyDictionary<string, V> args, Func<IReadOnlyDictionary<string, V>, string> emit)
    {
        if (!_fusing || _initShape is not null) return null;
        string Template(string param)
        {
            var withPlaceholder = args.ToDictionary(kv => kv.Key, kv => kv.Value);
            withPlaceholder[param] = new VCode("\u0001", GType.Tensor);
            return emit(withPlaceholder);
        }
        switch (fn.Name)
        {
            case "exp" or "log" or "sqrt" or "rsqrt" or "abs" or "logsigmoid" when args.TryGetValue("x", out var x) && args.Count == 1:
                return FusibleCall("unary", fn.Name, x, Template("x"));
            case "pow" when args.TryGetValue("x", out var x) && IsTensor(x) && args.TryGetValue("exponent", out var e) && !IsTensor(e):
                return FusibleOp("binary", "pow", new[] { x, e }, a => Template("x").Replace("\u0001", a[0].Code), 100);
            case "mean" or "sum" or "max" or "min" or "amax" when args.TryGetValue("x", out var x) && Axis(args, "dims") is int axis:
            {
                bool keep = args.TryGetValue("keepdim", out var k) && k is VCode { Code: "true" };
                if (args.TryGetValue("keepdim", out var k2) && k2 is not VCode { Code: "true" or "false" }) return null;
                return FusibleCall("reduce", fn.Name, x, Template("x"), axis, keep);
            }
            case "softmax" when args.TryGetValue("x", out var x):
            {
                int? axis = args.TryGetValue("dim", out var d) ? IntLiteral(d) : -1;
                return axis is int ax ? FusibleCall("softmax", "softmax", x, Template("x"), ax) : null;
            }
        }
        return null;
    }

    static int? Axis(IReadOnlyDictionary<string, V> args, string name) =>
        args.TryGetValue(name, out var v) && v is VArray { Items.Count: 1 } a ? IntLiteral(a.Items[0]) : null;

    static int? IntLiteral(V v) =>
        v is VCode { Type.Kind: "int" } c && int.TryParse(c.Code, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>The activations a region computes, applied as weightless functions (<c>silu(x)</c>).</summary>
    static readonly HashSet<string> s_fusibleActs = new() { "relu", "squared_relu", "sigmoid", "silu", "tanh", "gelu", "softplus" };

    // ---- cutting regions where a fusible value is consumed --------------------------------------------------------

    /// <summary>
    /// A tensor chosen at run time: <c>if c then a else b</c>, or a drop path or dropout (<paramref name="condition"/>:
    /// whether it acts; <paramref name="then"/>: the call, an input; <paramref name="else"/>: its operand, which it
    /// returns unchanged otherwise). Carried as a <c>cond</c> expression so the ops around it can be planned once per
    /// branch (<see cref="MaterializeFx"/>); <paramref name="plain"/> renders it from its branches' code where that does not pay.
    /// </summary>
    VCode? FusibleCond(string condition, V then, V @else, string code, int prec, Func<IReadOnlyList<(string Code, int Prec)>, string>? plain)
    {
        if (FusionOf(then) is not { } t || FusionOf(@else) is not { } e) return null;
        if (!(t.IsOp || e.IsOp || t.Kind == "cond" || e.Kind == "cond" || (t.Kind == "input" && e.Kind == "input"))) return null;
        return new VCode(code, GType.Tensor, prec) { Fx = new FusionExpr("cond", "", new[] { t, e }, condition, prec, plain) };
    }

    /// <summary>
    /// A drop path or dropout of rate <paramref name="rate"/> (C#) as a condition: the call while training with a
    /// nonzero rate, its operand unchanged otherwise (what <c>Fn.DropPath</c> and <c>Fn.Dropout</c> return then).
    /// </summary>
    VCode? IdentityUnlessTraining(VCode call, V operand, string rate)
    {
        var r = s_member.IsMatch(rate) ? rate : "(" + rate + ")";
        return FusibleCond($"training && {r} != 0", call, operand, call.Code, call.Prec, plain: null);
    }

    static readonly Regex s_member = new(@"^[A-Za-z_][\w.]*$");

    /// <summary>Most conditions one expression is planned through (each doubles the variants planned).</summary>
    const int MaxSplits = 2;

    /// <summary>The C# of a tensor value with its fused regions cut out (the plain reference code when there are none).</summary>
    (string Code, int Prec) Materialize(VCode c) =>
        c.Fx is { } fx && (fx.IsOp || fx.Kind == "cond") ? MaterializeFx(fx, 0) : (c.Code, c.Prec);

    /// <summary>
    /// A fusion expression's C#. Where a condition sits among its ops (<c>x + drop_path(s * a)</c>: the drop path acts
    /// only while training), each branch is planned on its own and the value becomes <c>c ? then : else</c> when that
    /// gives a region (the branch without the drop path fuses <c>x + s * a</c>); otherwise the condition is a region
    /// input like any other value.
    /// </summary>
    (string Code, int Prec) MaterializeFx(FusionExpr root, int splits)
    {
        if (root.Materialized is { } done) return done;
        (string Code, int Prec) result;
        if (root.Kind == "cond") result = PlainCond(root, splits);
        else if (!root.IsOp) result = (root.Code, root.Prec);
        else if (splits < MaxSplits && FirstCond(root) is { } cond)
        {
            int before = _regions.Count;
            var (a, ap) = MaterializeFx(Substitute(root, cond, cond.Args[0], new()), splits + 1);
            var (b, bp) = MaterializeFx(Substitute(root, cond, cond.Args[1], new()), splits + 1);
            result = _regions.Count > before ? ($"{cond.Code} ? {Paren(a, ap, 0)} : {Paren(b, bp, -1)}", -1) : Plan(root, splits);
        }
        else result = Plan(root, splits);
        root.Materialized = result;
        return result;
    }

    /// <summary>A condition's own C#: the ternary over its branches' code (a drop path: the call alone).</summary>
    (string Code, int Prec) PlainCond(FusionExpr cond, int splits)
    {
        if (cond.Render is null) return MaterializeFx(cond.Args[0], MaxSplits);
        var branches = cond.Args.Select(a => MaterializeFx(a, splits)).ToList();
        return (cond.Render(branches), cond.Prec);
    }

    /// <summary>The first condition below <paramref name="e"/> through its ops (outermost first).</summary>
    static FusionExpr? FirstCond(FusionExpr e)
    {
        foreach (var a in e.Args)
        {
            if (a.Kind == "cond") return a;
            if (a.IsOp && FirstCond(a) is { } found) return found;
        }
        return null;
    }

    /// <summary><paramref name="e"/> with <paramref name="target"/> replaced by <paramref name="by"/> (new nodes only where something changed).</summary>
    static FusionExpr Substitute(FusionExpr e, FusionExpr target, FusionExpr by, Dictionary<FusionExpr, FusionExpr> done)
    {
        if (e == target) return by;
        if (!e.IsOp) return e;
        if (done.TryGetValue(e, out var seen)) return seen;
        var args = e.Args.Select(a => Substitute(a, target, by, done)).ToArray();
        var result = args.SequenceEqual(e.Args) ? e
            : new FusionExpr(e.Kind, e.Op, args, e.Render!(args.Select(a => (a.Code, a.Prec)).ToList()), e.Prec, e.Render, e.Axis, e.KeepDim, e.Value);
        done[e] = result;
        return result;
    }

    /// <summary>Plans <paramref name="root"/> (conditions below it are inputs) and renders it with its regions cut out.</summary>
    (string Code, int Prec) Plan(FusionExpr root, int splits)
    {
        // The graph: operands before ops; one node per distinct local or field read (x * x reads x once).
        var nodes = new List<FusionNode>();
        var exprs = new List<FusionExpr>();
        var shared = new Dictionary<string, int>();
        int Add(FusionExpr e)
        {
            if (e.Kind == "cond")
            {
                var (code, prec) = MaterializeFx(e, splits);
                e = new FusionExpr("input", "", Array.Empty<FusionExpr>(), code, prec);
            }
            var key = e.Kind + ":" + e.Code;
            bool sharable = e.Kind is "scalar" or "const" || (e.Kind == "input" && s_identifier.IsMatch(e.Code));
            if (sharable && shared.TryGetValue(key, out var seen)) return seen;
            var args = e.Args.Select(Add).ToEquatableArray();
            nodes.Add(new FusionNode(e.Kind, e.Op, args, e.Axis, e.KeepDim, e.Value));
            exprs.Add(e);
            if (sharable) shared[key] = nodes.Count - 1;
            return nodes.Count - 1;
        }
        Add(root);
        var graph = new FusionGraph(nodes.ToEquatableArray());
        var regions = FusionPlanner.Plan(graph).ToDictionary(r => r.Root);

        (string, int) Render(int n)
        {
            if (regions.TryGetValue(n, out var region)) return (EmitRegion(graph, region, exprs, Render), 100);
            var e = exprs[n];
            if (!e.IsOp) return (e.Code, e.Prec);
            return (e.Render!(graph.Nodes[n].Args.Select(Render).ToList()), e.Prec);
        }
        return Render(graph.Root);
    }

    string EmitRegion(FusionGraph graph, RegionPlan region, List<FusionExpr> exprs, Func<int, (string, int)> render)
    {
        // Lambda parameters: the input's own name where it is one, else t0, t1, ...
        var names = new Dictionary<int, string>();
        var used = new HashSet<string>();
        foreach (var i in region.Inputs)
            if (s_identifier.IsMatch(exprs[i].Code) && used.Add(exprs[i].Code)) names[i] = exprs[i].Code;
        int t = 0;
        foreach (var i in region.Inputs)
        {
            if (names.ContainsKey(i)) continue;
            string param;
            do param = "t" + (t++).ToString(CultureInfo.InvariantCulture); while (!used.Add(param));
            names[i] = param;
        }
        var members = new HashSet<int>(region.Nodes);
        (string, int) Reference(int n)
        {
            if (names.TryGetValue(n, out var p)) return (p, 100);
            var e = exprs[n];
            if (!members.Contains(n)) return (e.Code, e.Prec);
            return (e.Render!(graph.Nodes[n].Args.Select(Reference).ToList()), e.Prec);
        }
        var reference = Reference(region.Root).Item1;
        var parameters = region.Inputs.Select(i => names[i]).ToList();
        var lambda = (parameters.Count == 1 ? parameters[0] : "(" + string.Join(", ", parameters) + ")") + " => " + reference;
        var inputs = region.Inputs.Select(i => render(i).Item1).ToList();

        int k = _regions.Count;
        var field = "fused" + k.ToString(CultureInfo.InvariantCulture);
        while (!_fieldNames.Add(field)) field += "_";
        var name = _def.Name.Name + ".region" + k.ToString(CultureInfo.InvariantCulture);
        var summary = $"{name} ({region.Kind}{(region.Kind == "row" ? $", axis {region.Axis}" : "")}): {lambda}";
        _regions.Add(new RegionSpec(field, name, summary, CudaRegionEmitter.Emit(graph, region, summary), region.Inputs.Count,
            region.Scalars.Select(s => exprs[s].Code).ToEquatableArray(), region.Kind, region.Axis, region.Reduced, region.Reductions));
        return $"{field}.Run({string.Join(", ", inputs)}, {lambda})";
    }
}
