using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

public static partial class BuiltinCatalog
{
    static void RegisterFunctions()
    {
        Fn("transpose", new[] { TensorParam(), Req("dim0", MixType.Int), Req("dim1", MixType.Int) }, 1,
            "[..., a, ..., b, ...] -> [..., b, ..., a, ...]", "swaps two axes", c =>
            {
                if (c.Input() is not Shape s) return UnknownValue.Instance;
                if (Axis(c, s, "dim0") is not int a || Axis(c, s, "dim1") is not int b) return UnknownValue.Instance;
                var d = s.Dims.ToList();
                (d[a], d[b]) = (d[b], d[a]);
                return new TensorValue(new Shape(d, s.ElementType));
            });

        Fn("permute", new[] { TensorParam(), Req("dims", MixType.Int.Array()) }, 1,
            "[d0, d1, ...] -> [d(dims[0]), d(dims[1]), ...]", "reorders all axes", c =>
            {
                if (c.Input() is not Shape s || c.Arg("dims").AsItems() is not { } items) return UnknownValue.Instance;
                var order = items.Select(v => v.AsLong()).ToList();
                if (order.Any(o => o is null)) return UnknownValue.Instance;
                var norm = order.Select(o => (int)(o!.Value < 0 ? o.Value + s.Rank : o.Value)).ToList();
                if (norm.Count != s.Rank || norm.Distinct().Count() != s.Rank || norm.Any(o => o < 0 || o >= s.Rank))
                {
                    c.Report(DiagnosticIds.BadAxis, $"permute needs each of the {s.Rank} axes of {s} exactly once; got [{string.Join(", ", order)}]");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(norm.Select(i => s[i]).ToList(), s.ElementType));
            });

        Fn("reshape", new[] { TensorParam(), Req("shape", MixType.Int.Array()) }, 1,
            "[...] -> shape (one entry may be -1)", "same elements, new shape", c =>
            {
                if (c.Input() is not Shape s || c.Arg("shape").AsItems() is not { } items) return UnknownValue.Instance;
                var dims = items.Select(v => v is IntValue i ? i.Dim : Dim.Symbol("?")).ToList();
                var total = s.Dims.Aggregate(Dim.Const(1), (x, y) => x * y);
                int infer = dims.FindIndex(d => d.AsLong == -1);
                if (infer >= 0)
                {
                    var rest = dims.Where((_, k) => k != infer).Aggregate(Dim.Const(1), (x, y) => x * y);
                    var q = Shape.IsUnknown(rest) ? null : rest.IsConstant ? total.DivideBy(rest) : DivideSymbolic(total, rest);
                    dims[infer] = q ?? Dim.Symbol("?");
                    return new TensorValue(new Shape(dims, s.ElementType));
                }
                var newTotal = dims.Aggregate(Dim.Const(1), (x, y) => x * y);
                if (!Shape.Compatible(total, newTotal))
                    c.Report(DiagnosticIds.BadAxis, $"reshape of {s} ({total} elements) to [{string.Join(", ", dims)}] ({newTotal} elements)");
                return new TensorValue(new Shape(dims, s.ElementType));
            });

        Fn("flatten", new[] { TensorParam(), Opt("start", MixType.Int, I(1)), Opt("end", MixType.Int, I(-1)) }, 1,
            "[..., a, ..., b, ...] -> [..., a·...·b, ...]", "merges axes start..end", c =>
            {
                if (c.Input() is not Shape s) return UnknownValue.Instance;
                if (Axis(c, s, "start") is not int a || Axis(c, s, "end") is not int b) return UnknownValue.Instance;
                if (a > b) { c.Report(DiagnosticIds.BadAxis, $"flatten start {a} is after end {b} for {s}"); return UnknownValue.Instance; }
                var d = s.Dims.Take(a).ToList();
                d.Add(s.Dims.Skip(a).Take(b - a + 1).Aggregate(Dim.Const(1), (x, y) => x * y));
                d.AddRange(s.Dims.Skip(b + 1));
                return new TensorValue(new Shape(d, s.ElementType));
            });

        Fn("tokens", new[] { TensorParam() }, 1, "[B, C, H, W] -> [B, H·W, C]", "image layout to token layout", c =>
        {
            if (c.Input() is not Shape s || !ExpectRank(c, s, 4, "[B, C, H, W]")) return UnknownValue.Instance;
            return new TensorValue(new Shape(new[] { s[0], s[2] * s[3], s[1] }, s.ElementType));
        });

        Fn("image", new[] { TensorParam(), Req("h", MixType.Int), Req("w", MixType.Int) }, 1,
            "[B, h·w, C] -> [B, C, h, w]", "token layout back to image layout", c =>
            {
                if (c.Input() is not Shape s || !ExpectRank(c, s, 3, "[B, N, C]")) return UnknownValue.Instance;
                ExpectDim(c, s, 1, c.Dim("h") * c.Dim("w"), "h·w");
                return new TensorValue(new Shape(new[] { s[0], s[2], c.Dim("h"), c.Dim("w") }, s.ElementType));
            });

        Fn("split", new[] { TensorParam(), Req("sizes", MixType.Int.Array()), Opt("dim", MixType.Int, I(-1)) }, 1,
            "[..., a+b+..., ...] -> ([..., a, ...], [..., b, ...], ...)", "splits one axis into parts (a tuple)", c =>
            {
                if (c.Input() is not Shape s || c.Arg("sizes").AsItems() is not { } items) return UnknownValue.Instance;
                if (Axis(c, s, "dim") is not int a) return UnknownValue.Instance;
                var sizes = items.Select(v => v is IntValue i ? i.Dim : Dim.Symbol("?")).ToList();
                var sum = sizes.Aggregate(Dim.Const(0), (x, y) => x + y);
                if (!Shape.Compatible(sum, s[a]))
                    c.Report(DiagnosticIds.SplitMismatch, $"split sizes [{string.Join(", ", sizes)}] add up to {sum} but axis {a} of {s} is {s[a]}");
                return new TupleValue(sizes.Select(z => (Value)new TensorValue(s.With(a, z))).ToList());
            }, returnsTuple: true);

        Fn("chunk", new[] { TensorParam(), Req("chunks", MixType.Int), Opt("dim", MixType.Int, I(-1)) }, 1,
            "[..., n·k, ...] -> n × [..., k, ...]", "splits one axis into equal parts (a tuple)", c =>
            {
                if (c.Input() is not Shape s) return UnknownValue.Instance;
                if (Axis(c, s, "dim") is not int a || c.Long("chunks") is not long n) return UnknownValue.Instance;
                if (n <= 0 || n > 64) { c.Report(DiagnosticIds.OutOfRange, $"chunks must be between 1 and 64; got {n}"); return UnknownValue.Instance; }
                var part = s[a].DivideBy(Dim.Const(n))!;
                if (!part.HasIntegerCoefficients && part.IsConstant)
                    c.Report(DiagnosticIds.NotDivisible, $"chunk: {n} does not divide axis {a} of {s}");
                return new TupleValue(Enumerable.Range(0, (int)n).Select(_ => (Value)new TensorValue(s.With(a, part))).ToList());
            }, returnsTuple: true);

        Fn("concat", new[] { Req("tensors", MixType.Tensor.Array()), Opt("dim", MixType.Int, I(-1)) }, 0,
            "([..., a, ...], [..., b, ...]) -> [..., a+b, ...]", "joins tensors along one axis", c =>
            {
                if (c.Arg("tensors").AsItems() is not { } items || items.Count == 0) return UnknownValue.Instance;
                var shapes = items.Select(v => (v as TensorValue)?.Shape).ToList();
                if (shapes.Any(x => x is null)) return UnknownValue.Instance;
                var first = shapes[0]!;
                if (Axis(c, first, "dim") is not int a) return UnknownValue.Instance;
                var total = Dim.Const(0);
                foreach (var sh in shapes)
                {
                    if (sh!.Rank != first.Rank || Enumerable.Range(0, first.Rank).Any(k => k != a && !Shape.Compatible(sh[k], first[k])))
                    {
                        c.Report(DiagnosticIds.ConcatMismatch, $"concat along axis {a} of {first} and {sh}: they differ on another axis");
                        return UnknownValue.Instance;
                    }
                    total = total + sh[a];
                }
                return new TensorValue(first.With(a, total));
            });

        Fn("mean", new[] { TensorParam(), Req("dims", MixType.Int.Array()), Opt("keepdim", MixType.Bool, B(false)) }, 1,
            "[...] -> [...] without (or with size-1) dims", "average over axes", c =>
            {
                if (c.Input() is not Shape s || c.Arg("dims").AsItems() is not { } items) return UnknownValue.Instance;
                var axes = new HashSet<int>();
                foreach (var v in items)
                {
                    if (v.AsLong() is not long l) return UnknownValue.Instance;
                    var ax = (int)(l < 0 ? l + s.Rank : l);
                    if (ax < 0 || ax >= s.Rank) { c.Report(DiagnosticIds.BadAxis, $"mean over axis {l} of {s}, which has {s.Rank} axes"); return UnknownValue.Instance; }
                    axes.Add(ax);
                }
                bool keep = c.Bool("keepdim") == true;
                var d = new List<Dim>();
                for (int k = 0; k < s.Rank; k++)
                {
                    if (!axes.Contains(k)) d.Add(s[k]);
                    else if (keep) d.Add(Dim.Const(1));
                }
                return new TensorValue(new Shape(d, s.ElementType));
            });

        Fn("softmax", new[] { TensorParam(), Opt("dim", MixType.Int, I(-1)) }, 1, "[...] -> [...]", "softmax along an axis", c =>
        {
            if (c.Input() is not Shape s || Axis(c, s, "dim") is null) return UnknownValue.Instance;
            return Same(c);
        });

        Fn("sqrt", new[] { TensorParam() }, 1, "[...] -> [...]", "elementwise square root", Same);

        Fn("patchify", new[] { TensorParam(), Req("patch_length", MixType.Int), Req("patch_stride", MixType.Int) }, 1,
            "[B, L, C] -> [B, C, (L − patch_length)/patch_stride + 1, patch_length]",
            "overlapping windows along time, per channel (Hugging Face PatchTSMixer's patchify: the first L mod stride steps are dropped)", c =>
            {
                if (c.Input() is not Shape s || !ExpectRank(c, s, 3, "[B, L, C]")) return UnknownValue.Instance;
                CheckPositive(c, "patch_length");
                CheckPositive(c, "patch_stride");
                if (c.Long("patch_stride") is not long stride || stride <= 0) return UnknownValue.Instance;
                var n = (s[1] - c.Dim("patch_length")).FloorDivideBy(stride)! + Dim.Const(1);
                if (n.AsLong is long k && k <= 0)
                {
                    c.Report(DiagnosticIds.InputShapeMismatch, $"patchify needs at least patch_length = {c.Dim("patch_length")} steps; got {s}");
                    return UnknownValue.Instance;
                }
                return new TensorValue(new Shape(new[] { s[0], s[2], n, c.Dim("patch_length") }, s.ElementType));
            });

        Fn("drop_path", new[] { TensorParam(), Opt("p", MixType.Float, F(0.0)) }, 1, "[B, ...] -> [B, ...]",
            "stochastic depth: drops whole samples with probability p while training", c =>
            {
                CheckProbability(c, "p");
                return Same(c);
            });

        Fn("matmul", new[] { TensorParam("a"), TensorParam("b") }, 2, "[..., n, k] @ [..., k, m] -> [..., n, m]", "matrix product", c =>
        {
            if (c.Input(0) is not Shape a || c.Input(1) is not Shape b) return UnknownValue.Instance;
            if (!ExpectMinRank(c, a, 2, "[..., n, k]") || !ExpectMinRank(c, b, 2, "[..., k, m]")) return UnknownValue.Instance;
            if (!Shape.Compatible(a[-1], b[-2]))
            {
                c.Report(DiagnosticIds.ShapeMismatch, $"matmul of {a} and {b}: inner sizes {a[-1]} and {b[-2]} differ");
                return UnknownValue.Instance;
            }
            return new TensorValue(a.With(-1, b[-1]));
        });

        Fn("len", new[] { Req("array", MixType.Any) }, 0, "array -> int", "number of items", c =>
            c.Arg("array").AsItems() is { } items ? I(items.Count) : new IntValue(Dim.Symbol("?len")));

        Fn("sum", new[] { Req("array", MixType.Any) }, 0, "int[] -> int", "sum of the items", c =>
        {
            if (c.Arg("array").AsItems() is not { } items) return new IntValue(Dim.Symbol("?sum"));
            if (items.All(v => v is IntValue)) return new IntValue(items.Aggregate(Dim.Const(0), (acc, v) => acc + ((IntValue)v).Dim));
            var ds = items.Select(v => v.AsDouble()).ToList();
            return new FloatValue(ds.Any(d => d is null) ? null : ds.Sum(d => d!.Value));
        });

        foreach (var isMax in new[] { false, true })
        {
            Fn(isMax ? "max" : "min", new[] { Req("a", MixType.Any), Req("b", MixType.Any) }, 0, "number, number -> number",
                isMax ? "the larger of two numbers" : "the smaller of two numbers", c =>
                {
                    var a = c.Arg("a"); var b = c.Arg("b");
                    if (a is IntValue ia && b is IntValue ib)
                    {
                        if (ia.Dim.AsLong is long x && ib.Dim.AsLong is long y) return I(isMax ? Math.Max(x, y) : Math.Min(x, y));
                        return new IntValue(Dim.Symbol("?minmax"));
                    }
                    if (a.AsDouble() is double p && b.AsDouble() is double q) return F(isMax ? Math.Max(p, q) : Math.Min(p, q));
                    return new FloatValue(null);
                });
        }

        Fn("int", new[] { Req("value", MixType.Any) }, 0, "number -> int", "rounds toward negative infinity", c =>
        {
            var v = c.Arg("value");
            if (v is IntValue iv)
            {
                if (iv.Dim.IsConstant) return I(iv.Dim.ConstantValue.Floor());
                return iv.Dim.HasIntegerCoefficients ? iv : new IntValue(Dim.Symbol($"?int({iv.Dim})"));
            }
            if (v.AsDouble() is double d)
            {
                if (double.IsNaN(d) || double.IsInfinity(d) || Math.Abs(d) > 9e15)
                {
                    c.Report(DiagnosticIds.OutOfRange, $"int() of {d} does not fit a dimension");
                    return UnknownValue.Instance;
                }
                return I((long)Math.Floor(d));
            }
            return new IntValue(Dim.Symbol("?int"));
        });

        Fn("ceil", new[] { Req("value", MixType.Any) }, 0, "number -> int", "rounds toward positive infinity", c =>
        {
            var v = c.Arg("value");
            if (v is IntValue iv)
            {
                if (iv.Dim.IsConstant) return I(-(-iv.Dim.ConstantValue).Floor());
                return iv.Dim.HasIntegerCoefficients ? iv : new IntValue(Dim.Symbol($"ceil({iv.Dim})"));
            }
            if (v.AsDouble() is double d && !double.IsNaN(d) && Math.Abs(d) < 9e15) return I((long)Math.Ceiling(d));
            return new IntValue(Dim.Symbol("?ceil"));
        });
    }

