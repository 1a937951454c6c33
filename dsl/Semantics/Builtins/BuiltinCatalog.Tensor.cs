using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// Tensor math: elementwise functions (with number forms where they make sense), reductions over axes, indexing,
// masks and layout. Every argument binds by parameter, tensors included (BuiltinCallable.BindsAll).
public static partial class BuiltinCatalog
{
    static void RegisterTensor()
    {
        // ---- elementwise ----
        Unary("exp", "eˣ", Math.Exp, realOnly: false);
        Unary("log", "natural logarithm", Math.Log);
        Unary("sqrt", "square root", Math.Sqrt);
        Unary("rsqrt", "1/√x", x => 1 / Math.Sqrt(x));
        // Hyena's implicit filters (Monarch Mixer) use sine activations and a Fourier-feature positional embedding.
        Unary("sin", "sine (Hyena's implicit filters)", Math.Sin);
        Unary("cos", "cosine (Hydra's Vandermonde matrices)", Math.Cos);
        Unary("abs", "absolute value (of a complex value: its modulus, a float)", Math.Abs, realOnly: false, complexToReal: true);
        Unary("logsigmoid", "log(sigmoid(x)), stable", x => -Softplus(-x));
        Unary("inv_softplus", "the inverse of softplus: x + log(−expm1(−x)) (Mamba's dt bias init)", x => x + Math.Log(-ExpM1(-x)));

        Math2("pow", new[] { Req("x", MixType.Any), Req("exponent", MixType.Any) }, "[...] -> [...] (broadcast)", "x raised to exponent",
            c => Elementwise(c, new[] { "x", "exponent" }, realOnly: false), Math.Pow);

        Math2("clamp", new[] { Req("x", MixType.Tensor), Opt("min", MixType.Float.Optional(), None), Opt("max", MixType.Float.Optional(), None) },
            "[...] -> [...]", "limits values to [min, max] (either bound may be none)", c =>
            {
                if (c.Double("min") is double lo && c.Double("max") is double hi && lo > hi)
                    c.Report(DiagnosticIds.OutOfRange, $"clamp min {lo} is above max {hi}");
                return Elementwise(c, new[] { "x" }, realOnly: true);
            });

        Math2("softshrink", new[] { Req("x", MixType.Tensor), Opt("lambd", MixType.Float, F(0.5)) }, "[...] -> [...]",
            "x − λ above λ, x + λ below −λ, 0 between (AFNO's sparsity)", c =>
            {
                if (c.Double("lambd") is double l && l < 0) c.Report(DiagnosticIds.OutOfRange, $"softshrink lambd must not be negative; got {l}");
                return Elementwise(c, new[] { "x" }, realOnly: true);
            });

        Math2("where", new[] { Req("condition", MixType.Tensor), Req("x", MixType.Any), Req("y", MixType.Any) }, "bool[...], [...], [...] -> [...] (broadcast)",
            "x where condition holds, else y", c =>
            {
                if (c.Arg("condition") is TensorValue { Shape.ElementType: not "bool" } cond)
                {
                    c.Report(DiagnosticIds.DtypeMismatch, $"where needs a bool condition (a comparison such as x > 0); got {cond.Shape}");
                    return UnknownValue.Instance;
                }
                var r = Elementwise(c, new[] { "condition", "x", "y" }, realOnly: false);
                if (r is not TensorValue t) return r;
                var values = new[] { "x", "y" }.Select(n => c.Arg(n)).OfType<TensorValue>().Select(v => v.Shape.ElementType).ToList();
                return new TensorValue(new Shape(t.Shape.Dims, values.Count == 0 ? "float" : values.Aggregate(Broadcasting.Promote)));
            });

        // ---- reductions ----
        TensorForm("sum", ReduceParams(), "[...] -> [...] without (or with size-1) dims", "sum over axes (all when dims is none)",
            c => Reduce(c, realOnly: false));
        TensorForm("max", ReduceParams(), "[...] -> [...] without (or with size-1) dims", "largest value over axes (values only; topk gives indices)",
            c => Reduce(c, realOnly: true));
        TensorForm("min", ReduceParams(), "[...] -> [...] without (or with size-1) dims", "smallest value over axes",
            c => Reduce(c, realOnly: true));
        Math2("amax", ReduceParams(), "[...] -> [...] without (or with size-1) dims", "largest value over axes", c => Reduce(c, realOnly: true));
        Math2("norm", ReduceParams().Append(Opt("p", MixType.Float, F(2))).ToArray(), "[...] -> [...] without (or with size-1) dims",
            "p-norm over axes (a float, also of complex values)", c => Reduce(c, realOnly: false, toReal: true));
        Math2("var", ReduceParams().Append(Opt("unbiased", MixType.Bool, B(true))).ToArray(), "[...] -> [...] without (or with size-1) dims",
            "variance over axes", c => Reduce(c, realOnly: true));

        Math2("log_softmax", new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)) }, "[...] -> [...]", "log of softmax along an axis",
            c => AlongAxis(c, realOnly: true));
        Math2("cumsum", new[] { Req("x", MixType.Tensor), Opt("dim", MixType.Int, I(-1)) }, "[...] -> [...]", "running sum along an axis",
            c => AlongAxis(c, realOnly: false));

        Math2("segsum", new[] { Req("x", MixType.Tensor) }, "[..., T] -> [..., T, T]",
            "Mamba-2's stable segment sum: out[..., i, j] = x[j+1] + … + x[i] for j ≤ i, −∞ above the diagonal", c =>
            {
                if (RealTensor(c, "x") is not Shape s || !ExpectMinRank(c, s, 1, "[..., T]")) return UnknownValue.Instance;
                return new TensorValue(new Shape(s.Dims.Append(s[-1]).ToList(), Broadcasting.Floating(s.ElementType)));
            });

        // LMU's zero-order hold (scipy cont2discrete 'zoh': expm of [[A, B], [0, 0]]) and its impulse response A^t·B.
        Math2("matrix_exp", new[] { Req("x", MixType.Tensor) }, "[..., n, n] -> [..., n, n]",
            "the matrix exponential of the last two axes (batched)", c =>
            {
                if (RealTensor(c, "x") is not Shape s || !ExpectMinRank(c, s, 2, "[..., n, n]")) return UnknownValue.Instance;
                if (!s[-1].Equals(s[-2]))
                {
                    c.Report(DiagnosticIds.ShapeMismatch, $"matrix_exp needs square matrices on the last two axes; got {s}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(s.Dims, Broadcasting.Floating(s.ElementType)));
            });

        Math2("topk", new[] { Req("x", MixType.Tensor), Req("k", MixType.Int), Opt("dim", MixType.Int, I(-1)), Opt("largest", MixType.Bool, B(true)) },
            "[..., n, ...] -> ([..., k, ...], long[..., k, ...])", "the k largest (or smallest) values and their indices (a tuple)", c =>
            {
                if (RealTensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                CheckPositive(c, "k");
                if (c.Dim("k").AsLong is long k && s[a].AsLong is long n && k > n)
                    c.Report(DiagnosticIds.OutOfRange, $"topk k = {k} is more than the {n} entries on axis {a} of {s}");
                var values = s.With(a, c.Dim("k"));
                return new TupleValue(new Value[] { new TensorValue(values), new TensorValue(new Shape(values.Dims, "long")) });
            }, returnsTuple: true);

        Math2("gather", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int), Req("index", MixType.Tensor) },
            "[...], long[...] -> [index's shape]", "x's entries at index along dim (same rank)", c =>
            {
                if (Tensor(c, "x") is not Shape s || LongTensor(c, "index") is not Shape ix || Axis(c, s, "dim") is null) return UnknownValue.Instance;
                if (ix.Rank != s.Rank)
                {
                    c.Report(DiagnosticIds.InputShapeMismatch, $"gather needs an index of the same rank as x: {ix} vs {s}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(ix.Dims, s.ElementType));
            });

        Math2("scatter_add", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int), Req("index", MixType.Tensor), Req("src", MixType.Tensor) },
            "[...], long[...], [index's shape] -> [x's shape]", "adds src into x at index along dim (MoE combine)", c =>
            {
                if (Tensor(c, "x") is not Shape s || LongTensor(c, "index") is not Shape ix || Tensor(c, "src") is not Shape src || Axis(c, s, "dim") is null)
                    return UnknownValue.Instance;
                if (ix.Rank != s.Rank || !ix.CompatibleWith(new Shape(src.Dims, ix.ElementType)))
                {
                    c.Report(DiagnosticIds.InputShapeMismatch, $"scatter_add needs index and src of one shape and x's rank: x {s}, index {ix}, src {src}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(s);
            });

        // ---- constructors and masks ----
        Math2("arange", new[] { Req("start", MixType.Any), Opt("end", MixType.Any, None) }, "long[end − start] (float[?] for floats)",
            "start, start+1, … below end; arange(n) is 0 … n−1", c =>
            {
                var start = c.Arg("start");
                var end = c.Arg("end");
                if (end is NoneValue) (start, end) = (I(0), start);
                if (start is IntValue a && end is IntValue b)
                {
                    var n = b.Dim - a.Dim;
                    if (n.AsLong is long k && k <= 0) c.Report(DiagnosticIds.OutOfRange, $"arange from {a.Dim} to {b.Dim} is empty");
                    return new TensorValue(new Shape(new[] { n }, "long"));
                }
                if (start is IntValue or FloatValue && end is IntValue or FloatValue) return new TensorValue(new Shape(new[] { Dim.Symbol("?arange") }));
                c.Report(DiagnosticIds.WrongType, $"arange takes numbers; got {start.Describe()} and {end.Describe()}");
                return UnknownValue.Instance;
            });

        Math2("ones_mask", new[] { Req("rows", MixType.Int), Req("cols", MixType.Int) }, "bool[rows, cols]", "an all-true mask (for tril/triu)",
            c => new TensorValue(new Shape(new[] { c.Dim("rows"), c.Dim("cols") }, "bool")));
        foreach (var (name, what) in new[] { ("tril", "keeps the lower triangle (j ≤ i + diagonal), zero (false) above"), ("triu", "keeps the upper triangle (j ≥ i + diagonal), zero (false) below") })
            Math2(name, new[] { Req("x", MixType.Tensor), Opt("diagonal", MixType.Int, I(0)) }, "[..., n, m] -> [..., n, m]", what, c =>
            {
                if (Tensor(c, "x") is not Shape s || !ExpectMinRank(c, s, 2, "[..., n, m]")) return UnknownValue.Instance;
                return new TensorValue(s);
            });

        // ---- layout ----
        Math2("roll", new[] { Req("x", MixType.Tensor), Req("shifts", MixType.Int), Req("dim", MixType.Int) }, "[...] -> [...]",
            "rotates entries along an axis", c => Tensor(c, "x") is Shape s && Axis(c, s, "dim") is not null ? new TensorValue(s) : UnknownValue.Instance);
        Math2("flip", new[] { Req("x", MixType.Tensor), Req("dims", MixType.Int.Array()) }, "[...] -> [...]", "reverses axes", c =>
            Tensor(c, "x") is Shape s && Axes(c, s, "dims") is not null ? new TensorValue(s) : UnknownValue.Instance);
        Math2("pad", new[] { Req("x", MixType.Tensor), Req("pads", MixType.Int.Array()), Opt("value", MixType.Float, F(0)) },
            "[..., n] -> [..., left + n + right]", "constant padding, PyTorch's order: [left, right] of the last axis, then the one before, …", c =>
            {
                if (Tensor(c, "x") is not Shape s || c.Arg("pads").AsItems() is not { } items) return UnknownValue.Instance;
                if (items.Count % 2 != 0 || items.Count / 2 > s.Rank)
                {
                    c.Report(DiagnosticIds.BadAxis, $"pad takes pairs [left, right, …] for at most {s.Rank} axes of {s}; got {items.Count} numbers");
                    return UnknownValue.Instance;
                }
                var d = s.Dims.ToList();
                for (int i = 0; i < items.Count / 2; i++)
                {
                    var add = (items[2 * i] is IntValue l ? l.Dim : Dim.Symbol("?")) + (items[2 * i + 1] is IntValue r ? r.Dim : Dim.Symbol("?"));
                    d[s.Rank - 1 - i] = d[s.Rank - 1 - i] + add;
                }
                return new TensorValue(new Shape(d, s.ElementType));
            });
        Math2("repeat", new[] { Req("x", MixType.Tensor), Req("sizes", MixType.Int.Array()) }, "[a, b] -> [a·r0, b·r1] (leading new axes allowed)",
            "tiles the tensor (PyTorch's repeat)", c =>
            {
                if (Tensor(c, "x") is not Shape s || IntList(c, "sizes") is not { } reps) return UnknownValue.Instance;
                if (reps.Count < s.Rank)
                {
                    c.Report(DiagnosticIds.BadAxis, $"repeat needs a count for each of the {s.Rank} axes of {s}; got {reps.Count}");
                    return UnknownValue.Instance;
                }
                var lead = reps.Count - s.Rank;
                return new TensorValue(new Shape(reps.Select((r, i) => i < lead ? r : s[i - lead] * r).ToList(), s.ElementType));
            });
        Math2("expand", new[] { Req("x", MixType.Tensor), Req("sizes", MixType.Int.Array()) }, "[1, n] -> [m, n] (−1 keeps an axis)",
            "broadcasts size-1 axes to larger sizes without copying", c =>
            {
                if (Tensor(c, "x") is not Shape s || IntList(c, "sizes") is not { } sizes) return UnknownValue.Instance;
                if (sizes.Count < s.Rank) { c.Report(DiagnosticIds.BadAxis, $"expand needs at least {s.Rank} sizes for {s}; got {sizes.Count}"); return UnknownValue.Instance; }
                var lead = sizes.Count - s.Rank;
                var d = new List<Dim>();
                for (int i = 0; i < sizes.Count; i++)
                {
                    if (i < lead)
                    {
                        if (sizes[i].AsLong is long n && n < 0) { c.Report(DiagnosticIds.BadAxis, $"expand of {s}: the new leading axis {i} needs a size, not {n}"); return UnknownValue.Instance; }
                        d.Add(sizes[i]);
                        continue;
                    }
                    var have = s[i - lead];
                    var want = sizes[i];
                    if (want.AsLong == -1) { d.Add(have); continue; }
                    if (have.AsLong != 1 && !Shape.Compatible(have, want))
                    {
                        c.Report(DiagnosticIds.ShapeMismatch, $"expand of {s} to [{string.Join(", ", sizes)}]: axis {i - lead} is {have}, not 1 or {want}");
                        return UnknownValue.Instance;
                    }
                    d.Add(want);
                }
                return new TensorValue(new Shape(d, s.ElementType));
            });
        Math2("stack", new[] { Req("tensors", MixType.Tensor.Array()), Opt("dim", MixType.Int, I(0)) }, "n × [...] -> [..., n, ...]",
            "joins equal-shaped tensors along a new axis", c =>
            {
                if (c.Arg("tensors").AsItems() is not { Count: > 0 } items || items.Any(i => i is not TensorValue)) return UnknownValue.Instance;
                var first = ((TensorValue)items[0]).Shape;
                foreach (var t in items.Cast<TensorValue>())
                    if (!t.Shape.CompatibleWith(first))
                    {
                        c.Report(DiagnosticIds.ConcatMismatch, $"stack needs tensors of one shape; got {first} and {t.Shape}");
                        return UnknownValue.Instance;
                    }
                if (c.Long("dim") is not long l) return UnknownValue.Instance;
                var at = l < 0 ? l + first.Rank + 1 : l;
                if (at < 0 || at > first.Rank) { c.Report(DiagnosticIds.BadAxis, $"dim = {l} is not a place for a new axis in {first}"); return UnknownValue.Instance; }
                var d = first.Dims.ToList();
                d.Insert((int)at, Dim.Const(items.Count));
                return new TensorValue(new Shape(d, first.ElementType));
            });
        Math2("unsqueeze", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int) }, "[a, b] -> [a, 1, b]", "inserts a size-1 axis", c =>
        {
            if (Tensor(c, "x") is not Shape s || c.Long("dim") is not long l) return UnknownValue.Instance;
            var at = l < 0 ? l + s.Rank + 1 : l;
            if (at < 0 || at > s.Rank) { c.Report(DiagnosticIds.BadAxis, $"dim = {l} is not a place for a new axis in {s}"); return UnknownValue.Instance; }
            var d = s.Dims.ToList();
            d.Insert((int)at, Dim.Const(1));
            return new TensorValue(new Shape(d, s.ElementType));
        });
        Math2("squeeze", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int) }, "[a, 1, b] -> [a, b]", "removes a size-1 axis", c =>
        {
            if (Tensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
            if (!Shape.Compatible(s[a], Dim.Const(1)))
            {
                c.Report(DiagnosticIds.BadAxis, $"squeeze of axis {a} of {s}, which has size {s[a]}, not 1");
                return UnknownValue.Instance;
            }
            return new TensorValue(new Shape(s.Dims.Where((_, i) => i != a).ToList(), s.ElementType));
        });

        Math2("select", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int), Req("index", MixType.Int) }, "[a, n, b] -> [a, b]",
            "the slice at index along dim (the axis is removed; negative index from the end)", c =>
            {
                if (Tensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a || c.Long("index") is not long i) return UnknownValue.Instance;
                if (s[a].AsLong is long n && (i >= n || i < -n))
                {
                    c.Report(DiagnosticIds.IndexOutOfRange, $"select index {i} is outside axis {a} of {s}, which has {n} entries");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(s.Dims.Where((_, k) => k != a).ToList(), s.ElementType));
            });

        Math2("narrow", new[] { Req("x", MixType.Tensor), Req("dim", MixType.Int), Req("start", MixType.Int), Req("length", MixType.Int) },
            "[a, n, b] -> [a, length, b]", "entries start … start + length − 1 along dim", c =>
            {
                if (Tensor(c, "x") is not Shape s || Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                var start = c.Dim("start");
                var length = c.Dim("length");
                if ((start.AsLong is long st && st < 0) || (length.AsLong is long ln && ln < 0)
                    || (start.AsLong is long s0 && length.AsLong is long l0 && s[a].AsLong is long n && s0 + l0 > n))
                {
                    c.Report(DiagnosticIds.IndexOutOfRange, $"narrow from {start} for {length} does not fit axis {a} of {s}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(s.With(a, length));
            });

        Math2("einsum", new[] { Req("spec", MixType.String), Req("a", MixType.Tensor), Opt("b", MixType.Tensor.Optional(), None),
                Opt("c", MixType.Tensor.Optional(), None), Opt("d", MixType.Tensor.Optional(), None) },
            "\"b l d, d n -> b l n\" -> [B, L, N]", "Einstein summation; letters (words) bind to sizes, checked", Einsum.Apply);
    }

    // ---- registration helpers ----

    static void Math2(string name, ParamSpec[] ps, string contract, string summary, Func<BuiltinCall, Value> apply,
        Func<double[], double>? scalar = null, bool returnsTuple = false) =>
        Add(new BuiltinCallable(name, CallableKind.Function, ps, contract, summary) { Apply = apply, BindsAll = true, Scalar = scalar, ReturnsTuple = returnsTuple });

    static void Math2(string name, ParamSpec[] ps, string contract, string summary, Func<BuiltinCall, Value> apply, Func<double, double, double> scalar) =>
        Math2(name, ps, contract, summary, apply, xs => scalar(xs[0], xs[1]));

    static void Unary(string name, string summary, Func<double, double> scalar, bool realOnly = true, bool complexToReal = false) =>
        Math2(name, new[] { Req("x", MixType.Any) }, "[...] -> [...]", summary, c =>
        {
            if (c.Arg("x") is IntValue or FloatValue) return new FloatValue(c.Double("x") is double d ? scalar(d) : null);
            var r = Elementwise(c, new[] { "x" }, realOnly);
            if (r is not TensorValue t) return r;
            var et = complexToReal && t.Shape.ElementType == "complex" ? "float" : Broadcasting.Floating(t.Shape.ElementType);
            return new TensorValue(new Shape(t.Shape.Dims, name == "abs" && t.Shape.ElementType is "long" or "int" ? t.Shape.ElementType : et));
        }, xs => scalar(xs[0]));

    /// <summary>The tensor form of an existing number function (sum, max, min).</summary>
    static void TensorForm(string name, ParamSpec[] ps, string contract, string summary, Func<BuiltinCall, Value> apply)
    {
        var form = new BuiltinCallable(name, CallableKind.Function, ps, contract, summary) { Apply = apply, BindsAll = true, IsTensorForm = true };
        s_all[name].TensorForm = form;
    }

    static ParamSpec[] ReduceParams() => new[]
    {
        Req("x", MixType.Tensor), Opt("dims", MixType.Int.Array().Optional(), None), Opt("keepdim", MixType.Bool, B(false)),
    };

    // ---- shape helpers ----

    static Shape? Tensor(BuiltinCall c, string name) => c.Arg(name) is TensorValue t ? t.Shape : null;

    static Shape? RealTensor(BuiltinCall c, string name)
    {
        if (Tensor(c, name) is not Shape s) return null;
        if (s.ElementType != "complex") return s;
        c.Report(DiagnosticIds.DtypeMismatch, $"{c.Callable.Name} needs real values; '{name}' is {s} (take real(z), imag(z) or abs(z) first)");
        return null;
    }

    static Shape? LongTensor(BuiltinCall c, string name)
    {
        if (Tensor(c, name) is not Shape s) return null;
        if (s.ElementType is "long" or "int") return s;
        c.Report(DiagnosticIds.DtypeMismatch, $"{c.Callable.Name} needs integer indices for '{name}' (e.g. topk's); got {s}");
        return null;
    }

    static List<Dim>? IntList(BuiltinCall c, string name) =>
        c.Arg(name).AsItems() is { } items ? items.Select(v => v is IntValue i ? i.Dim : Dim.Symbol("?")).ToList() : null;

    /// <summary>Distinct axes of an <c>int[]</c> argument (negative from the end), or null after reporting.</summary>
    static HashSet<int>? Axes(BuiltinCall c, Shape s, string name)
    {
        if (c.Arg(name).AsItems() is not { } items) return null;
        var axes = new HashSet<int>();
        foreach (var v in items)
        {
            if (v.AsLong() is not long l) return null;
            var ax = (int)(l < 0 ? l + s.Rank : l);
            if (ax < 0 || ax >= s.Rank || !axes.Add(ax))
            {
                c.Report(DiagnosticIds.BadAxis, $"{c.Callable.Name} over axis {l} of {s}, which has {s.Rank} axes{(ax >= 0 && ax < s.Rank ? " (given twice)" : "")}");
                return null;
            }
        }
        return axes;
    }

    /// <summary>Broadcasts the tensor arguments among <paramref name="names"/>; numbers broadcast to anything.</summary>
    static Value Elementwise(BuiltinCall c, string[] names, bool realOnly)
    {
        Shape? result = null;
        string? first = null;
        foreach (var n in names)
        {
            var v = c.Arg(n);
            if (v is IntValue or FloatValue or NoneValue) continue;
            if (v is not TensorValue t)
            {
                if (v is not UnknownValue) c.Report(DiagnosticIds.WrongType, $"'{n}' of {c.Callable.Name} must be a tensor or a number; found {v.Describe()}");
                return UnknownValue.Instance;
            }
            if (realOnly && t.Shape.ElementType == "complex")
            {
                c.Report(DiagnosticIds.DtypeMismatch, $"{c.Callable.Name} needs real values; '{n}' is {t.Shape} (take real(z), imag(z) or abs(z) first)");
                return UnknownValue.Instance;
            }
            if (result is null) { result = t.Shape; first = n; continue; }
            if (Broadcasting.Broadcast(result, t.Shape, out var k, out var x, out var y) is not Shape joined)
            {
                c.Report(DiagnosticIds.ShapeMismatch, $"{c.Callable.Name}: '{first}' {result} and '{n}' {t.Shape} do not broadcast: axis {k} is {x} vs {y}");
                return UnknownValue.Instance;
            }
            result = joined;
        }
        if (result is null)
        {
            // Only numbers: a number (the number form).
            return c.Callable.Scalar is { } f && names.All(n => c.Arg(n).AsDouble() is not null)
                ? new FloatValue(f(names.Select(n => c.Arg(n).AsDouble()!.Value).ToArray())) : new FloatValue(null);
        }
        return new TensorValue(result);
    }

    static Value Reduce(BuiltinCall c, bool realOnly, bool toReal = false)
    {
        if ((realOnly ? RealTensor(c, "x") : Tensor(c, "x")) is not Shape s) return UnknownValue.Instance;
        HashSet<int> axes;
        if (c.IsNone("dims")) axes = new HashSet<int>(Enumerable.Range(0, s.Rank));
        else if (Axes(c, s, "dims") is { } a) axes = a;
        else return UnknownValue.Instance;
        bool keep = c.Bool("keepdim") == true;
        var d = new List<Dim>();
        for (int k = 0; k < s.Rank; k++)
        {
            if (!axes.Contains(k)) d.Add(s[k]);
            else if (keep) d.Add(Dim.Const(1));
        }
        var et = toReal || c.Callable.Name == "var" ? Broadcasting.Floating(s.ElementType) : s.ElementType;
        if (toReal && et == "complex") et = "float";
        return new TensorValue(new Shape(d, et));
    }

    static Value AlongAxis(BuiltinCall c, bool realOnly)
    {
        if ((realOnly ? RealTensor(c, "x") : Tensor(c, "x")) is not Shape s || Axis(c, s, "dim") is null) return UnknownValue.Instance;
        return new TensorValue(c.Callable.Name == "log_softmax" ? new Shape(s.Dims, Broadcasting.Floating(s.ElementType)) : s);
    }

    static double Softplus(double x) => x > 20 ? x : Math.Log(1 + Math.Exp(x));
    static double ExpM1(double x) => Math.Abs(x) < 1e-5 ? x + x * x / 2 + x * x * x / 6 : Math.Exp(x) - 1;
}
