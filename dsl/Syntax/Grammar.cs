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

    static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        // model, block and mixer only start definitions, so they stay usable as layer names (HF's `mixer`).
        "import", "enum", "return", "if", "then", "else", "for", "in",
        "true", "false", "none", "and", "or", "not",
    };

    /// <summary>A forward reference. Sprache's Parse.Ref memoises failures and then throws when an alternative
    /// revisits the same position, which error recovery does; this one just defers construction.</summary>
    static Parser<T> Lazy<T>(Func<Parser<T>> reference)
    {
        Parser<T>? p = null;
        return i => (p ??= reference())(i);
    }

    static TextSpan SpanOf<T>(ITextSpan<T> s) => TextSpan.FromBounds(s.Start.Pos, s.End.Pos);

    // ---- lexical -------------------------------------------------------------------------------------------

    static Parser<T> Tok<T>(Parser<T> p) => p.Token();

    static Parser<string> Sym(string s) => Parse.String(s).Text().Token().Named($"'{s}'");

    /// <summary>An operator that is not the prefix of a longer one (<c>=</c> but not <c>==</c>).</summary>
    static Parser<string> Op(string s, string notFollowedBy) =>
        (from o in Parse.String(s).Text()
         from _ in Parse.Chars(notFollowedBy).Not()
         select o).Token().Named($"'{s}'");

    static readonly Parser<string> RawIdent =
        from first in Parse.Letter.Or(Parse.Char('_'))
        from rest in Parse.LetterOrDigit.Or(Parse.Char('_')).Many().Text()
        select first + rest;

    static Parser<string> Keyword(string k) =>
        (from w in Parse.String(k).Text()
         from _ in Parse.LetterOrDigit.Or(Parse.Char('_')).Not()
         select w).Token().Named($"'{k}'");

    static readonly Parser<Identifier> Ident =
        (from s in RawIdent.Where(n => !Keywords.Contains(n)).Span()
         select new Identifier(SpanOf(s), s.Value)).Token().Named("name");

    static readonly Parser<string> Digits = Parse.Digit.AtLeastOnce().Text();

    static readonly Parser<Expr> Number =
        (from s in (
             from intPart in Digits
             from frac in (from dot in Parse.Char('.') from d in Digits select "." + d).Optional()
             from exp in (
                 from e in Parse.Chars('e', 'E')
                 from sign in Parse.Chars('+', '-').Optional()
                 from d in Digits
                 select "e" + (sign.IsDefined ? sign.Get().ToString() : "") + d).Optional()
             select intPart + frac.GetOrElse("") + exp.GetOrElse("")).Span()
         select MakeNumber(SpanOf(s), s.Value)).Token().Named("number");

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
             select body).Span()
         select (Expr)new StringExpr(SpanOf(s), s.Value)).Token().Named("string");

    static readonly Parser<char> Semi = Parse.Char(';').Token();

    // ---- expressions --------------------------------------------------------------------------------------

    static readonly Parser<Expr> ExprRef = Lazy(() => Expression);

    static readonly Parser<Argument> Arg =
        (from s in (
             from name in (from n in Ident from eq in Op("=", "=") select n).Optional()
             from value in ExprRef
             select (name, value)).Span()
         select new Argument(SpanOf(s), s.Value.name.IsDefined ? s.Value.name.Get().Name : null,
             s.Value.name.IsDefined ? s.Value.name.Get().Span : default, s.Value.value)).Token();

    internal static readonly Parser<IReadOnlyList<Argument>> ArgList =
        from open in Sym("(")
        from args in Arg.DelimitedBy(Sym(",")).Optional()
        from trailing in Sym(",").Optional()
        from close in Sym(")")
        select (IReadOnlyList<Argument>)(args.IsDefined ? args.Get().ToArray() : Array.Empty<Argument>());

    static readonly Parser<Expr> ArrayLit =
        from s in (
            from open in Sym("[")
            from items in ExprRef.DelimitedBy(Sym(",")).Optional()
            from trailing in Sym(",").Optional()
            from close in Sym("]")
            select items.IsDefined ? items.Get().ToArray() : Array.Empty<Expr>()).Span()
        select (Expr)new ArrayExpr(SpanOf(s), s.Value);

    static readonly Parser<Expr> Paren =
        from open in Sym("(")
        from e in ExprRef
        from close in Sym(")")
        select e;

    static readonly Parser<Statement> StatementRef = Lazy(() => Statement);

    static readonly Parser<Expr> InlineBlock =
        from s in (
            from open in Sym("{")
            from lead in Semi.Many()
            from stmts in StatementRef.Then(st => Semi.Many().Return(st)).XMany()
            from close in Sym("}")
            select stmts.ToArray()).Span()
        select (Expr)new InlineBlockExpr(SpanOf(s), s.Value);

    static readonly Parser<Expr> Literal =
        Keyword("true").Span().Select(s => (Expr)new BoolExpr(SpanOf(s), true))
        .Or(Keyword("false").Span().Select(s => (Expr)new BoolExpr(SpanOf(s), false)))
        .Or(Keyword("none").Span().Select(s => (Expr)new NoneExpr(SpanOf(s))));

    static readonly Parser<Expr> Primary =
        Number.Or(StringLit).Or(Literal).Or(InlineBlock).Or(ArrayLit).Or(Paren)
            .Or(Ident.Select(i => (Expr)new NameExpr(i.Span, i.Name)))
            .Named("expression");

    abstract record Suffix(int End);
    sealed record CallSuffix(int End, IReadOnlyList<Argument> Args) : Suffix(End);
    sealed record IndexSuffix(int End, Expr? Start, Expr? Stop, bool IsSlice) : Suffix(End);

    static readonly Parser<Suffix> CallSuffixP =
        from s in ArgList.Span() select (Suffix)new CallSuffix(s.End.Pos, s.Value);

    static readonly Parser<Suffix> IndexSuffixP =
        from s in (
            from open in Sym("[")
            from start in ExprRef.Optional()
            from colon in Sym(":").Optional()
            from stop in ExprRef.Optional()
            from close in Sym("]")
            select (start, colon.IsDefined, stop)).Span()
        where s.Value.IsDefined || s.Value.start.IsDefined
        select (Suffix)new IndexSuffix(s.End.Pos, s.Value.start.GetOrDefault(), s.Value.stop.GetOrDefault(), s.Value.IsDefined);

    static readonly Parser<Expr> Postfix =
        from p in Primary
        from suffixes in CallSuffixP.Or(IndexSuffixP).Many()
        select suffixes.Aggregate(p, (acc, s) => s switch
        {
            CallSuffix c => new CallExpr(TextSpan.FromBounds(acc.Span.Start, c.End), acc, c.Args),
            IndexSuffix { IsSlice: true } ix => new SliceExpr(TextSpan.FromBounds(acc.Span.Start, ix.End), acc, ix.Start, ix.Stop),
            IndexSuffix ix => (Expr)new IndexExpr(TextSpan.FromBounds(acc.Span.Start, ix.End), acc, ix.Start!),
            _ => acc,
        });

    static readonly Parser<Expr> UnaryRef = Lazy(() => Unary);

    static readonly Parser<Expr> Unary =
        (from s in (from op in Op("-", ">") from e in UnaryRef select e).Span()
         select (Expr)new UnaryExpr(SpanOf(s), "-", s.Value))
        .Or(from s in (from op in Keyword("not") from e in UnaryRef select e).Span()
            select (Expr)new UnaryExpr(SpanOf(s), "not", s.Value))
        .Or(Postfix);

    /// <summary>Left-associative chain, iterative so long chains cannot overflow the stack.</summary>
    static Parser<Expr> Chain(Parser<Expr> operand, Parser<string> op) =>
        from first in operand
        from rest in (from o in op.Span() from e in operand select (o, e)).Many()
        select rest.Aggregate(first, (l, r) =>
            new BinaryExpr(TextSpan.FromBounds(l.Span.Start, r.e.Span.End), r.o.Value, SpanOf(r.o), l, r.e));

    static readonly Parser<Expr> Multiplicative =
        Chain(Unary, Op("//", "=").Or(Op("/", "/=")).Or(Op("*", "=")).Or(Op("%", "=")));

    static readonly Parser<Expr> Additive =
        Chain(Multiplicative, Op("+", "=").Or(Op("-", ">=")));

    static readonly Parser<Expr> Repeat =
        from count in Additive
        from rest in (from x in Keyword("x") from body in Additive select body).Optional()
        select rest.IsDefined
            ? new RepeatExpr(TextSpan.FromBounds(count.Span.Start, rest.Get().Span.End), count, rest.Get())
            : count;

    static readonly Parser<Expr> Comparison =
        from left in Repeat
        from rest in (
            from o in Op("==", "=").Or(Op("!=", "=")).Or(Op("<=", "=")).Or(Op(">=", "="))
                .Or(Op("<", "=")).Or(Op(">", "=")).Span()
            from right in Repeat
            select (o, right)).Optional()
        select rest.IsDefined
            ? new BinaryExpr(TextSpan.FromBounds(left.Span.Start, rest.Get().right.Span.End), rest.Get().o.Value,
                SpanOf(rest.Get().o), left, rest.Get().right)
            : left;

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
            select (c, a, b)).Span()
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
            select (v, start, end, body)).Span()
        select (Expr)new ForExpr(SpanOf(s), s.Value.v.Name, s.Value.v.Span, s.Value.start, s.Value.end, s.Value.body);

    internal static readonly Parser<Expr> Expression = If.Or(For).Or(Pipe);

    // ---- statements ---------------------------------------------------------------------------------------

    internal static readonly Parser<Annotation> AnnotationP =
        (from s in (
             from at in Parse.Char('@')
             from name in RawIdent.Span()
             from args in ArgList.Optional()
             select (name, args)).Span()
         select new Annotation(SpanOf(s), new Identifier(SpanOf(s.Value.name), s.Value.name.Value),
             s.Value.args.GetOrElse(Array.Empty<Argument>()))).Token();

    static readonly Parser<Statement> Return =
        from s in (
            from ann in AnnotationP.Many()
            from kw in Keyword("return")
            from e in Expression
            select (ann, e)).Span()
        select (Statement)new ReturnStatement(SpanOf(s), s.Value.ann.ToArray(), s.Value.e);

    static readonly Parser<Statement> Binding =
        from s in (
            from ann in AnnotationP.Many()
            from targets in Ident.DelimitedBy(Sym(","))
            from eq in Op("=", "=")
            from e in Expression
            select (ann, targets, e)).Span()
        select (Statement)new BindingStatement(SpanOf(s), s.Value.ann.ToArray(), s.Value.targets.ToArray(), s.Value.e);

    internal static readonly Parser<Statement> Statement = Return.Or(Binding);

    // ---- declarations -------------------------------------------------------------------------------------

    static readonly Parser<TypeRef> TypeP =
        from s in (
            from name in RawIdent
            from elOpt in Parse.Char('?').Optional()
            from arr in (from o in Parse.Char('[').Token() from c in Parse.Char(']') select true).Optional()
            from opt in (arr.IsDefined ? Parse.Char('?').Optional() : Parse.Return(elOpt))
            select (name, elOpt: arr.IsDefined && elOpt.IsDefined, arr: arr.IsDefined, opt: arr.IsDefined ? opt.IsDefined : elOpt.IsDefined)).Span()
        select new TypeRef(SpanOf(s), s.Value.name, s.Value.arr, s.Value.opt, s.Value.elOpt);

    static readonly Parser<Parameter> ParameterP =
        from s in (
            from name in Ident
            from colon in Sym(":")
            from type in TypeP.Token()
            from def in (from eq in Op("=", "=") from e in Expression select e).Optional()
            select (name, type, def)).Span()
        select new Parameter(SpanOf(s), s.Value.name, s.Value.type, s.Value.def.GetOrDefault());

    internal static readonly Parser<ShapeRef> ShapeP =
        (from s in (
             from et in RawIdent.Optional()
             from open in Sym("[")
             from dims in Additive.DelimitedBy(Sym(","))
             from close in Sym("]")
             select (et, dims)).Span()
         select new ShapeRef(SpanOf(s), s.Value.et.GetOrDefault(), s.Value.dims.ToArray())).Token().Named("shape");

    static readonly Parser<InputDecl> InputP =
        from s in (
            from name in Ident
            from colon in Sym(":")
            from shape in ShapeP
            select (name, shape)).Span()
        select new InputDecl(SpanOf(s), s.Value.name, s.Value.shape);

    static readonly Parser<Signature> SignatureP =
        from s in (
            from open in Sym("(")
            from inputs in InputP.DelimitedBy(Sym(","))
            from close in Sym(")")
            from arrow in Sym("->")
            from output in ShapeP
            select (inputs, output)).Span()
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
            Recovery?.Add((r.Remainder.Position, FailureMessage(r)));
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
                .Or(from eq in Op("=", "=") from e in Expression select (body: (IReadOnlyList<Statement>?)null, alias: (Expr?)e))
            select (ann, kind, name, ps, sig, body)).Span()
        select (TopLevel)new Definition(SpanOf(s), s.Value.ann.ToArray(), s.Value.kind, s.Value.name,
            s.Value.ps.IsDefined ? s.Value.ps.Get().ToArray() : Array.Empty<Parameter>(),
            s.Value.sig.GetOrDefault(), s.Value.body.body, s.Value.body.alias);

    static readonly Parser<TopLevel> ImportP =
        from s in (
            from kw in Keyword("import")
            from path in StringLit
            select (StringExpr)path).Span()
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
            select (name, members)).Span()
        select (TopLevel)new EnumDecl(SpanOf(s), s.Value.name, s.Value.members.ToArray());

    internal static readonly Parser<TopLevel> TopLevelItem = ImportP.Or(EnumP).Or(DefinitionP);
}
