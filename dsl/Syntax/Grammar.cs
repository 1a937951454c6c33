using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Mix.Dsl.Text;
using Sprache;

namespace Mix.Dsl.Syntax;

/// <summary>
/// The Sprache grammar of <c>.mix</c> (docs/language.md has the EBNF). Parsers are built once; error recovery
/// inside bodies reports through <see cref="Recovery"/>, a per-thread sink set by <see cref="MixParser"/>.
/// </summary>
internal static class Grammar
{
    [ThreadStatic] internal static List<(int Position, string Message)>? Recovery;
    /// <summary>Where nesting went too deep (MIX0004), per thread like <see cref="Recovery"/>.</summary>
    [ThreadStatic] internal static List<(int Position, int Length, string Message)>? TooDeep;
    /// <summary>Expression results by position for the file being parsed: a position parsed twice (an alternative
    /// that backtracks) costs nothing the second time, so no input makes parsing exponential.</summary>
    [ThreadStatic] internal static Dictionary<int, IResult<Expr>>? Memo;
    [ThreadStatic] static int s_nesting;

    /// <summary>The failure message of a construct nested too deep; already reported as MIX0004, not as MIX0001.</summary>
    internal const string TooDeepMessage = "nesting too deep";
    /// <summary>Deepest recursion through expressions, statements and prefix operators while parsing.</summary>
    internal const int MaxNesting = ExpressionDepth.Max;
    static readonly string[] TooDeepExpected = { "less nesting" };

