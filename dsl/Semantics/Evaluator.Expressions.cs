using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

internal sealed partial class Evaluator
{
    internal Value Eval(Expr e, Frame f)
    {
        Step();
        // Trees are at most ExpressionDepth.Max deep, but layers nest inside layers: when the thread's stack runs
        // low this throws, and Guard turns it into MIX0004 rather than the process dying.
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (e)
        {
            case NumberExpr n:
                if (n.IntValue is long l) return new IntValue(Dim.Const(l));
                if (double.IsInfinity(n.Value) || double.IsNaN(n.Value))
                {
                    Report(f, n.Span, DiagnosticIds.NumberOutOfRange, $"number '{Clip(n.Text)}' is too large");
                    return UnknownValue.Instance;
                }
                return new FloatValue(n.Value);
            case StringExpr s: return new StringValue(s.Value);
            case BoolExpr b: return new BoolValue(b.Value);
            case NoneExpr: return NoneValue.Instance;
            case NameExpr name: return EvalName(name, f);
            case UnaryExpr u: return EvalUnary(u, f);
            case BinaryExpr { Op: "|>" } pipe: return EvalPipe(pipe, f);
            case BinaryExpr b: return EvalBinary(b, f);
            case CallExpr c: return EvalCall(c, f, null);
            case IndexExpr ix: return EvalIndex(ix, f);
            case MemberExpr m: return EvalMember(m, f);
            case SliceExpr sl: return EvalSlice(sl, f);
            case ArrayExpr a: return new ArrayValue(a.Items.Select(i => Eval(i, f)).ToList());
            case IfExpr ife: return EvalIf(ife, f);
            case ForExpr fe: return EvalFor(fe, f);
            case RepeatExpr r: return EvalRepeat(r, f);
            case InlineBlockExpr ib:
                return new FactoryValue(new InlineCallable(ib, f.File.File, f.Scope), new Dictionary<string, Value>());
            default:
                return UnknownValue.Instance;
        }
    }

    static string Clip(string s) => s.Length > 24 ? s.Substring(0, 24) + "…" : s;

    Value EvalName(NameExpr n, Frame f)
    {
        if (f.Scope.TryGet(n.Name, out var v)) return v;
        var callable = FindCallable(f.File, n.Name);
        if (callable is UserCallable u && _active.Contains(u))
        {
            // At the name, where the definition uses itself, rather than later where the layer it makes is applied.
            Report(f, n.Span, DiagnosticIds.Recursion, RecursionMessage(u));
            return UnknownValue.Instance;
        }
        if (callable is not null) return new FactoryValue(callable, new Dictionary<string, Value>());
        if (f.File.Ready().EnumMembers.TryGetValue(n.Name, out var enumName)) return new EnumValue(enumName, n.Name);
        if (IsShapeSymbol(n.Name))
        {
            switch (f.FreeSymbols)
            {
                case FreeSymbols.Symbol: return new IntValue(Dim.Symbol(n.Name));
                case FreeSymbols.Placeholder: return new IntValue(Dim.Symbol("$" + n.Name));
            }
        }
        Report(f, n.Span, DiagnosticIds.UnknownName, $"unknown name '{n.Name}'{DidYouMean(f, n.Name)}");
        return UnknownValue.Instance;
    }

    Value EvalUnary(UnaryExpr u, Frame f)
    {
        var v = Eval(u.Operand, f);
        switch (u.Op, v)
        {
            case ("-", IntValue i): return new IntValue(Dim.Const(0) - i.Dim);
            case ("-", FloatValue fl): return new FloatValue(-fl.Value);
            case ("-", TensorValue): return v;
            case ("not", BoolValue b): return new BoolValue(b.Value is bool x ? !x : null);
            case ("not", TensorValue { Shape.ElementType: "bool" }): return v;
            case ("not", TensorValue t):
                Report(f, u.Span, DiagnosticIds.DtypeMismatch, $"'not' needs a bool tensor (a comparison such as x > 0); got {t.Shape}");
                return UnknownValue.Instance;
            case (_, UnknownValue): return v;
        }
        Report(f, u.Span, DiagnosticIds.WrongKind, $"'{u.Op}' cannot apply to {Describe(v)}");
        return UnknownValue.Instance;
    }

