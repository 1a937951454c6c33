using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using System.Text;

namespace Mix;

/// <summary>
/// Builds a generated model's <c>Options</c> record from <c>.mix</c> parameter names and plain values: each name is
/// the init property the generator made of it (<c>d_state</c> → <c>DState</c>), each value is converted to the
/// property's type (<c>int</c> → <c>long</c>, numbers → <c>double</c>, sequences → arrays).
/// </summary>
internal static class OptionBinder
{
    public static object Bind(ModelInfo info, IEnumerable<KeyValuePair<string, object?>> values)
    {
        var optionsType = info.Type.GetNestedType("Options")
            ?? throw new InvalidOperationException($"{info.Type.FullName} has no Options record");
        var options = Activator.CreateInstance(optionsType)
            ?? throw new InvalidOperationException($"cannot create {optionsType.FullName}");
        foreach (var (name, value) in values)
        {
            var property = optionsType.GetProperty(ModelCatalog.ClassName(name), BindingFlags.Public | BindingFlags.Instance);
            if (property is null || !property.CanWrite)
                throw new ArgumentException($"{info.Name} has no parameter '{name}'; its parameters are {string.Join(", ", Parameters(info))}");
            object? converted;
            try
            {
                converted = Convert(value, property.PropertyType);
            }
            catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or ArgumentException)
            {
                throw new ArgumentException($"{info.Name}: parameter '{name}' takes {Describe(property.PropertyType)}, not {Show(value)}", e);
            }
            property.SetValue(options, converted);
        }
        return options;
    }

    /// <summary>The model's <c>.mix</c> parameter names (from its Options record).</summary>
    public static IReadOnlyList<string> Parameters(ModelInfo info) =>
        info.Type.GetNestedType("Options")?.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.Name != "EqualityContract").Select(p => Snake(p.Name)).ToList()
        ?? (IReadOnlyList<string>)Array.Empty<string>();

    static object? Convert(object? value, Type type)
    {
        var nullable = Nullable.GetUnderlyingType(type);
        if (value is null)
        {
            if (nullable is not null || !type.IsValueType) return null;
            throw new InvalidCastException("null");
        }
        var target = nullable ?? type;
        if (target.IsInstanceOfType(value)) return value;
        if (target == typeof(long)) return value is double or float or decimal ? Integral(value) : System.Convert.ToInt64(value, CultureInfo.InvariantCulture);
        if (target == typeof(double)) return System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
        if (target == typeof(bool) && value is bool b) return b;
        if (target == typeof(string) && value is string s) return s;
        if (target.IsArray && value is IEnumerable items && value is not string)
        {
            var element = target.GetElementType()!;
            var list = items.Cast<object?>().Select(i => Convert(i, element)).ToList();
            var array = Array.CreateInstance(element, list.Count);
            for (int i = 0; i < list.Count; i++) array.SetValue(list[i], i);
            return array;
        }
        throw new InvalidCastException(value.GetType().Name);
    }

    static long Integral(object value)
    {
        var d = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
        if (d != Math.Floor(d)) throw new InvalidCastException("not an integer");
        return checked((long)d);
    }

    static string Describe(Type t)
    {
        var n = Nullable.GetUnderlyingType(t);
        if (n is not null) return Describe(n) + " or null";
        if (t == typeof(long)) return "an int";
        if (t == typeof(double)) return "a float";
        if (t == typeof(bool)) return "a bool";
        if (t == typeof(string)) return "a string";
        if (t.IsArray) return "an array of " + Describe(t.GetElementType()!);
        return "a " + t.Name + " (not settable from plain values)";
    }

    static string Show(object? v) => v switch
    {
        null => "null",
        string s => $"\"{s}\"",
        IEnumerable e => "[" + string.Join(", ", e.Cast<object?>().Select(Show)) + "]",
        _ => System.Convert.ToString(v, CultureInfo.InvariantCulture) + $" ({v.GetType().Name})",
    };

    /// <summary><c>DState</c> → <c>d_state</c>, <c>NumClasses</c> → <c>num_classes</c>.</summary>
    internal static string Snake(string pascal)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < pascal.Length; i++)
        {
            var c = pascal[i];
            if (char.IsUpper(c) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
