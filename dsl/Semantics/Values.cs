using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Mix.Dsl.Semantics;

/// <summary>A value during checking. Numbers may be symbolic, booleans unknown; <see cref="UnknownValue"/> follows an
/// error and silences every later check that depends on it.</summary>
public abstract record Value
{
    /// <summary>How the value is named in messages ("int", "tensor [B, C, H, W]", "mixer pool").</summary>
    public abstract string Describe();
}

/// <summary>A whole number; symbolic when not known (a dimension such as <c>dim</c> or <c>dims[2]</c>).</summary>
public sealed record IntValue(Dim Dim) : Value
{
    /// <inheritdoc />
    public override string Describe() => Dim.AsLong is long l ? $"int {l}" : $"int {Dim}";
}

/// <summary>A real number; null when unknown.</summary>
public sealed record FloatValue(double? Value) : Value
{
    /// <inheritdoc />
    public override string Describe() => Value is double d ? "float " + d.ToString("R", CultureInfo.InvariantCulture) : "float";
}

/// <summary>A boolean; null when unknown.</summary>
public sealed record BoolValue(bool? Value) : Value
{
    /// <inheritdoc />
    public override string Describe() => Value is bool b ? (b ? "true" : "false") : "bool";
}

/// <summary>A string; null when unknown.</summary>
public sealed record StringValue(string? Value) : Value
{
    /// <inheritdoc />
    public override string Describe() => Value is null ? "string" : $"string \"{Value}\"";
}

/// <summary>An enum member; <see cref="Member"/> null when unknown.</summary>
public sealed record EnumValue(string EnumName, string? Member) : Value
{
    /// <inheritdoc />
    public override string Describe() => Member is null ? EnumName : $"{EnumName}.{Member}";
}

/// <summary><c>none</c>.</summary>
public sealed record NoneValue : Value
{
    /// <summary>The one instance.</summary>
    public static readonly NoneValue Instance = new();
    /// <inheritdoc />
    public override string Describe() => "none";
}

/// <summary>An array; <see cref="Items"/> null when its length is unknown (<see cref="Element"/> then says what it holds).</summary>
public sealed record ArrayValue(IReadOnlyList<Value>? Items, Value? Element = null) : Value
{
    /// <summary>Set for <c>n x layer</c>: copies of one layer, which must keep the shape when applied in sequence.</summary>
    public Text.TextSpan? RepeatSpan { get; init; }

    /// <inheritdoc />
    public override string Describe() => Items is null ? "array" : $"array of {Items.Count}";
}

/// <summary>The results of <c>split</c> or <c>chunk</c>, destructured by <c>a, b = ...</c>.</summary>
public sealed record TupleValue(IReadOnlyList<Value> Items) : Value
{
    /// <inheritdoc />
    public override string Describe() => $"tuple of {Items.Count}";
}

/// <summary>A tensor of a known (symbolic) shape.</summary>
public sealed record TensorValue(Shape Shape) : Value
{
    /// <inheritdoc />
    public override string Describe() => "tensor " + Shape;
}

/// <summary>
/// A configured callable: <c>pool(3)</c>, <c>gelu</c>, <c>mlp(act = gelu)</c>. Complete when every required parameter
/// is bound; binding a complete factory to a name in a body makes it a layer with that state-dict key.
/// </summary>
public sealed record FactoryValue(Callable Callable, IReadOnlyDictionary<string, Value> Args) : Value
{
    /// <summary>Required parameters not yet bound.</summary>
    public IEnumerable<ParamSpec> Missing => Callable.Params.Where(p => p.Required && !Args.ContainsKey(p.Name));
    /// <summary>Whether every required parameter is bound.</summary>
    public bool IsComplete => !Missing.Any();
    /// <inheritdoc />
    public override string Describe() => $"{Callable.KindName} {Callable.Name}";
}

/// <summary>A layer: a complete factory with a place in the module tree.</summary>
public sealed record LayerValue(FactoryValue Factory, LayerNode Node) : Value
{
    /// <inheritdoc />
    public override string Describe() => $"layer {Node.Path} ({Factory.Callable.Name})";
}

/// <summary>A value the checker could not determine (after an error, or from an opaque parameter).</summary>
public sealed record UnknownValue(TypeKind? Kind = null) : Value
{
    /// <summary>An unknown of any kind.</summary>
    public static readonly UnknownValue Instance = new();
    /// <inheritdoc />
    public override string Describe() => Kind is null ? "unknown" : Kind.Value.ToString().ToLowerInvariant();
}

internal static class ValueExtensions
{
    /// <summary>A mutable copy of bound arguments (one copy; netstandard2.0 has no constructor for read-only maps).</summary>
    public static Dictionary<string, Value> ToMutable(this IReadOnlyDictionary<string, Value> args)
    {
        var copy = new Dictionary<string, Value>(args.Count);
        foreach (var kv in args) copy[kv.Key] = kv.Value;
        return copy;
    }

    public static bool IsKnownFalse(this Value v) => v is BoolValue { Value: false };
    public static bool IsKnownTrue(this Value v) => v is BoolValue { Value: true };

    public static double? AsDouble(this Value v) => v switch
    {
        FloatValue f => f.Value,
        IntValue i when i.Dim.IsConstant => (double)i.Dim.ConstantValue.Numerator / i.Dim.ConstantValue.Denominator,
        _ => null,
    };

    public static long? AsLong(this Value v) => v is IntValue i ? i.Dim.AsLong : null;

    public static IReadOnlyList<Value>? AsItems(this Value v) => v switch
    {
        ArrayValue a => a.Items,
        TupleValue t => t.Items,
        _ => null,
    };
}