    Value EvalBinary(BinaryExpr b, Frame f)
    {
        var l = Eval(b.Left, f);
        var r = Eval(b.Right, f);
        if (l is UnknownValue || r is UnknownValue) return b.Op is "and" or "or" or "==" or "!=" or "<" or "<=" or ">" or ">=" ? new BoolValue(null) : UnknownValue.Instance;
        if ((l is TensorValue || r is TensorValue) && b.Op is "and" or "or")
        {
            foreach (var side in new[] { l, r })
                if (side is not TensorValue { Shape.ElementType: "bool" } && side is not BoolValue)
                {
                    Report(f, b.OpSpan, DiagnosticIds.DtypeMismatch, $"'{b.Op}' combines bool tensors (comparisons); found {Describe(side)}");
                    return UnknownValue.Instance;
                }
            return TensorArithmetic(b, l, r, f) is TensorValue both ? new TensorValue(new Shape(both.Shape.Dims, "bool")) : UnknownValue.Instance;
        }
        if ((l is TensorValue || r is TensorValue) && b.Op is "==" or "!=" or "<" or "<=" or ">" or ">=")
            return TensorArithmetic(b, l, r, f) is TensorValue cmp ? new TensorValue(new Shape(cmp.Shape.Dims, "bool")) : UnknownValue.Instance;
        switch (b.Op)
        {
            case "and":
            case "or":
                if (l is BoolValue lb && r is BoolValue rb)
                {
                    if (b.Op == "and") return new BoolValue(lb.Value == false || rb.Value == false ? false : lb.Value == true && rb.Value == true ? true : null);
                    return new BoolValue(lb.Value == true || rb.Value == true ? true : lb.Value == false && rb.Value == false ? false : null);
                }
                break;
            case "==":
            case "!=":
            {
                bool? eq = Equal(l, r);
                return new BoolValue(eq is null ? null : b.Op == "==" ? eq : !eq);
            }
            case "<": case "<=": case ">": case ">=":
            {
                if (l.AsDouble() is double x && r.AsDouble() is double y)
                    return new BoolValue(b.Op switch { "<" => x < y, "<=" => x <= y, ">" => x > y, _ => x >= y });
                if ((l is IntValue or FloatValue) && (r is IntValue or FloatValue)) return new BoolValue(null);
                break;
            }
            default:
                if (l is TensorValue || r is TensorValue) return TensorArithmetic(b, l, r, f);
                if (l is IntValue li && r is IntValue ri)
                {
                    try
                    {
                        Charge(4 * li.Dim.TermCount * ri.Dim.TermCount); // a term pair costs about four steps
                        return IntArithmetic(b, li.Dim, ri.Dim, f);
                    }
                    catch (ValueTooLargeException e)
                    {
                        Report(f, b.OpSpan, DiagnosticIds.ValueTooLarge, e.Message);
                        return UnknownValue.Instance;
                    }
                }
                if ((l is IntValue or FloatValue) && (r is IntValue or FloatValue))
                {
                    var x = l.AsDouble();
                    var y = r.AsDouble();
                    if (x is null || y is null) return new FloatValue(null);
                    return new FloatValue(b.Op switch
                    {
                        "+" => x + y, "-" => x - y, "*" => x * y,
                        "/" => y == 0 ? null : x / y, "//" => y == 0 ? null : Math.Floor(x.Value / y.Value),
                        "%" => y == 0 ? null : x % y, _ => null,
                    });
                }
                if (b.Op == "+" && l is StringValue ls && r is StringValue rs)
                {
                    if (ls.Value is null || rs.Value is null) return new StringValue(null);
                    if ((long)ls.Value.Length + rs.Value.Length > ValueBudget.MaxStringLength)
                    {
                        Report(f, b.OpSpan, DiagnosticIds.ValueTooLarge, $"a string longer than {ValueBudget.MaxStringLength} characters is too large to check");
                        return UnknownValue.Instance;
                    }
                    Charge((ls.Value.Length + rs.Value.Length) / 64);
                    return new StringValue(ls.Value + rs.Value);
                }
                break;
        }
        Report(f, b.OpSpan, DiagnosticIds.WrongKind, $"'{b.Op}' cannot combine {Describe(l)} and {Describe(r)}");
        return UnknownValue.Instance;
    }

    static bool? Equal(Value l, Value r)
    {
        switch (l, r)
        {
            case (IntValue a, IntValue b):
                if (a.Dim.Equals(b.Dim)) return true;
                if (a.Dim.IsConstant && b.Dim.IsConstant) return false;
                return null;
            case (IntValue or FloatValue, IntValue or FloatValue):
                return l.AsDouble() is double x && r.AsDouble() is double y ? x == y : null;
            case (BoolValue a, BoolValue b): return a.Value is null || b.Value is null ? null : a.Value == b.Value;
            case (StringValue a, StringValue b): return a.Value is null || b.Value is null ? null : a.Value == b.Value;
            case (EnumValue a, EnumValue b): return a.Member is null || b.Member is null ? null : a.EnumName == b.EnumName && a.Member == b.Member;
            case (NoneValue, NoneValue): return true;
            case (NoneValue, _): return r is UnknownValue ? null : false;
            case (_, NoneValue): return l is UnknownValue ? null : false;
            default: return null;
        }
    }