    static void Fn(string name, ParamSpec[] ps, int tensorParams, string contract, string summary, Func<BuiltinCall, Value> apply,
        bool returnsTuple = false, string? tupleWhenGiven = null) =>
        Add(new BuiltinCallable(name, CallableKind.Function, ps, contract, summary)
        {
            Apply = apply, TensorParams = tensorParams, ReturnsTuple = returnsTuple, TupleWhenGiven = tupleWhenGiven,
        });

    static int? Axis(BuiltinCall c, Shape s, string name)
    {
        if (c.Long(name) is not long l) return null;
        var a = l < 0 ? l + s.Rank : l;
        if (a < 0 || a >= s.Rank)
        {
            c.Report(DiagnosticIds.BadAxis, $"{name} = {l} is not an axis of {s}, which has {s.Rank} axes");
            return null;
        }
        return (int)a;
    }

    /// <summary>Divides a product of dims by a symbolic product when it is a factor (H*W*C / C = H*W).</summary>
    static Dim? DivideSymbolic(Dim total, Dim divisor)
    {
        if (divisor.AsSymbol is string sym && total.TryLinearIn(sym, out var coef, out var rest) && rest.IsConstant && rest.ConstantValue.IsZero)
            return Dim.Const(coef);
        return null;
    }
}
