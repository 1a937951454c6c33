namespace Mix.Dsl.Semantics;

/// <summary>The kinds of value a parameter can hold.</summary>
public enum TypeKind
{
    /// <summary>Whole number (may be symbolic: a dimension).</summary>
    Int,
    /// <summary>Real number.</summary>
    Float,
    /// <summary>Boolean.</summary>
    Bool,
    /// <summary>String.</summary>
    String,
    /// <summary>A member of a user enum.</summary>
    Enum,
    /// <summary>A token-mixer value (<c>pool(3)</c>).</summary>
    Mixer,
    /// <summary>A norm value (<c>layernorm</c>).</summary>
    Norm,
    /// <summary>An activation value (<c>gelu</c>).</summary>
    Act,
    /// <summary>A block or layer value (<c>mlp(act = gelu)</c>).</summary>
    Block,
    /// <summary>A tensor.</summary>
    Tensor,
    /// <summary>Anything (built-in functions).</summary>
    Any,
}

/// <summary>A parameter type: a kind, optionally an array of it and/or optional (<c>none</c> allowed).</summary>
public sealed record MixType(TypeKind Kind, bool IsArray = false, bool IsOptional = false, string? EnumName = null, bool ElementOptional = false)
{
    /// <summary>int</summary>
    public static readonly MixType Int = new(TypeKind.Int);
    /// <summary>float</summary>
    public static readonly MixType Float = new(TypeKind.Float);
    /// <summary>bool</summary>
    public static readonly MixType Bool = new(TypeKind.Bool);
    /// <summary>string</summary>
    public static readonly MixType String = new(TypeKind.String);
    /// <summary>mixer</summary>
    public static readonly MixType Mixer = new(TypeKind.Mixer);
    /// <summary>norm</summary>
    public static readonly MixType Norm = new(TypeKind.Norm);
    /// <summary>act</summary>
    public static readonly MixType Act = new(TypeKind.Act);
    /// <summary>block</summary>
    public static readonly MixType Block = new(TypeKind.Block);
    /// <summary>tensor</summary>
    public static readonly MixType Tensor = new(TypeKind.Tensor);
    /// <summary>any</summary>
    public static readonly MixType Any = new(TypeKind.Any);

    /// <summary>This type as an array.</summary>
    public MixType Array() => this with { IsArray = true };
    /// <summary>This type, optional.</summary>
    public MixType Optional() => this with { IsOptional = true };
    /// <summary>The element type of an array type.</summary>
    public MixType Element => this with { IsArray = false, IsOptional = ElementOptional, ElementOptional = false };

    /// <summary>Source spelling: <c>int[]</c>, <c>float?</c>, <c>mode</c>.</summary>
    public override string ToString()
    {
        var name = Kind switch
        {
            TypeKind.Enum => EnumName ?? "enum",
            _ => Kind.ToString().ToLowerInvariant(),
        };
        return name + (ElementOptional ? "?" : "") + (IsArray ? "[]" : "") + (IsOptional ? "?" : "");
    }
}