    Value IntArithmetic(BinaryExpr b, Dim l, Dim r, Frame f)
    {
        switch (b.Op)
        {
            case "+": return new IntValue(l + r);
            case "-": return new IntValue(l - r);
            case "*": return new IntValue(l * r);
            case "/":
            case "//":
            case "%":
                if (r.IsConstant && r.ConstantValue.IsZero)
                {
                    Report(f, b.Span, DiagnosticIds.OutOfRange, "division by zero");
                    return UnknownValue.Instance;
                }
                if (b.Op == "/")
                {
                    var q = l.DivideBy(r);
                    return q is null ? new IntValue(Dim.Symbol($"?({l})/({r})")) : new IntValue(q);
                }
                if (b.Op == "//")
                {
                    if (r.AsLong is long d && d > 0) return new IntValue(l.FloorDivideBy(d)!);
                    return new IntValue(Dim.Symbol($"?({l})//({r})"));
                }
                if (l.AsLong is long a && r.AsLong is long m) return new IntValue(Dim.Const(((a % m) + m) % m));
                return new IntValue(Dim.Symbol($"?({l})%({r})"));
        }
        return UnknownValue.Instance;
    }

    /// <summary>Elementwise tensor arithmetic with NumPy broadcasting; a mismatch names both shapes.</summary>
    Value TensorArithmetic(BinaryExpr b, Value l, Value r, Frame f)
    {
        if (l is TensorValue lt && r is TensorValue rt)
        {
            var a = lt.Shape;
            var c = rt.Shape;
            if (Broadcasting.Broadcast(a, c, out var k, out var x, out var y) is Shape joined) return TrueDivision(b, new TensorValue(joined));
            var verb = b.Op switch
            {
                "+" => $"residual '+' adds {c} to {a}",
                "-" => $"'-' subtracts {c} from {a}",
                "*" => $"'*' multiplies {a} by {c}",
                _ => $"'{b.Op}' combines {a} and {c}",
            };
            Report(f, b.Span, DiagnosticIds.ShapeMismatch, $"{verb}: axis {k} is {x} vs {y}");
            return UnknownValue.Instance;
        }
        var t = l as TensorValue ?? (TensorValue)r;
        var other = l is TensorValue ? r : l;
        if (other is IntValue or FloatValue) return TrueDivision(b, other is FloatValue && t.Shape.ElementType is "long" or "int" or "bool" ? new TensorValue(new Shape(t.Shape.Dims, "float")) : t);
        Report(f, b.OpSpan, DiagnosticIds.WrongKind, $"'{b.Op}' cannot combine {Describe(l)} and {Describe(r)}");
        return UnknownValue.Instance;
    }

    Value EvalIndex(IndexExpr ix, Frame f)
    {
        var target = Eval(ix.Target, f);
        var index = Eval(ix.Index, f);
        if (target is UnknownValue || index is UnknownValue) return UnknownValue.Instance;
        if (index is not IntValue iv)
        {
            Report(f, ix.Index.Span, DiagnosticIds.WrongType, $"an index must be an int; found {Describe(index)}");
            return UnknownValue.Instance;
        }
        switch (target)
        {
            case ArrayValue { Items: null } a:
                // An array whose items are not known (a parameter without a default): its items are symbols.
                return a.Element switch
                {
                    IntValue => new IntValue(Dim.Symbol(f.File.Source.Slice(ix.Span).Replace(" ", ""))),
                    { } el => el,
                    _ => UnknownValue.Instance,
                };
            case ArrayValue or TupleValue:
            {
                var items = target.AsItems()!;
                if (iv.Dim.AsLong is long k)
                {
                    var at = k < 0 ? k + items.Count : k;
                    if (at < 0 || at >= items.Count)
                    {
                        Report(f, ix.Index.Span, DiagnosticIds.IndexOutOfRange, $"index {k} is outside an array of {items.Count}");
                        return UnknownValue.Instance;
                    }
                    return items[(int)at];
                }
                // Symbolic index into a known array: equal items are still known; otherwise a symbol.
                if (items.Count > 0 && items.All(x => x.Equals(items[0]))) return items[0];
                if (items.All(x => x is IntValue)) return new IntValue(Dim.Symbol(f.File.Source.Slice(ix.Span).Replace(" ", "")));
                return UnknownValue.Instance;
            }
            case TensorValue:
                Report(f, ix.Span, DiagnosticIds.WrongKind, "tensors are not indexed in .mix; use split, chunk or reshape");
                return UnknownValue.Instance;
        }
        Report(f, ix.Target.Span, DiagnosticIds.WrongKind, $"{Describe(target)} cannot be indexed");
        return UnknownValue.Instance;
    }

