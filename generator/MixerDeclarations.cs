using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Mix.Dsl;
using Mix.Dsl.Semantics;
using Mix.Dsl.Syntax;

namespace Mix.Generator;

/// <summary>
/// Reads and checks <c>[Mixer("name", "parameters", "signature")]</c>: the arguments, the declaration as the front end
/// reads it, the class (a constructible <c>nn.Module&lt;Tensor, Tensor&gt;</c>) and its constructor against the call
/// generated code makes (<c>new T(dim, camelName: value, ...)</c>). Problems are reported at the attribute or at the
/// argument concerned (MIX9110–MIX9114).
/// </summary>
internal static class MixerDeclarations
{
    static readonly Regex s_identifier = new("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant);
    static readonly string[] s_argumentNames = { "name", "parameters", "signature" };

    /// <summary>What the arguments give, checked without the class: the binding, or null with the reasons.</summary>
    sealed class Arguments
    {
        public string? Name, Parameters, Signature;
        public AttributeSyntax? Syntax;
        public SourceSpot Attribute = null!;
        public readonly ArgumentSpot?[] Spots = new ArgumentSpot?[3];
        public readonly List<AttributeProblem> Problems = new();
        public UserCallable? Declaration;
        public MixerBinding? Binding;

        public SourceSpot At(int argument, int offset = 0, int length = -1) => Spots[argument] is { } s
            ? (length < 0 ? s.Where : AttributeSpots.Part(s, offset, length))
            : Attribute;
    }

    /// <summary>The declaration the front end gets, or null when the arguments are unusable (what the front end checks .mix uses against).</summary>
    public static MixerBinding? BindingOf(INamedTypeSymbol type, AttributeData attribute, CancellationToken ct = default) =>
        ReadArguments(type, attribute, ct).Binding;

    /// <summary>Everything about one <c>[Mixer]</c> class (the generator's pipeline step).</summary>
    public static MixerDeclaration Read(INamedTypeSymbol type, AttributeData attribute, Compilation compilation, CancellationToken ct)
    {
        var a = ReadArguments(type, attribute, ct);
        CheckClass(type, a, compilation);
        if (a.Declaration is not null) CheckConstructor(type, a, compilation);
        return new MixerDeclaration(a.Name ?? "", TypeName(type), a.Binding, a.Spots[0]?.Where ?? a.Attribute, a.Problems.ToEquatableArray());
    }

    static string TypeName(INamedTypeSymbol type) => type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);

