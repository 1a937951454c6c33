using System.Collections.Generic;
using Mix.Dsl.Text;

namespace Mix.Dsl.Syntax;

/// <summary>What a definition defines.</summary>
public enum DefinitionKind
{
    /// <summary>A top-level network; parameters need defaults.</summary>
    Model,
    /// <summary>A reusable block.</summary>
    Block,
    /// <summary>A token mixer; has the implicit parameter <c>dim</c>.</summary>
    Mixer,
}

/// <summary>A parameter or value type: <c>int</c>, <c>float[]</c>, <c>mixer</c>, <c>float?</c>, an enum name.</summary>
public sealed record TypeRef(TextSpan Span, string Name, bool IsArray, bool IsOptional, bool ElementOptional = false)
{
    /// <inheritdoc />
    public override string ToString() => Name + (ElementOptional ? "?" : "") + (IsArray ? "[]" : "") + (IsOptional ? "?" : "");
}

/// <summary><c>name: type = default</c>.</summary>
public sealed record Parameter(TextSpan Span, Identifier Name, TypeRef Type, Expr? Default);

/// <summary>A shape: <c>[B, C, H/4, W/4]</c>, optionally with an element type (<c>long[B, L]</c>).</summary>
public sealed record ShapeRef(TextSpan Span, string? ElementType, IReadOnlyList<Expr> Dims);

/// <summary>A signature input <c>x: [B, C, H, W]</c>.</summary>
public sealed record InputDecl(TextSpan Span, Identifier Name, ShapeRef Shape);

/// <summary><c>(x: [..], y: [..]) -&gt; [..]</c>.</summary>
public sealed record Signature(TextSpan Span, IReadOnlyList<InputDecl> Inputs, ShapeRef Output);

/// <summary>A top-level item.</summary>
public abstract record TopLevel(TextSpan Span);

/// <summary><c>import "file.mix"</c>.</summary>
public sealed record ImportDecl(TextSpan Span, string Path, TextSpan PathSpan) : TopLevel(Span);

/// <summary><c>enum mode { a, b }</c>.</summary>
public sealed record EnumDecl(TextSpan Span, Identifier Name, IReadOnlyList<Identifier> Members) : TopLevel(Span);

/// <summary>A <c>model</c>, <c>block</c> or <c>mixer</c> definition, with a body or as an alias (<c>= expr</c>).</summary>
public sealed record Definition(
    TextSpan Span,
    IReadOnlyList<Annotation> Annotations,
    DefinitionKind Kind,
    Identifier Name,
    IReadOnlyList<Parameter> Parameters,
    Signature? Signature,
    IReadOnlyList<Statement>? Body,
    Expr? Alias) : TopLevel(Span);

/// <summary>One parsed file.</summary>
public sealed record MixFile(
    SourceText Source,
    IReadOnlyList<ImportDecl> Imports,
    IReadOnlyList<EnumDecl> Enums,
    IReadOnlyList<Definition> Definitions);