    Value EvalSlice(SliceExpr sl, Frame f)
    {
        var target = Eval(sl.Target, f);
        var start = sl.Start is null ? null : Eval(sl.Start, f);
        var end = sl.End is null ? null : Eval(sl.End, f);
        if (target is UnknownValue) return target;
        if (target.AsItems() is not { } items)
        {
            if (target is ArrayValue) return new ArrayValue(null, (target as ArrayValue)!.Element);
            Report(f, sl.Target.Span, DiagnosticIds.WrongKind, $"{Describe(target)} cannot be sliced");
            return UnknownValue.Instance;
        }
        long s = 0, e = items.Count;
        if (start is not null) { if (start.AsLong() is long x) s = x; else return new ArrayValue(null); }
        if (end is not null) { if (end.AsLong() is long y) e = y; else return new ArrayValue(null); }
        if (s < 0) s += items.Count;
        if (e < 0) e += items.Count;
        s = Math.Max(0, Math.Min(s, items.Count));
        e = Math.Max(s, Math.Min(e, items.Count));
        return new ArrayValue(items.Skip((int)s).Take((int)(e - s)).ToList());
    }

    Value EvalIf(IfExpr ife, Frame f)
    {
        var c = Eval(ife.Condition, f);
        if (c is not (BoolValue or UnknownValue))
        {
            Report(f, ife.Condition.Span, DiagnosticIds.WrongType, $"a condition must be a bool; found {Describe(c)}");
            c = new BoolValue(null);
        }
        if (c.IsKnownTrue()) return Eval(ife.Then, f);
        if (c.IsKnownFalse()) return Eval(ife.Else, f);
        // Unknown condition (a parameter without a default): check both branches.
        var a = Eval(ife.Then, f);
        var b = Eval(ife.Else, f);
        return a is UnknownValue ? b : a;
    }

    bool TryCount(Expr e, Frame f, string what, out long count, out bool known)
    {
        var v = Eval(e, f);
        count = 0;
        known = false;
        if (v is UnknownValue) return false;
        if (v is not IntValue iv || (iv.Dim.IsConstant && !iv.Dim.HasIntegerCoefficients))
        {
            Report(f, e.Span, DiagnosticIds.UnknownBound, $"{what} must be a whole number known when the model is built; found {Describe(v)}");
            return false;
        }
        if (iv.Dim.AsLong is long n && n <= MaxUnroll && n >= -MaxUnroll) { count = n; known = true; }
        return true;
    }

    Value EvalFor(ForExpr fe, Frame f)
    {
        bool okStart = TryCount(fe.Start, f, "a range start", out var start, out var startKnown);
        bool okEnd = TryCount(fe.End, f, "a range end", out var end, out var endKnown);
        if (!okStart || !okEnd) return UnknownValue.Instance;
        // A fresh scope per iteration: inline blocks capture it and run later.
        if (startKnown && endKnown && end - start <= MaxUnroll)
        {
            var items = new List<Value>();
            for (long i = start; i < end; i++)
            {
                var scope = new Scope(f.Scope);
                scope.Set(fe.Variable, new IntValue(Dim.Const(i)));
                items.Add(Eval(fe.Body, f.WithScope(scope)));
            }
            return new ArrayValue(items);
        }
        var symbolic = new Scope(f.Scope);
        symbolic.Set(fe.Variable, new IntValue(Dim.Symbol(fe.Variable)));
        return new ArrayValue(null, Eval(fe.Body, f.WithScope(symbolic)));
    }

    Value EvalRepeat(RepeatExpr r, Frame f)
    {
        if (!TryCount(r.Count, f, "a repeat count", out var n, out var known)) return UnknownValue.Instance;
        if (known && n <= 0)
        {
            Report(f, r.Count.Span, DiagnosticIds.OutOfRange, $"a repeat count must be positive; got {n}");
            return UnknownValue.Instance;
        }
        if (known)
        {
            var items = new List<Value>();
            for (long i = 0; i < n; i++) items.Add(Eval(r.Body, f));
            return new ArrayValue(items) { RepeatSpan = r.Span };
        }
        return new ArrayValue(null, Eval(r.Body, f)) { RepeatSpan = r.Span };
    }

    Value EvalPipe(BinaryExpr pipe, Frame f)
    {
        var input = Eval(pipe.Left, f);
        if (pipe.Right is CallExpr call) return EvalCall(call, f, input);
        var fn = Eval(pipe.Right, f);
        return ApplyValue(fn, new[] { input }, pipe.Right.Span, pipe.Right.Span, f);
    }

    /// <summary>'/' of integer tensors is true division (a float tensor), as in PyTorch.</summary>
    static TensorValue TrueDivision(BinaryExpr b, TensorValue t) =>
        b.Op == "/" && t.Shape.ElementType is "long" or "int" or "bool" ? new TensorValue(new Shape(t.Shape.Dims, "float")) : t;
}
