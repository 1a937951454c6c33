using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;

namespace Mix.Generator;

/// <summary>Places of attributes and their arguments as <see cref="SourceSpot"/>s, and back to Roslyn locations.</summary>
internal static class AttributeSpots
{
    public static SourceSpot Of(SyntaxTree tree, TextSpan span)
    {
        var lines = tree.GetLineSpan(span);
        return new SourceSpot(tree.FilePath, span.Start, span.Length, lines.StartLinePosition.Line, lines.StartLinePosition.Character,
            lines.EndLinePosition.Line, lines.EndLinePosition.Character);
    }

    public static SourceSpot Of(SyntaxNode node) => Of(node.SyntaxTree, node.Span);

    public static SourceSpot Of(Location location) => location.SourceTree is { } tree
        ? Of(tree, location.SourceSpan)
        : new SourceSpot(location.GetLineSpan().Path, location.SourceSpan.Start, location.SourceSpan.Length, 0, 0, 0, 0);

    public static Location ToLocation(this SourceSpot s) => Location.Create(s.Path, new TextSpan(s.Start, s.Length),
        new LinePositionSpan(new LinePosition(s.StartLine, s.StartColumn), new LinePosition(s.EndLine, s.EndColumn)));

    /// <summary>The syntax of an attribute application, when it is in source.</summary>
    public static AttributeSyntax? Syntax(AttributeData attribute, CancellationToken ct) =>
        attribute.ApplicationSyntaxReference?.GetSyntax(ct) as AttributeSyntax;

    /// <summary>The argument written for constructor parameter <paramref name="index"/> (named <paramref name="name"/>).</summary>
    public static AttributeArgumentSyntax? ConstructorArgument(AttributeSyntax? attribute, int index, string name)
    {
        var args = attribute?.ArgumentList?.Arguments;
        if (args is null) return null;
        var named = args.Value.FirstOrDefault(a => a.NameColon?.Name.Identifier.ValueText == name);
        if (named is not null) return named;
        var positional = args.Value.Where(a => a.NameColon is null && a.NameEquals is null).ToList();
        return index < positional.Count ? positional[index] : null;
    }

    /// <summary>The <c>Property = value</c> argument of an attribute.</summary>
    public static AttributeArgumentSyntax? NamedArgument(AttributeSyntax? attribute, string property) =>
        attribute?.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.ValueText == property);

    /// <summary>
    /// The place of an argument's value: the contents of a plain string literal whose text is exactly its value
    /// (so offsets into the value map one to one), else the whole expression.
    /// </summary>
    public static ArgumentSpot Value(AttributeArgumentSyntax argument, string? value)
    {
        var expression = argument.Expression;
        if (value is { Length: > 0 } && expression is LiteralExpressionSyntax { Token: var token } && token.IsKind(SyntaxKind.StringLiteralToken)
            && token.Text == "\"" + value + "\"")
            return new ArgumentSpot(Of(expression.SyntaxTree, new TextSpan(token.SpanStart + 1, value.Length)), true);
        return new ArgumentSpot(Of(expression), false);
    }

    /// <summary>A part of an argument's value (<paramref name="offset"/>, <paramref name="length"/> into it) when the
    /// spot is verbatim and on one line, else the whole spot.</summary>
    public static SourceSpot Part(ArgumentSpot spot, int offset, int length)
    {
        var s = spot.Where;
        if (!spot.Verbatim || s.StartLine != s.EndLine || offset < 0 || offset > s.Length) return s;
        length = System.Math.Max(0, System.Math.Min(length, s.Length - offset));
        return new SourceSpot(s.Path, s.Start + offset, length, s.StartLine, s.StartColumn + offset, s.StartLine, s.StartColumn + offset + length);
    }
}
