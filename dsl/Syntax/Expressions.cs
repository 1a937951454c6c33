using System.Collections.Generic;
using Mix.Dsl.Text;

namespace Mix.Dsl.Syntax;

/// <summary>An expression of the language.</summary>
public abstract record Expr(TextSpan Span);

/// <summary>An integer or float literal.</summary>
public sealed record NumberExpr(TextSpan Span, double Value, long? IntValue, string Text) : Expr(Span);
/// <summary>A string literal.</summary>
public sealed record StringExpr(TextSpan Span, string Value) : Expr(Span);
/// <summary><c>true</c> or <c>false</c>.</summary>
public sealed record BoolExpr(TextSpan Span, bool Value) : Expr(Span);
/// <summary><c>none</c>.</summary>
public sealed record NoneExpr(TextSpan Span) : Expr(Span);
/// <summary>A name: parameter, layer, local, definition, built-in, enum member or shape symbol.</summary>
public sealed record NameExpr(TextSpan Span, string Name) : Expr(Span);
/// <summary><c>-a</c> or <c>not a</c>.</summary>
public sealed record UnaryExpr(TextSpan Span, string Op, Expr Operand) : Expr(Span);
/// <summary><c>a op b</c> for arithmetic, comparison, logic and the pipe <c>|&gt;</c>.</summary>
public sealed record BinaryExpr(TextSpan Span, string Op, TextSpan OpSpan, Expr Left, Expr Right) : Expr(Span);
/// <summary><c>f(a, b, name = c)</c>.</summary>
public sealed record CallExpr(TextSpan Span, Expr Callee, IReadOnlyList<Argument> Args) : Expr(Span);
/// <summary><c>a[i]</c>.</summary>
public sealed record IndexExpr(TextSpan Span, Expr Target, Expr Index) : Expr(Span);
/// <summary><c>conv1d.weight</c>: a weight of a layer declared in the body (<see cref="Name"/> at <see cref="NameSpan"/>).</summary>
public sealed record MemberExpr(TextSpan Span, Expr Target, string Name, TextSpan NameSpan) : Expr(Span);
/// <summary><c>a[i:j]</c>, either end optional.</summary>
public sealed record SliceExpr(TextSpan Span, Expr Target, Expr? Start, Expr? End) : Expr(Span);
/// <summary><c>[a, b, c]</c>.</summary>
public sealed record ArrayExpr(TextSpan Span, IReadOnlyList<Expr> Items) : Expr(Span);
/// <summary><c>if c then a else b</c>.</summary>
public sealed record IfExpr(TextSpan Span, Expr Condition, Expr Then, Expr Else) : Expr(Span);
/// <summary><c>for i in a..b: body</c>: an array (of layers: a sequence).</summary>
public sealed record ForExpr(TextSpan Span, string Variable, TextSpan VariableSpan, Expr Start, Expr End, Expr Body) : Expr(Span);
/// <summary><c>n x body</c>: n copies (fresh layers each time).</summary>
public sealed record RepeatExpr(TextSpan Span, Expr Count, Expr Body) : Expr(Span);
/// <summary><c>{ a = ...; b = ... }</c>: an anonymous block whose layers run in order.</summary>
public sealed record InlineBlockExpr(TextSpan Span, IReadOnlyList<Statement> Statements) : Expr(Span);

/// <summary>A call argument, positional (<see cref="Name"/> null) or named.</summary>
public sealed record Argument(TextSpan Span, string? Name, TextSpan NameSpan, Expr Value);
