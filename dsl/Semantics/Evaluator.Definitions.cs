using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

internal sealed partial class Evaluator
{
    /// <summary>
    /// Checks one definition on its own: parameters take their defaults, or stand for any value of their type
    /// (ints become symbols, mixers any shape-preserving mixer); the inputs are the signature's own shapes.
    /// For a model this is the model as built, so its module tree is returned.
    /// </summary>
    internal LayerNode? CheckDefinition(UserCallable u, FileContext file, out Shape? output, out IReadOnlyList<Shape> inputShapes)
    {
        output = null;
        inputShapes = System.Array.Empty<Shape>();
        var def = u.Definition;
        if (u.IsExternal) return null;
        CheckKernelAnnotation(def, file);
        if (def.Signature is null && def.Alias is null)
        {
            Report(file, def.Name.Span, DiagnosticIds.MissingSignature,
                $"{u.KindName} {u.Name} needs a signature after its parameters, e.g. `(x: [B, C, H, W]) -> [B, C, H, W]`");
            return null;
        }

        var args = new Dictionary<string, Value>();
        foreach (var p in u.Params)
        {
            if (p.DefaultExpr is not null) continue;
            if (def.Kind == DefinitionKind.Model && !p.IsImplicitDim)
            {
                var ps = def.Parameters.FirstOrDefault(x => x.Name.Name == p.Name);
                Report(file, ps?.Name.Span ?? def.Name.Span, DiagnosticIds.ModelParameterNeedsDefault,
                    $"model parameter '{p.Name}' needs a default (`{p.Name}: {p.Type} = ...`) so the model can be built");
            }
            args[p.Name] = Opaque(p);
        }

        var root = new LayerNode("", null, u.Name);
        var frame = new Frame(file, new Scope(null), root, false) { FreeSymbols = FreeSymbols.Symbol };
        var inputs = new List<Value>();
        var shapes = new List<Shape>();
        if (def.Signature is Signature sig)
        {
            // Signature dims may use parameters (dim, num_classes): read them with the parameters bound.
            var scope = BindParameters(u, args, file, def.Name.Span, frame);
            if (scope is null) return null;
            var sigFrame = new Frame(file, scope, null, false) { FreeSymbols = FreeSymbols.Symbol };
            foreach (var input in sig.Inputs)
            {
                var dims = new List<Dim>();
                foreach (var d in input.Shape.Dims)
                {
                    var v = Guard(file, d.Span, () => Eval(d, sigFrame), UnknownValue.Instance);
                    if (v is IntValue iv)
                    {
                        if (iv.Dim.IsConstant && (!iv.Dim.HasIntegerCoefficients || iv.Dim.ConstantValue.Numerator < 0))
                            Report(file, d.Span, DiagnosticIds.FractionalDimension, $"dimension {iv.Dim} is not a whole, non-negative number");
                        dims.Add(iv.Dim);
                    }
                    else
                    {
                        if (v is not UnknownValue)
                            Report(file, d.Span, DiagnosticIds.WrongType, $"a dimension must be an int; found {Describe(v)}");
                        dims.Add(Dim.Symbol("?"));
                    }
                }
                var shape = new Shape(dims, NormalizeElementType(input.Shape.ElementType, file, input.Shape));
                shapes.Add(shape);
                inputs.Add(new TensorValue(shape));
            }
            foreach (var d in sig.Output.Dims) Guard(file, d.Span, () => Eval(d, sigFrame), UnknownValue.Instance);
        }
        else if (def.Alias is not null)
        {
            // The alias's own signature provides the inputs.
            var scope = BindParameters(u, args, file, def.Name.Span, frame);
            if (scope is null) return null;
            var aliasFrame = new Frame(file, scope, null, false);
            var target = Guard(file, def.Alias.Span, () => Eval(def.Alias, aliasFrame), UnknownValue.Instance);
            if (target is FactoryValue { Callable: UserCallable tu } && tu.Definition.Signature is Signature ts)
            {
                var tScope = BindParameters(tu, ((FactoryValue)target).Args, ContextOf(tu.File, file), def.Alias.Span, aliasFrame);
                if (tScope is null) return null;
                var tFrame = new Frame(ContextOf(tu.File, file), tScope, null, false) { FreeSymbols = FreeSymbols.Symbol };
                foreach (var input in ts.Inputs)
                {
                    var dims = input.Shape.Dims.Select(d => Guard(file, def.Alias.Span, () => Eval(d, tFrame), UnknownValue.Instance) is IntValue iv ? iv.Dim : Dim.Symbol("?")).ToList();
                    var shape = new Shape(dims, NormalizeElementType(input.Shape.ElementType, file, input.Shape));
                    shapes.Add(shape);
                    inputs.Add(new TensorValue(shape));
                }
            }
            else if (target is FactoryValue { Callable: BuiltinCallable })
            {
                Report(file, def.Alias.Span, DiagnosticIds.MissingSignature, $"{u.Name} aliases a built-in; give it a signature and a body instead");
                return null;
            }
            else if (target is FactoryValue { Callable: UserCallable self } && self == u)
            {
                Report(file, def.Alias.Span, DiagnosticIds.Recursion, $"{u.Name} is an alias of itself; definitions cannot be recursive");
                return null;
            }
            else if (target is FactoryValue { Callable: UserCallable inner } && inner.Definition.Alias is not null)
            {
                // An alias has no signature of its own to take the inputs from; say so rather than "found model X".
                Report(file, def.Alias.Span, DiagnosticIds.WrongKind,
                    $"'{u.Name} = ...' names {inner.Name}, which is itself an alias; an alias must name a block or model with a signature (the one {inner.Name} aliases, with its arguments)");
                return null;
            }
            else
            {
                if (target is not UnknownValue)
                    Report(file, def.Alias.Span, DiagnosticIds.WrongKind, $"'{u.Name} = ...' must name a block or model; found {Describe(target)}");
                return null;
            }
        }

        inputShapes = shapes;
        var result = Guard(file, def.Span, () => Instantiate(u, args, inputs, root, def.Name.Span, frame), UnknownValue.Instance);
        output = (result as TensorValue)?.Shape;
        return root;
    }