    static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        // model, block and mixer only start definitions, so they stay usable as layer names (HF's `mixer`).
        "import", "enum", "return", "if", "then", "else", "for", "in",
        "true", "false", "none", "and", "or", "not",
    };

    /// <summary>A parsed value with its source span.</summary>
    readonly struct SpannedValue<T>
    {
        public SpannedValue(T value, TextSpan span) { Value = value; Span = span; }
        public T Value { get; }
        public TextSpan Span { get; }
    }

    static TextSpan SpanOf<T>(SpannedValue<T> s) => s.Span;

    /// <summary>A forward reference that counts nesting: past <see cref="MaxNesting"/> levels (or when the thread's
    /// stack runs low) it fails with <see cref="TooDeepMessage"/> and records where, instead of recursing on.</summary>
    static Parser<T> Nested<T>(Func<Parser<T>> reference)
    {
        Parser<T>? p = null;
        return i =>
        {
            if (s_nesting >= MaxNesting || !StackDepth.HasRoom()) return NestingFailure<T>(i, $"expressions nest more than {MaxNesting} deep; split the expression into named parts");
            s_nesting++;
            try { return (p ??= reference())(i); }
            finally { s_nesting--; }
        };
    }

    static IResult<T> NestingFailure<T>(IInput i, string message)
    {
        var at = SkipWs(i);
        int len = at.AtEnd ? 0 : 1;
        if (TooDeep is { } list && !list.Exists(t => t.Position == at.Position)) list.Add((at.Position, len, message));
        return Result.Failure<T>(at, TooDeepMessage, TooDeepExpected);
    }

    /// <summary>Rejects a parsed expression whose tree is deeper than <see cref="ExpressionDepth.Max"/>, at the node
    /// that goes too deep; the input is consumed, so recovery resumes after the expression.</summary>
    static IResult<Expr> DepthChecked(IResult<Expr> r)
    {
        if (!r.WasSuccessful || s_nesting > 0) return r; // the outermost expression covers the ones inside it
        if (ExpressionDepth.FindTooDeep(r.Value) is not { } deep) return r;
        var message = $"this expression nests more than {ExpressionDepth.Max} levels (each operator of a chain such as 'a + b + ...' and each 'else if' is a level); split it into named parts";
        var start = deep.Span.Start;
        if (TooDeep is { } list && !list.Exists(t => t.Position == start)) list.Add((start, Math.Max(0, Math.Min(deep.Span.Length, 1)), message));
        return Result.Failure<Expr>(r.Remainder, TooDeepMessage, TooDeepExpected);
    }

    /// <summary>
    /// Like Sprache's <c>Span()</c>, but without the whitespace around the match: token parsers skip the whitespace
    /// that follows them, and a diagnostic on <c>true x layer</c> must underline <c>true</c>, not <c>true </c>.
    /// </summary>
    static Parser<SpannedValue<T>> Spanned<T>(this Parser<T> parser) => input =>
    {
        var r = parser(input);
        if (!r.WasSuccessful) return Result.Failure<SpannedValue<T>>(r.Remainder, r.Message, r.Expectations);
        var src = input.Source;
        int start = input.Position, end = r.Remainder.Position;
        while (start < end && char.IsWhiteSpace(src[start])) start++;
        while (end > start && char.IsWhiteSpace(src[end - 1])) end--;
        return Result.Success(new SpannedValue<T>(r.Value, TextSpan.FromBounds(start, end)), r.Remainder);
    };

    // ---- lexical -------------------------------------------------------------------------------------------

    // Hand-written token parsers: Sprache's character combinators format a failure message at every failed
    // attempt, which made parsing ~10x slower. These fail with shared, preallocated expectations instead.

    static IInput SkipWs(IInput i)
    {
        var src = i.Source;
        int p = i.Position;
        while (p < src.Length && char.IsWhiteSpace(src[p])) p++;
        return Skip(i, p - i.Position);
    }

    static IResult<T> Fail<T>(IInput i, string[] expected) => Result.Failure<T>(i, "unexpected input", expected);

    static IInput Skip(IInput i, int n)
    {
        if (i is FastInput f) return f.Skip(n);
        for (int k = 0; k < n; k++) i = i.Advance();
        return i;
    }

    static bool Matches(IInput i, string s)
    {
        var src = i.Source;
        return i.Position + s.Length <= src.Length && string.CompareOrdinal(src, i.Position, s, 0, s.Length) == 0;
    }

    static bool IsIdentChar(char c) => c < 128 && (char.IsLetterOrDigit(c) || c == '_');

    static Parser<string> Sym(string s)
    {
        var expected = new[] { $"'{s}'" };
        return input =>
        {
            var i = SkipWs(input);
            if (!Matches(i, s)) return Fail<string>(i, expected);
            return Result.Success(s, SkipWs(Skip(i, s.Length)));
        };
    }

    /// <summary>An operator that is not the prefix of a longer one (<c>=</c> but not <c>==</c>).</summary>
    static Parser<string> Op(string s, string notFollowedBy)
    {
        var expected = new[] { $"'{s}'" };
        return input =>
        {
            var i = SkipWs(input);
            if (!Matches(i, s)) return Fail<string>(i, expected);
            int after = i.Position + s.Length;
            if (after < i.Source.Length && notFollowedBy.IndexOf(i.Source[after]) >= 0) return Fail<string>(i, expected);
            return Result.Success(s, SkipWs(Skip(i, s.Length)));
        };
    }

    static readonly string[] NameExpected = { "name" };

    static readonly Parser<string> RawIdent = i =>
    {
        if (i.AtEnd || !(char.IsLetter(i.Current) && i.Current < 128 || i.Current == '_')) return Fail<string>(i, NameExpected);
        int start = i.Position, end = start;
        var src = i.Source;
        while (end < src.Length && IsIdentChar(src[end])) end++;
        return Result.Success(src.Substring(start, end - start), Skip(i, end - start));
    };

    static Parser<string> Keyword(string k)
    {
        var expected = new[] { $"'{k}'" };
        return input =>
        {
            var i = SkipWs(input);
            if (!Matches(i, k)) return Fail<string>(i, expected);
            int after = i.Position + k.Length;
            if (after < i.Source.Length && IsIdentChar(i.Source[after])) return Fail<string>(i, expected);
            return Result.Success(k, SkipWs(Skip(i, k.Length)));
        };
    }

    static readonly Parser<Identifier> Ident = input =>
    {
        var i = SkipWs(input);
        var r = RawIdent(i);
        if (!r.WasSuccessful || Keywords.Contains(r.Value)) return Fail<Identifier>(i, NameExpected);
        return Result.Success(new Identifier(TextSpan.FromBounds(i.Position, r.Remainder.Position), r.Value), SkipWs(r.Remainder));
    };

    static readonly string[] NumberExpected = { "number" };

    static readonly Parser<Expr> Number = input =>
    {
        var i = SkipWs(input);
        var src = i.Source;
        int p = i.Position, n = src.Length;
        if (p >= n || !char.IsDigit(src[p]) || src[p] > '9') return Fail<Expr>(i, NumberExpected);
        int e = p;
        while (e < n && src[e] >= '0' && src[e] <= '9') e++;
        if (e + 1 < n && src[e] == '.' && src[e + 1] >= '0' && src[e + 1] <= '9')
        {
            e++;
            while (e < n && src[e] >= '0' && src[e] <= '9') e++;
        }
        if (e < n && (src[e] == 'e' || src[e] == 'E'))
        {
            int x = e + 1;
            if (x < n && (src[x] == '+' || src[x] == '-')) x++;
            if (x < n && src[x] >= '0' && src[x] <= '9')
            {
                while (x < n && src[x] >= '0' && src[x] <= '9') x++;
                e = x;
            }
        }
        var text = src.Substring(p, e - p);
        return Result.Success(MakeNumber(TextSpan.FromBounds(p, e), text), SkipWs(Skip(i, e - p)));
    };

    static Expr MakeNumber(TextSpan span, string text)
    {
        bool isInt = text.IndexOfAny(new[] { '.', 'e', 'E' }) < 0;
        double d = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.PositiveInfinity;
        long? l = isInt && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var lv) ? lv : null;
        if (isInt && l is null) d = double.PositiveInfinity; // reported by the checker as out of range
        return new NumberExpr(span, d, l, text);
    }

    static readonly Parser<Expr> StringLit =
        (from s in (
             from open in Parse.Char('"')
             from body in Parse.Char('\\').Then(_ => Parse.AnyChar).Or(Parse.CharExcept("\"\n")).Many().Text()
             from close in Parse.Char('"')
             select body).Spanned()
         select (Expr)new StringExpr(SpanOf(s), s.Value)).Token().Named("string");

    static readonly string[] SemiExpected = { "';'" };
    static readonly Parser<char> Semi = input =>
    {
        var i = SkipWs(input);
        if (i.AtEnd || i.Current != ';') return Fail<char>(i, SemiExpected);
        return Result.Success(';', SkipWs(Skip(i, 1)));
    };

    // ---- expressions --------------------------------------------------------------------------------------

    static readonly Parser<Expr> ExprRef = Nested(() => Expression!);

    static readonly Parser<string> LParen = Sym("("), RParen = Sym(")"), LBracket = Sym("["), RBracket = Sym("]"),
        LBrace = Sym("{"), RBrace = Sym("}"), Comma = Sym(","), ColonP = Sym(":"), Assign = Op("=", "="), DotDot = Sym("..");

    static readonly Parser<Argument> Arg = input =>
    {
        var i = SkipWs(input);
        string? name = null;
        TextSpan nameSpan = default;
        var id = Ident(i);
        var start = i;
        if (id.WasSuccessful)
        {
            var eq = Assign(id.Remainder);
            if (eq.WasSuccessful) { name = id.Value.Name; nameSpan = id.Value.Span; i = eq.Remainder; }
        }
        var value = ExprRef(i);
        if (!value.WasSuccessful) return Result.Failure<Argument>(value.Remainder, value.Message, value.Expectations);
        return Result.Success(new Argument(TextSpan.FromBounds(start.Position, value.Value.Span.End), name, nameSpan, value.Value), value.Remainder);
    };

    /// <summary><c>open item (, item)* [,] close</c>, returning the items and the end offset of <c>close</c>.</summary>
    static IResult<(List<T> Items, int End)> Delimited<T>(IInput input, Parser<string> open, Parser<T> item, Parser<string> close)
    {
        var o = open(input);
        if (!o.WasSuccessful) return Result.Failure<(List<T>, int)>(o.Remainder, o.Message, o.Expectations);
        var items = new List<T>();
        var i = o.Remainder;
        while (true)
        {
            var c = close(i);
            if (c.WasSuccessful) return Result.Success((items, SkipWsBack(c.Remainder)), c.Remainder);
            if (items.Count > 0)
            {
                var comma = Comma(i);
                if (!comma.WasSuccessful)
                {
                    var expected = c.Expectations.Concat(comma.Expectations).ToArray();
                    return Result.Failure<(List<T>, int)>(comma.Remainder, "unexpected input", expected);
                }
                i = comma.Remainder;
                c = close(i);
                if (c.WasSuccessful) return Result.Success((items, SkipWsBack(c.Remainder)), c.Remainder);
            }
            var r = item(i);
            if (!r.WasSuccessful) return Result.Failure<(List<T>, int)>(r.Remainder, r.Message, r.Expectations);
            items.Add(r.Value);
            i = r.Remainder;
        }
    }

    /// <summary>The offset just after the last non-space character before <paramref name="i"/>.</summary>
    static int SkipWsBack(IInput i)
    {
        int p = i.Position;
        while (p > 0 && char.IsWhiteSpace(i.Source[p - 1])) p--;
        return p;
    }

    internal static readonly Parser<IReadOnlyList<Argument>> ArgList = input =>
    {
        var r = Delimited(input, LParen, Arg, RParen);
        return r.WasSuccessful
            ? Result.Success<IReadOnlyList<Argument>>(r.Value.Items, r.Remainder)
            : Result.Failure<IReadOnlyList<Argument>>(r.Remainder, r.Message, r.Expectations);
    };

    static readonly Parser<Expr> ArrayLit = input =>
    {
        var start = SkipWs(input).Position;
        var r = Delimited(input, LBracket, ExprRef, RBracket);
        return r.WasSuccessful
            ? Result.Success<Expr>(new ArrayExpr(TextSpan.FromBounds(start, r.Value.End), r.Value.Items), r.Remainder)
            : Result.Failure<Expr>(r.Remainder, r.Message, r.Expectations);
    };

    static readonly Parser<Expr> Paren =
        from open in LParen
        from e in ExprRef
        from close in RParen
        select e;

    static readonly Parser<Statement> StatementRef = Nested(() => Statement!);

    static readonly Parser<IEnumerable<char>> Semis = Semi.Many();
    /// <summary>Statements until one fails without consuming input (Sprache's XMany parses the failing item twice,
    /// which doubles the work per nesting level of an unclosed block).</summary>
    static readonly Parser<IEnumerable<Statement>> StatementsP = input =>
    {
        var list = new List<Statement>();
        var i = input;
        while (true)
        {
            var r = StatementRef(i);
            if (!r.WasSuccessful)
                return r.Remainder.Position == i.Position
                    ? Result.Success<IEnumerable<Statement>>(list, i)
                    : Result.Failure<IEnumerable<Statement>>(r.Remainder, r.Message, r.Expectations);
            list.Add(r.Value);
            i = Semis(r.Remainder).Remainder;
        }
    };

    static readonly Parser<Expr> InlineBlock =
        from s in (
            from open in LBrace
            from lead in Semis
            from stmts in StatementsP
            from close in RBrace
            select stmts.ToArray()).Spanned()
        select (Expr)new InlineBlockExpr(SpanOf(s), s.Value);

    static readonly Parser<Expr> Literal =
        Keyword("true").Spanned().Select(s => (Expr)new BoolExpr(SpanOf(s), true))
        .Or(Keyword("false").Spanned().Select(s => (Expr)new BoolExpr(SpanOf(s), false)))
        .Or(Keyword("none").Spanned().Select(s => (Expr)new NoneExpr(SpanOf(s))));

    static readonly string[] ExpressionExpected = { "expression" };
    static readonly Parser<Expr> NameP = Ident.Select(i => (Expr)new NameExpr(i.Span, i.Name));

    /// <summary>Dispatches on the first character rather than trying every alternative.</summary>
    static readonly Parser<Expr> Primary = input =>
    {
        var i = SkipWs(input);
        if (i.AtEnd) return Fail<Expr>(i, ExpressionExpected);
        char c = i.Current;
        if (c >= '0' && c <= '9') return Number(i);
        switch (c)
        {
            case '"': return StringLit(i);
            case '{': return InlineBlock(i);
            case '[': return ArrayLit(i);
            case '(': return Paren(i);
        }
        if (c == 't' || c == 'f' || c == 'n')
        {
            var lit = Literal(i);
            if (lit.WasSuccessful) return lit;
        }
        if (char.IsLetter(c) || c == '_') return NameP(i);
        return Fail<Expr>(i, ExpressionExpected);
    };

    static readonly Parser<IOption<Expr>> OptExpr = ExprRef.Optional();
    static readonly Parser<IOption<string>> OptColon = ColonP.Optional();
    static readonly IOption<Expr> EmptyExprOption =
        ((Parser<Expr>)(i => Fail<Expr>(i, ExpressionExpected))).Optional()(new FastInput("")).Value;
    static readonly Parser<IOption<Expr>> NoExpr = i => Result.Success(EmptyExprOption, i);

    /// <summary>Calls and indexing after a primary: <c>f(a)(b)[i][j:k]</c>.</summary>
    static readonly Parser<Expr> Postfix = input =>
    {
        var r = Primary(input);
        if (!r.WasSuccessful) return r;
        var acc = r.Value;
        var i = r.Remainder;
        while (!i.AtEnd)
        {
            if (i.Current == '(')
            {
                var args = Delimited(i, LParen, Arg, RParen);
                if (!args.WasSuccessful) return Result.Failure<Expr>(args.Remainder, args.Message, args.Expectations);
                acc = new CallExpr(TextSpan.FromBounds(acc.Span.Start, args.Value.End), acc, args.Value.Items);
                i = args.Remainder;
            }
            else if (i.Current == '[')
            {
                var open = LBracket(i);
                var start = OptExpr(open.Remainder);
                var colon = OptColon(start.Remainder);
                var stop = colon.Value.IsDefined ? OptExpr(colon.Remainder) : NoExpr(colon.Remainder);
                var close = RBracket(stop.Remainder);
                if (!close.WasSuccessful) return Result.Failure<Expr>(close.Remainder, close.Message, close.Expectations);
                if (!start.Value.IsDefined && !colon.Value.IsDefined) return Fail<Expr>(stop.Remainder, ExpressionExpected);
                var span = TextSpan.FromBounds(acc.Span.Start, SkipWsBack(close.Remainder));
                acc = colon.Value.IsDefined
                    ? new SliceExpr(span, acc, start.Value.GetOrDefault(), stop.Value.GetOrDefault())
                    : new IndexExpr(span, acc, start.Value.Get());
                i = close.Remainder;
            }
            else if (i.Current == '.' && AfterDotIsName(i))
            {
                var name = Ident(i.Advance());
                if (!name.WasSuccessful) return Result.Failure<Expr>(name.Remainder, name.Message, name.Expectations);
                acc = new MemberExpr(TextSpan.FromBounds(acc.Span.Start, name.Value.Span.End), acc, name.Value.Name, name.Value.Span);
                i = name.Remainder;
            }
            else break;
        }
        return Result.Success(acc, i);
    };

    /// <summary><c>conv1d.weight</c> rather than the range <c>a..b</c> of a for loop.</summary>
    static bool AfterDotIsName(IInput i)
    {
        var next = i.Advance();
        return !next.AtEnd && (char.IsLetter(next.Current) || next.Current == '_');
    }

    static readonly Parser<Expr> UnaryRef = Nested(() => Unary!);
    static readonly Parser<string> MinusP = Op("-", ">"), NotP = Keyword("not");

    static readonly Parser<Expr> Unary = input =>
    {
        var i = SkipWs(input);
        var op = MinusP(i);
        if (!op.WasSuccessful) op = NotP(i);
        if (!op.WasSuccessful) return Postfix(i);
        var operand = UnaryRef(op.Remainder);
        if (!operand.WasSuccessful) return operand;
        return Result.Success<Expr>(new UnaryExpr(TextSpan.FromBounds(i.Position, operand.Value.Span.End), op.Value, operand.Value), operand.Remainder);
    };

    /// <summary>Left-associative chain, iterative so long chains cannot overflow the stack. An operator must be
    /// followed by an operand: <c>a + </c> is an error at the missing operand.</summary>
    static Parser<Expr> Chain(Parser<Expr> operand, Parser<string> op) => input =>
    {
        var first = operand(input);
        if (!first.WasSuccessful) return first;
        var acc = first.Value;
        var i = first.Remainder;
        while (true)
        {
            var at = SkipWs(i);
            var o = op(at);
            if (!o.WasSuccessful) break;
            var r = operand(o.Remainder);
            if (!r.WasSuccessful) return r;
            acc = new BinaryExpr(TextSpan.FromBounds(acc.Span.Start, r.Value.Span.End), o.Value, new TextSpan(at.Position, o.Value.Length), acc, r.Value);
            i = r.Remainder;
        }
        return Result.Success(acc, i);
    };

    static Parser<string> AnyOf(params Parser<string>[] ops) => i =>
    {
        IResult<string>? last = null;
        foreach (var p in ops)
        {
            var r = p(i);
            if (r.WasSuccessful) return r;
            last = r;
        }
        return Result.Failure<string>(i, "unexpected input", ops.Length == 0 ? Array.Empty<string>() : last!.Expectations);
    };

    static readonly Parser<Expr> Multiplicative =
        Chain(Unary, AnyOf(Op("//", "="), Op("/", "/="), Op("*", "="), Op("%", "=")));

    static readonly Parser<Expr> Additive =
        Chain(Multiplicative, AnyOf(Op("+", "="), Op("-", ">=")));

    static readonly Parser<string> TimesX = Keyword("x");

    static readonly Parser<Expr> Repeat = input =>
    {
        var count = Additive(input);
        if (!count.WasSuccessful) return count;
        var x = TimesX(count.Remainder);
        if (!x.WasSuccessful) return count;
        var body = Additive(x.Remainder);
        if (!body.WasSuccessful) return count; // `a x` where x is a name on its own: not a repeat
        return Result.Success<Expr>(new RepeatExpr(TextSpan.FromBounds(count.Value.Span.Start, body.Value.Span.End), count.Value, body.Value), body.Remainder);
    };

    static readonly Parser<string> CompareOp =
        AnyOf(Op("==", "="), Op("!=", "="), Op("<=", "="), Op(">=", "="), Op("<", "="), Op(">", "="));

    static readonly Parser<Expr> Comparison = input =>
    {
        var left = Repeat(input);
        if (!left.WasSuccessful) return left;
        var at = SkipWs(left.Remainder);
        var o = CompareOp(at);
        if (!o.WasSuccessful) return left;
        var right = Repeat(o.Remainder);
        if (!right.WasSuccessful) return right;
        return Result.Success<Expr>(new BinaryExpr(TextSpan.FromBounds(left.Value.Span.Start, right.Value.Span.End), o.Value,
            new TextSpan(at.Position, o.Value.Length), left.Value, right.Value), right.Remainder);
    };

    static readonly Parser<Expr> And = Chain(Comparison, Keyword("and"));
    static readonly Parser<Expr> Or = Chain(And, Keyword("or"));
    static readonly Parser<Expr> Pipe = Chain(Or, Op("|>", ""));

    static readonly Parser<Expr> If =
        from s in (
            from kw in Keyword("if")
            from c in ExprRef
            from t in Keyword("then")
            from a in ExprRef
            from e in Keyword("else")
            from b in ExprRef
            select (c, a, b)).Spanned()
        select (Expr)new IfExpr(SpanOf(s), s.Value.c, s.Value.a, s.Value.b);

    static readonly Parser<Expr> For =
        from s in (
            from kw in Keyword("for")
            from v in Ident
            from inKw in Keyword("in")
            from start in Additive
            from dots in Sym("..")
            from end in Additive
            from colon in Sym(":")
            from body in ExprRef
            select (v, start, end, body)).Spanned()
        select (Expr)new ForExpr(SpanOf(s), s.Value.v.Name, s.Value.v.Span, s.Value.start, s.Value.end, s.Value.body);

    static readonly Parser<Expr> ExpressionUnmemoised = If.Or(For).Or(Pipe);

    internal static readonly Parser<Expr> Expression = input =>
    {
        var memo = Memo;
        if (memo is null) return ExpressionUnmemoised(input);
        if (memo.TryGetValue(input.Position, out var hit) && ReferenceEquals(hit.Remainder.Source, input.Source)) return hit;
        var r = ExpressionUnmemoised(input);
        memo[input.Position] = r;
        return r;
    };

    /// <summary>An expression that is not part of a larger one (a parameter default, an alias), depth-checked.</summary>
    static readonly Parser<Expr> TopExpression = i => DepthChecked(Expression(i));
    static readonly Parser<Expr> ShapeDim = i => DepthChecked(Additive(i));

    // ---- statements ---------------------------------------------------------------------------------------

    internal static readonly Parser<Annotation> AnnotationP =
        (from s in (
             from at in Parse.Char('@')
             from name in RawIdent.Spanned()
             from args in ArgList.Optional()
             select (name, args)).Spanned()
         select new Annotation(SpanOf(s), new Identifier(SpanOf(s.Value.name), s.Value.name.Value),
             s.Value.args.GetOrElse(Array.Empty<Argument>()))).Token();

    static readonly Parser<IEnumerable<Annotation>> Annotations = AnnotationP.Many();
    static readonly Parser<string> ReturnKw = Keyword("return");
    static readonly Parser<IEnumerable<Identifier>> Targets = Ident.DelimitedBy(Comma);
    static readonly Annotation[] NoAnnotations = new Annotation[0];

    /// <summary><c>[@ann...] return expr</c> or <c>[@ann...] a, b = expr</c>.</summary>
    internal static readonly Parser<Statement> Statement = input =>
    {
        var i = SkipWs(input);
        int start = i.Position;
        Annotation[] ann = NoAnnotations;
        if (!i.AtEnd && i.Current == '@')
        {
            var a = Annotations(i);
            ann = a.Value.ToArray();
            i = a.Remainder;
        }
        var ret = ReturnKw(i);
        if (ret.WasSuccessful)
        {
            var e = DepthChecked(Expression(ret.Remainder));
            if (!e.WasSuccessful) return Result.Failure<Statement>(e.Remainder, e.Message, e.Expectations);
            return Result.Success<Statement>(new ReturnStatement(TextSpan.FromBounds(start, e.Value.Span.End), ann, e.Value), e.Remainder);
        }
        var targets = Targets(i);
        if (!targets.WasSuccessful)
            return Result.Failure<Statement>(targets.Remainder, "unexpected input", new[] { "'return'", "name" });
        var eq = Assign(targets.Remainder);
        if (!eq.WasSuccessful) return Result.Failure<Statement>(eq.Remainder, eq.Message, eq.Expectations);
        var value = DepthChecked(Expression(eq.Remainder));
        if (!value.WasSuccessful) return Result.Failure<Statement>(value.Remainder, value.Message, value.Expectations);
        return Result.Success<Statement>(new BindingStatement(TextSpan.FromBounds(start, value.Value.Span.End), ann, targets.Value.ToArray(), value.Value), value.Remainder);
    };


    // ---- declarations -------------------------------------------------------------------------------------

    static readonly Parser<TypeRef> TypeP =
        from s in (
            from name in RawIdent
            from elOpt in Parse.Char('?').Optional()
            from arr in (from o in Parse.Char('[').Token() from c in Parse.Char(']') select true).Optional()
            from opt in (arr.IsDefined ? Parse.Char('?').Optional() : Parse.Return(elOpt))
            select (name, elOpt: arr.IsDefined && elOpt.IsDefined, arr: arr.IsDefined, opt: arr.IsDefined ? opt.IsDefined : elOpt.IsDefined)).Spanned()
        select new TypeRef(SpanOf(s), s.Value.name, s.Value.arr, s.Value.opt, s.Value.elOpt);

    static readonly Parser<Parameter> ParameterP =
        from s in (
            from name in Ident
            from colon in Sym(":")
            from type in TypeP.Token()
            from def in (from eq in Op("=", "=") from e in TopExpression select e).Optional()
            select (name, type, def)).Spanned()
        select new Parameter(SpanOf(s), s.Value.name, s.Value.type, s.Value.def.GetOrDefault());

    internal static readonly Parser<ShapeRef> ShapeP =
        (from s in (
             from et in RawIdent.Optional()
             from open in Sym("[")
             from dims in ShapeDim.DelimitedBy(Sym(","))
             from close in Sym("]")
             select (et, dims)).Spanned()
         select new ShapeRef(SpanOf(s), s.Value.et.GetOrDefault(), s.Value.dims.ToArray())).Token().Named("shape");

    static readonly Parser<InputDecl> InputP =
        from s in (
            from name in Ident
            from colon in Sym(":")
            from shape in ShapeP
            select (name, shape)).Spanned()
        select new InputDecl(SpanOf(s), s.Value.name, s.Value.shape);

    static readonly Parser<Signature> SignatureP =
        from s in (
            from open in Sym("(")
            from inputs in InputP.DelimitedBy(Sym(","))
            from close in Sym(")")
            from arrow in Sym("->")
            from output in ShapeP
            select (inputs, output)).Spanned()
        select new Signature(SpanOf(s), s.Value.inputs.ToArray(), s.Value.output);

    static readonly Parser<DefinitionKind> KindP =
        Keyword("model").Return(DefinitionKind.Model)
            .Or(Keyword("block").Return(DefinitionKind.Block))
            .Or(Keyword("mixer").Return(DefinitionKind.Mixer));

    /// <summary>A body: statements separated by <c>;</c>, recovering at each statement.</summary>
    static readonly Parser<IReadOnlyList<Statement>> Body = input =>
    {
        var open = Sym("{")(input);
        if (!open.WasSuccessful) return Result.Failure<IReadOnlyList<Statement>>(open.Remainder, open.Message, open.Expectations);
        var list = new List<Statement>();
        var i = open.Remainder;
        while (true)
        {
            i = SkipSeparators(i);
            if (i.AtEnd) return Result.Failure<IReadOnlyList<Statement>>(i, "unexpected end of file", new[] { "'}'" });
            if (i.Current == '}') return Result.Success<IReadOnlyList<Statement>>(list, i.Advance());
            int deepBefore = TooDeep?.Count ?? 0;
            var r = Statement(i);
            if (r.WasSuccessful)
            {
                var after = SkipSpaces(r.Remainder);
                if (after.AtEnd || after.Current == ';' || after.Current == '}')
                {
                    list.Add(r.Value);
                    i = after;
                    continue;
                }
                Recovery?.Add((after.Position, $"unexpected {Describe(after)}; expected the end of the statement (a new line or ';')"));
                i = SkipStatement(after);
                continue;
            }
            // Nesting too deep is reported once, as MIX0004; what fails after it is the same mistake.
            if (r.Message != TooDeepMessage && (TooDeep?.Count ?? 0) == deepBefore) Recovery?.Add((r.Remainder.Position, FailureMessage(r)));
            i = SkipStatement(r.Remainder.Position > i.Position ? r.Remainder : i);
        }
    };

    internal static string Describe(IInput i) => i.AtEnd ? "end of file" : i.Current == ';' ? "end of line" : $"'{i.Current}'";

    internal static string FailureMessage<T>(IResult<T> r)
    {
        var exp = r.Expectations.Distinct().Take(6).ToArray();
        var found = Describe(r.Remainder);
        return exp.Length > 0 ? $"unexpected {found}; expected {string.Join(" or ", exp)}" : $"unexpected {found}";
    }

    internal static IInput SkipSpaces(IInput i)
    {
        while (!i.AtEnd && char.IsWhiteSpace(i.Current)) i = i.Advance();
        return i;
    }

    internal static IInput SkipSeparators(IInput i)
    {
        while (!i.AtEnd && (char.IsWhiteSpace(i.Current) || i.Current == ';')) i = i.Advance();
        return i;
    }

    /// <summary>Skips to the next <c>;</c> or the <c>}</c> that closes the body, respecting brackets.</summary>
    internal static IInput SkipStatement(IInput i)
    {
        int depth = 0;
        while (!i.AtEnd)
        {
            char c = i.Current;
            if (c == '"')
            {
                i = i.Advance();
                while (!i.AtEnd && i.Current != '"' && i.Current != '\n') i = i.Advance();
                if (!i.AtEnd) i = i.Advance();
                continue;
            }
            if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']') { if (depth > 0) depth--; }
            else if (c == '}')
            {
                if (depth == 0) return i;
                depth--;
            }
            else if (c == ';' && depth == 0) return i;
            i = i.Advance();
        }
        return i;
    }

    static readonly Parser<TopLevel> DefinitionP =
        from s in (
            from ann in AnnotationP.Many()
            from kind in KindP
            from name in Ident
            from open in Sym("(")
            from ps in ParameterP.DelimitedBy(Sym(",")).Optional()
            from trailing in Sym(",").Optional()
            from close in Sym(")")
            from sig in SignatureP.Optional()
            from body in Body.Select(b => (body: b, alias: (Expr?)null))
                .Or(from eq in Op("=", "=") from e in TopExpression select (body: (IReadOnlyList<Statement>?)null, alias: (Expr?)e))
            select (ann, kind, name, ps, sig, body)).Spanned()
        select (TopLevel)new Definition(SpanOf(s), s.Value.ann.ToArray(), s.Value.kind, s.Value.name,
            s.Value.ps.IsDefined ? s.Value.ps.Get().ToArray() : Array.Empty<Parameter>(),
            s.Value.sig.GetOrDefault(), s.Value.body.body, s.Value.body.alias);

    static readonly Parser<TopLevel> ImportP =
        from s in (
            from kw in Keyword("import")
            from path in StringLit
            select (StringExpr)path).Spanned()
        select (TopLevel)new ImportDecl(SpanOf(s), s.Value.Value, s.Value.Span);

    static readonly Parser<TopLevel> EnumP =
        from s in (
            from kw in Keyword("enum")
            from name in Ident
            from open in Sym("{")
            from lead in Semi.Many()
            from members in Ident.DelimitedBy(Sym(",").Or(Semi.Once().Text()).AtLeastOnce())
            from trail in Sym(",").Or(Semi.Once().Text()).Many()
            from close in Sym("}")
            select (name, members)).Spanned()
        select (TopLevel)new EnumDecl(SpanOf(s), s.Value.name, s.Value.members.ToArray());

    internal static readonly Parser<TopLevel> TopLevelItem = ImportP.Or(EnumP).Or(DefinitionP);
}
