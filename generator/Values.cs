using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Semantics;

namespace Mix.Generator;

// Generation-time values: what a .mix expression becomes in C#. Scalars and tensors are C# code already; factories,
// conditionals and arrays of layers stay structured until it is known whether they are instantiated (a module) or
// passed on as values (a MixerFactory delegate).

/// <summary>A static type of generated code.</summary>
internal sealed record GType(string Kind, GType? Element = null, bool Nullable = false)
{
    public static readonly GType Int = new("int");
    public static readonly GType Float = new("float");
    public static readonly GType Bool = new("bool");
    public static readonly GType String = new("string");
    public static readonly GType None = new("none");
    public static readonly GType Tensor = new("tensor");
    public static readonly GType Tuple = new("tuple");
    public static readonly GType Any = new("any");

    public bool IsArray => Kind == "array";
    public bool IsFactoryKind => Kind is "mixer" or "norm" or "act" or "block";

    public static GType From(MixType t)
    {
        GType el = t.Kind switch
        {
            TypeKind.Int => Int,
            TypeKind.Float => Float,
            TypeKind.Bool => Bool,
            TypeKind.String => String,
            TypeKind.Enum => String,
            TypeKind.Mixer => new GType("mixer"),
            TypeKind.Norm => new GType("norm"),
            TypeKind.Act => new GType("act"),
            TypeKind.Block => new GType("block"),
            TypeKind.Tensor => Tensor,
            _ => Any,
        };
        if (t.IsArray) return new GType("array", el with { Nullable = t.ElementOptional }, t.IsOptional);
        return el with { Nullable = t.IsOptional };
    }

    /// <summary>The C# type.</summary>
    public string CSharp
    {
        get
        {
            var s = Kind switch
            {
                "int" => "long",
                "float" => "double",
                "bool" => "bool",
                "string" => "string",
                "tensor" => "Tensor",
                "mixer" => "MixerFactory",
                "norm" => "NormFactory",
                "act" => "ActFactory",
                "block" => "BlockFactory",
                "array" => Element!.CSharp + "[]",
                _ => "object",
            };
            return Nullable ? s + "?" : s;
        }
    }
}

internal abstract record V;

/// <summary>C# code of a known type (numbers, arrays of numbers, tensors, parameters). <see cref="Prec"/>: C# precedence.</summary>
internal sealed record VCode(string Code, GType Type, int Prec = 100) : V
{
    /// <summary>For <c>a / b</c> of whole numbers: the exact quotient as a double. C#'s <c>/</c> on longs floors, which
    /// is .mix's value only where the quotient is whole (the checker proves that wherever it is used as a size);
    /// <c>ceil(a / b)</c> needs the exact one.</summary>
    public string? ExactQuotient { get; init; }

    /// <summary>For a tensor built by fusible ops: how, so that the consumer can cut fused regions out of it.</summary>
    public FusionExpr? Fx { get; init; }
}

/// <summary>A configured callable. <see cref="Callable"/> null: an opaque factory value (a parameter, an array item).</summary>
internal sealed record VFactory(Callable? Callable, string Kind, Dictionary<string, V> Args, string? OpaqueCode = null,
    List<V>? OpaqueArgs = null) : V
{
    public bool IsFunction => Callable is BuiltinCallable { Kind: CallableKind.Function };

    public int OpaqueArity => Kind is "mixer" or "norm" or "block" ? 1 : 0;

    public bool IsComplete => Callable is null
        ? (OpaqueArgs?.Count ?? 0) >= OpaqueArity
        : Callable.Params.All(p => !p.Required || Args.ContainsKey(p.Name));

    /// <summary>A function missing only its tensors (<c>flatten(1)</c>, <c>transpose(1, 2)</c>): usable as a weightless layer.</summary>
    public bool IsPartialFunction => IsFunction && Callable!.Params.All(p => p.Type.Kind == TypeKind.Tensor || !p.Required || Args.ContainsKey(p.Name));
}

/// <summary><c>if c then a else b</c> of factories or layers.</summary>
internal sealed record VCond(string Condition, V Then, V Else) : V;

/// <summary>An array literal of factories.</summary>
internal sealed record VArray(List<V> Items) : V;

/// <summary><c>for i in a..b: body</c> of factories.</summary>
internal sealed record VFor(string Variable, string Start, string End, V Body) : V;

/// <summary><c>n x body</c> of factories.</summary>
internal sealed record VRepeat(string Count, V Body) : V;

/// <summary>An anonymous block <c>{ a = ...; b = ... }</c>: named layers run in order.</summary>
internal sealed record VInline(List<(string Key, V Layer)> Layers) : V;

/// <summary>A declared layer: a field. <see cref="IsSequence"/> for ModuleList fields. <see cref="CtorCode"/>: how the
/// constructor refers to it when the field is assigned only after <c>RegisterComponents</c> (dotted <c>@key</c>s).</summary>
internal sealed record VLayer(string Field, string Kind, bool IsSequence, bool AllowFused, string? CtorCode = null) : V;

/// <summary><c>param(...)</c> or <c>buffer(...)</c> before its binding: <see cref="Code"/> builds the initial tensor.</summary>
internal sealed record VWeight(string Code, bool IsBuffer, bool Frozen, bool Persistent) : V;

/// <summary><c>state(shape, dtype)</c> before it is bound to a name (the translator reads the shape itself).</summary>
internal sealed record VState(Mix.Dsl.Syntax.CallExpr Call) : V;