    string NormalizeElementType(string? et, FileContext file, ShapeRef shape)
    {
        if (et is null) return "float";
        if (et is "float" or "long" or "int" or "bool" or "complex") return et;
        Report(file, shape.Span, DiagnosticIds.UnknownType, $"unknown element type '{et}'; use float, complex, long, int or bool");
        return "float";
    }

    /// <summary>A stand-in for a parameter without a default: any value of its type.</summary>
    static Value Opaque(ParamSpec p)
    {
        var t = p.Type;
        if (t.IsArray)
        {
            Value? el = t.Kind switch
            {
                TypeKind.Int => new IntValue(Dim.Symbol("?" + p.Name)),
                _ => Opaque(new ParamSpec(p.Name, t.Element)),
            };
            return new ArrayValue(null, el);
        }
        return t.Kind switch
        {
            TypeKind.Int => new IntValue(Dim.Symbol(p.Name)),
            TypeKind.Float => new FloatValue(null),
            TypeKind.Bool => new BoolValue(null),
            TypeKind.String => new StringValue(null),
            TypeKind.Enum => new EnumValue(t.EnumName ?? "", null),
            TypeKind.Mixer => new FactoryValue(OpaqueCallable.Mixer, new Dictionary<string, Value>()),
            TypeKind.Norm => new FactoryValue(OpaqueCallable.Norm, new Dictionary<string, Value>()),
            TypeKind.Act => new FactoryValue(OpaqueCallable.Act, new Dictionary<string, Value>()),
            _ => new UnknownValue(t.Kind),
        };
    }

    /// <summary>
    /// <c>@kernel("name")</c> on a definition: the definition computes exactly what that fused kernel computes, so the
    /// fused GPU dispatch may run the kernel on its weights. A promise only parity tests can keep, hence reserved to the
    /// standard library's mixers.
    /// </summary>
    void CheckKernelAnnotation(Definition def, FileContext file)
    {
        foreach (var a in def.Annotations)
        {
            if (a.Name.Name != "kernel") continue;
            if (a.Args.Count != 1 || a.Args[0].Value is not StringExpr s || System.Array.IndexOf(StandardLibrary.Kernels, s.Value) < 0)
                Report(file, a.Span, DiagnosticIds.BadAnnotation,
                    $"@kernel takes one kernel name: {string.Join(", ", StandardLibrary.Kernels.Select(k => $"\"{k}\""))}");
            else if (!StandardLibrary.IsStdPath(file.Source.Path) || def.Kind != DefinitionKind.Mixer)
                Report(file, a.Span, DiagnosticIds.BadAnnotation,
                    "@kernel is reserved to the standard library's mixers (their equality with the kernel is tested)");
        }
    }
}

/// <summary>Any mixer, norm or activation: keeps the shape, owns no known weights.</summary>
internal static class OpaqueCallable
{
    public static readonly BuiltinCallable Mixer = Make("a mixer", CallableKind.Mixer);
    public static readonly BuiltinCallable Norm = Make("a norm", CallableKind.Norm);
    public static readonly BuiltinCallable Act = Make("an activation", CallableKind.Act);

    static BuiltinCallable Make(string name, CallableKind kind) =>
        new(name, kind, kind == CallableKind.Act ? new ParamSpec[0] : new[] { new ParamSpec("dim", MixType.Int, required: true) { IsImplicitDim = true } }, "[*] -> [*]", name)
        {
            Apply = c => c.Inputs.Count > 0 ? c.Inputs[0] : UnknownValue.Instance,
            HasWeights = _ => false,
        };

}