    static Arguments ReadArguments(INamedTypeSymbol type, AttributeData attribute, CancellationToken ct)
    {
        var a = new Arguments { Syntax = AttributeSpots.Syntax(attribute, ct) };
        a.Attribute = a.Syntax is not null ? AttributeSpots.Of(a.Syntax) : AttributeSpots.Of(type.Locations.FirstOrDefault() ?? Location.None);
        var args = attribute.ConstructorArguments;
        if (attribute.AttributeConstructor is null || args.Length != 3)
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerArguments.Id,
                "[Mixer] takes three constant strings: the .mix name, the parameters (without dim) and the shape contract", a.Attribute));
            return a;
        }
        var values = new string?[3];
        for (int i = 0; i < 3; i++)
        {
            var argument = AttributeSpots.ConstructorArgument(a.Syntax, i, s_argumentNames[i]);
            values[i] = args[i].Kind == TypedConstantKind.Error ? null : args[i].Value as string;
            if (argument is not null) a.Spots[i] = AttributeSpots.Value(argument, values[i]);
            if (values[i] is null)
                a.Problems.Add(new AttributeProblem(Descriptors.MixerArguments.Id,
                    $"the {s_argumentNames[i]} of [Mixer] must be a constant string" + (args[i].Kind != TypedConstantKind.Error ? ", not null" : ""), a.At(i)));
        }
        (a.Name, a.Parameters, a.Signature) = (values[0], values[1], values[2]);
        if (a.Name is null || a.Parameters is null || a.Signature is null) return a;

        if (!s_identifier.IsMatch(a.Name))
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerArguments.Id,
                $"'{a.Name}' is not a .mix name: letters, digits and '_', not starting with a digit", a.At(0)));
            return a;
        }
        if (BuiltinCatalog.Find(a.Name) is { } builtin)
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerNameClash.Id,
                $"'{a.Name}' is a built-in {Kind(builtin.Kind)} of .mix; give the C# mixer another name", a.At(0)));
            return a;
        }
        CheckDeclaration(type, a);
        return a;
    }

    internal static string Kind(CallableKind kind) => kind switch
    {
        CallableKind.Mixer => "mixer",
        CallableKind.Norm => "norm",
        CallableKind.Act => "activation",
        CallableKind.Function => "function",
        _ => "layer",
    };

    /// <summary>The declaration as the front end reads it (a bodiless mixer), its errors mapped into the arguments.</summary>
    static void CheckDeclaration(INamedTypeSymbol type, Arguments a)
    {
        var text = $"mixer {a.Name}({a.Parameters}) {a.Signature} {{}}\n";
        int paramsStart = "mixer ".Length + a.Name!.Length + 1;
        int signatureStart = paramsStart + a.Parameters!.Length + 2;
        // Checked as the front end checks C# mixers (a declaration without a body), read back as a plain definition.
        var check = MixCompilation.Create(Array.Empty<Mix.Dsl.Text.SourceText>(), new[] { new ExternalMixer(a.Name, a.Parameters, a.Signature!, TypeName(type)) });
        bool failed = false;
        foreach (var d in check.Diagnostics.Where(d => d.Severity == Mix.Dsl.Diagnostics.Severity.Error))
        {
            failed = true;
            var (argument, part) = d.Span.Start >= signatureStart && d.Span.Start <= signatureStart + a.Signature!.Length ? (2, "shape contract")
                : d.Span.Start >= paramsStart && d.Span.Start <= paramsStart + a.Parameters.Length ? (1, "parameters")
                : d.Span.Start < paramsStart ? (0, "name") : (2, "shape contract");
            int offset = d.Span.Start - (argument == 2 ? signatureStart : argument == 1 ? paramsStart : "mixer ".Length);
            a.Problems.Add(new AttributeProblem(Descriptors.MixerDeclaration.Id, $"[Mixer] {part}: {d.Message} ({d.Id})",
                a.At(argument, offset, d.Span.Length)));
        }
        if (failed) return;
        var declaration = MixCompilation.Create(TypeName(type), text).Find(a.Name)?.Callable;
        if (declaration?.Definition.Signature is not { } signature) return;
        if (signature.Inputs.Count != 1)
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerDeclaration.Id,
                $"[Mixer] shape contract: a mixer takes one tensor (.mix calls it as m(x)), this contract takes {signature.Inputs.Count}", a.At(2)));
            return;
        }
        a.Declaration = declaration;
        a.Binding = new MixerBinding(a.Name, a.Parameters, a.Signature!, TypeName(type));
    }

    static void CheckClass(INamedTypeSymbol type, Arguments a, Compilation compilation)
    {
        if (type.IsAbstract || type.IsStatic || type.TypeParameters.Length > 0 || type.IsUnboundGenericType)
        {
            var what = type.IsStatic ? "static" : type.IsAbstract ? "abstract" : "generic";
            a.Problems.Add(new AttributeProblem(Descriptors.MixerNotModule.Id,
                $"class {type.Name} is {what}: generated code creates a C# mixer with new {type.Name}(dim, ...)", a.Attribute));
            return;
        }
        var module = compilation.GetTypeByMetadataName("TorchSharp.torch+nn+Module`2");
        var tensor = compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
        if (module is null || tensor is null)
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerNotModule.Id,
                $"class {type.Name} cannot be a mixer: TorchSharp is not referenced (a mixer derives from nn.Module<Tensor, Tensor>)", a.Attribute));
            return;
        }
        for (var t = type.BaseType; t is not null; t = t.BaseType)
        {
            if (SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, module)
                && t.TypeArguments.All(x => SymbolEqualityComparer.Default.Equals(x, tensor)))
                return;
        }
        var modules = new List<string>();
        for (var t = type.BaseType; t is not null; t = t.BaseType)
            if (t.ContainingType?.Name == "nn" && t.Name == "Module") modules.Add(t.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat));
        var has = modules.Count > 0 ? $"derives from {modules[0]}" : type.BaseType is { SpecialType: not SpecialType.System_Object } b
            ? $"derives from {b.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}" : "is not a TorchSharp module";
        a.Problems.Add(new AttributeProblem(Descriptors.MixerNotModule.Id,
            $"class {type.Name} {has}; a mixer takes one tensor and returns one, so it must derive from nn.Module<Tensor, Tensor>", a.Attribute));
    }

    /// <summary>
    /// Generated code calls <c>new T(dim, camel: value, ...)</c>: <c>dim</c> (a long) positionally, then only the .mix
    /// arguments a call gives, by name. So some accessible constructor must take a long first, have a parameter of each
    /// .mix parameter's name whose type takes the generated value, defaults for the .mix parameters that have one (equal
    /// to the .mix default when both are literals: the front end computes the weights with the .mix one), and defaults
    /// for any other parameter.
    /// </summary>
    static void CheckConstructor(INamedTypeSymbol type, Arguments a, Compilation compilation)
    {
        var parameters = a.Declaration!.Params.Where(p => p.Name != "dim").ToList();
        var expected = "(long dim" + string.Concat(parameters.Select(p => $", {GType.From(p.Type).CSharp} {Names.Camel(p.Name)}" + (Optional(p) ? " = ..." : ""))) + ")";
        var constructors = type.InstanceConstructors
            .Where(c => c.DeclaredAccessibility is Accessibility.Public or Accessibility.Internal or Accessibility.ProtectedOrInternal)
            .ToList();
        if (constructors.Count == 0)
        {
            a.Problems.Add(new AttributeProblem(Descriptors.MixerConstructor.Id,
                $"class {type.Name} has no public or internal constructor; generated code calls new {type.Name}{expected}", a.Attribute));
            return;
        }
        List<string>? best = null;
        foreach (var c in constructors)
        {
            var reasons = Mismatches(c, parameters, compilation);
            if (reasons.Count == 0) return;
            if (best is null || reasons.Count < best.Count) best = reasons;
        }
        a.Problems.Add(new AttributeProblem(Descriptors.MixerConstructor.Id,
            $"no constructor of {type.Name} takes the call generated code makes, new {type.Name}{expected}: {string.Join("; ", best!)}", a.Attribute));
    }

    static bool Optional(ParamSpec p) => p.DefaultExpr is not null || p.Type.IsOptional;

    static List<string> Mismatches(IMethodSymbol ctor, List<ParamSpec> parameters, Compilation compilation)
    {
        var reasons = new List<string>();
        var ps = ctor.Parameters;
        var longType = compilation.GetSpecialType(SpecialType.System_Int64);
        if (ps.Length == 0 || ps[0].RefKind != RefKind.None || !compilation.ClassifyCommonConversion(longType, ps[0].Type).IsImplicit)
        {
            reasons.Add(ps.Length == 0 ? "the constructor takes no channels (its first parameter must take long dim)"
                : $"its first parameter '{ps[0].Name}' ({ps[0].Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}) cannot take the channels, a long");
            return reasons;
        }
        var used = new HashSet<IParameterSymbol>(SymbolEqualityComparer.Default) { ps[0] };
        foreach (var p in parameters)
        {
            var name = Names.Camel(p.Name).TrimStart('@');
            var match = ps.Skip(1).FirstOrDefault(x => x.Name == name);
            if (match is null)
            {
                reasons.Add($"no parameter '{name}' for the .mix parameter '{p.Name}'");
                continue;
            }
            used.Add(match);
            var gtype = GType.From(p.Type);
            if (Resolve(gtype, compilation) is { } source && (match.RefKind != RefKind.None || !compilation.ClassifyCommonConversion(source, match.Type).IsImplicit))
                reasons.Add($"'{name}' is {match.Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}, but the .mix {p.Name} arrives as {gtype.CSharp}");
            if (Optional(p) && !match.IsOptional)
                reasons.Add($"'{name}' needs a default: .mix uses may leave '{p.Name}' out");
            else if (match.HasExplicitDefaultValue && Literal(p.DefaultExpr) is { } mixDefault && !SameValue(match.ExplicitDefaultValue, mixDefault))
                reasons.Add($"'{name}' defaults to {Display(match.ExplicitDefaultValue)}, the .mix default is {Display(mixDefault)} (the front end computes shapes with the .mix one)");
        }
        foreach (var extra in ps.Where(x => !used.Contains(x) && !x.IsOptional && !x.IsParams))
            reasons.Add($"'{extra.Name}' is not a .mix parameter and has no default");
        return reasons;
    }

    /// <summary>The C# type generated code passes for a .mix type (null: not checked).</summary>
    static ITypeSymbol? Resolve(GType t, Compilation c)
    {
        ITypeSymbol? s = t.Kind switch
        {
            "int" => c.GetSpecialType(SpecialType.System_Int64),
            "float" => c.GetSpecialType(SpecialType.System_Double),
            "bool" => c.GetSpecialType(SpecialType.System_Boolean),
            "string" => c.GetSpecialType(SpecialType.System_String),
            "mixer" => c.GetTypeByMetadataName("Mix.Runtime.Builtins.MixerFactory"),
            "norm" => c.GetTypeByMetadataName("Mix.Runtime.Builtins.NormFactory"),
            "act" => c.GetTypeByMetadataName("Mix.Runtime.Builtins.ActFactory"),
            "block" => c.GetTypeByMetadataName("Mix.Runtime.Builtins.BlockFactory"),
            "tensor" => c.GetTypeByMetadataName("TorchSharp.torch+Tensor"),
            "array" => t.Element is { } e && Resolve(e, c) is { } el ? c.CreateArrayTypeSymbol(el) : null,
            _ => null,
        };
        if (s is { IsValueType: true } && t.Nullable) s = c.GetSpecialType(SpecialType.System_Nullable_T).Construct(s);
        return s;
    }

    static object? Literal(Expr? e) => e switch
    {
        NumberExpr n => n.Value,
        UnaryExpr { Op: "-", Operand: NumberExpr n } => -n.Value,
        BoolExpr b => b.Value,
        _ => null,
    };

    static bool SameValue(object? csharp, object mix) => (csharp, mix) switch
    {
        (bool x, bool y) => x == y,
        (IConvertible x, double y) when x is not bool and not string => Convert.ToDouble(x, CultureInfo.InvariantCulture) == y,
        _ => true,
    };

    static string Display(object? v) => v switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>Reports each declaration's problems, and names taken by more than one <c>[Mixer]</c> class.</summary>
    public static void Report(SourceProductionContext context, ImmutableArray<MixerDeclaration> declarations)
    {
        foreach (var d in declarations)
            foreach (var p in d.Problems)
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.ById(p.Id), p.Where.ToLocation(), p.Message));
        foreach (var group in declarations.Where(d => d.Binding is not null).GroupBy(d => d.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            // The generator uses the first by type name; every claimant is told who else claims the name.
            var chosen = group.OrderBy(d => d.TypeName, StringComparer.Ordinal).First();
            foreach (var d in group)
            {
                var others = string.Join(", ", group.Where(o => o != d).Select(o => o.TypeName).OrderBy(n => n, StringComparer.Ordinal));
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.MixerNameClash, d.Where.ToLocation(),
                    $"'{d.Name}' is also the [Mixer] name of {others}; .mix files get only one of them ({chosen.TypeName})"));
            }
        }
    }
}
