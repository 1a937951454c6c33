using System.Collections.Generic;
using Mix.Dsl.Text;

namespace Mix.Dsl.Syntax;

/// <summary>A statement in a body.</summary>
public abstract record Statement(TextSpan Span, IReadOnlyList<Annotation> Annotations);

/// <summary><c>name = expr</c> or <c>a, b = expr</c>. A layer value makes <c>name</c> a state-dict key.</summary>
public sealed record BindingStatement(TextSpan Span, IReadOnlyList<Annotation> Annotations, IReadOnlyList<Identifier> Targets, Expr Value)
    : Statement(Span, Annotations);

/// <summary><c>return expr</c>.</summary>
public sealed record ReturnStatement(TextSpan Span, IReadOnlyList<Annotation> Annotations, Expr Value) : Statement(Span, Annotations);

/// <summary><c>@name</c> or <c>@name(args)</c>.</summary>
public sealed record Annotation(TextSpan Span, Identifier Name, IReadOnlyList<Argument> Args);

/// <summary>A name with its span.</summary>
public sealed record Identifier(TextSpan Span, string Name);
