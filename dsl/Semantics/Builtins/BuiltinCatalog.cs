using System.Collections.Generic;
using System.Linq;

namespace Mix.Dsl.Semantics;

/// <summary>
/// Every built-in the language knows, by name. Built-ins mirror the runtime's reference modules: same parameter
/// names, same submodule and weight names (so keys match timm / Hugging Face), and a shape contract the checker
/// enforces. docs/language.md lists them; a test keeps the two in step.
/// </summary>
public static partial class BuiltinCatalog
{
    static readonly Dictionary<string, BuiltinCallable> s_all = new();

    static BuiltinCatalog()
    {
        RegisterActivations();
        RegisterNorms();
        RegisterLayers();
        RegisterMixers();
        RegisterFunctions();
        RegisterTensor();
        RegisterSpectral();
        RegisterInit();
        RegisterScans();
        RegisterNn();
        RegisterState();
        RegisterAux();
    }

    /// <summary>All built-ins, by name.</summary>
    public static IReadOnlyDictionary<string, BuiltinCallable> All => s_all;

    /// <summary>Looks up a built-in.</summary>
    public static BuiltinCallable? Find(string name) => s_all.TryGetValue(name, out var b) ? b : null;

    static void Add(BuiltinCallable b) => s_all[b.Name] = b;

    // ---- parameter helpers ----------------------------------------------------------------------------------

    static ParamSpec Req(string name, MixType type) => new(name, type, required: true);
    static ParamSpec Opt(string name, MixType type, Value @default) => new(name, type, @default);
    static ParamSpec ImplicitDim() => new("dim", MixType.Int, required: true) { IsImplicitDim = true };
    static ParamSpec TensorParam(string name = "x") => new(name, MixType.Tensor, required: true);

    static IntValue I(long v) => new(Dim.Const(v));
    static FloatValue F(double v) => new(v);
    static BoolValue B(bool v) => new(v);
    static NoneValue None => NoneValue.Instance;

    static FactoryValue Factory(string name) => new(s_all[name], new Dictionary<string, Value>());

    // ---- shape helpers --------------------------------------------------------------------------------------

    /// <summary>Checks rank; reports and returns false on mismatch.</summary>
    static bool ExpectRank(BuiltinCall c, Shape s, int rank, string pattern)
    {
        if (s.Rank == rank) return true;
        c.Report(Diagnostics.DiagnosticIds.InputShapeMismatch,
            $"{c.Callable.Name} expects {pattern} (rank {rank}) but got {s} (rank {s.Rank})");
        return false;
    }

    static bool ExpectMinRank(BuiltinCall c, Shape s, int rank, string pattern)
    {
        if (s.Rank >= rank) return true;
        c.Report(Diagnostics.DiagnosticIds.InputShapeMismatch,
            $"{c.Callable.Name} expects {pattern} (rank ≥ {rank}) but got {s}");
        return false;
    }

    static bool ExpectDim(BuiltinCall c, Shape s, int axis, Dim expected, string what)
    {
        var actual = s[axis];
        if (Shape.Compatible(actual, expected)) return true;
        c.Report(Diagnostics.DiagnosticIds.InputShapeMismatch,
            $"{c.Callable.Name} expects {what} = {expected} on axis {(axis < 0 ? s.Rank + axis : axis)} but got {s}");
        return false;
    }

    static Value Same(BuiltinCall c) => c.Inputs.Count > 0 ? c.Inputs[0] : UnknownValue.Instance;

    static void CheckPositive(BuiltinCall c, string name)
    {
        if (c.Long(name) is long v && v <= 0)
            c.Report(Diagnostics.DiagnosticIds.OutOfRange, $"{name} must be positive; got {v}");
    }

    static void CheckProbability(BuiltinCall c, string name)
    {
        if (c.Double(name) is double p && (p < 0 || p >= 1))
            c.Report(Diagnostics.DiagnosticIds.OutOfRange, $"{name} must be in [0, 1); got {p}");
    }

    static void CheckOdd(BuiltinCall c, string name)
    {
        if (c.Long(name) is long k && (k <= 0 || k % 2 == 0))
            c.Report(Diagnostics.DiagnosticIds.OutOfRange, $"{name} must be a positive odd number so the output keeps its size; got {k}");
    }

    static void CheckDivides(BuiltinCall c, Dim divisor, Dim dividend, string what)
    {
        if (divisor.AsLong is long d && dividend.AsLong is long n && d > 0 && n % d != 0)
            c.Report(Diagnostics.DiagnosticIds.NotDivisible, $"{what}: {d} does not divide {n}");
    }

    /// <summary>Instantiates a built-in factory argument (an act or norm) as a child module, declaring its weights.</summary>
    static void SubLayer(BuiltinCall c, string childName, Value factory, Dim? dim)
    {
        if (factory is not FactoryValue f || f.Callable is not BuiltinCallable b || c.Node is null) return;
        var args = f.Args.ToMutable();
        if (dim is not null && b.FindParam("dim") is not null && !args.ContainsKey("dim")) args["dim"] = new IntValue(dim);
        var child = c.Child(childName, b.Name);
        var sub = new BuiltinCall(b, args, c.Inputs, child, c.Report);
        b.Weights?.Invoke(sub);
    }

    internal static bool FactoryHasWeights(Value factory, Dim? dim)
    {
        if (factory is not FactoryValue f || f.Callable is not BuiltinCallable b) return factory is FactoryValue;
        var args = f.Args.ToMutable();
        if (dim is not null && !args.ContainsKey("dim")) args["dim"] = new IntValue(dim);
        var call = new BuiltinCall(b, args, System.Array.Empty<Value>(), null, (_, _) => { });
        return b.HasWeights?.Invoke(call) ?? b.Weights is not null;
    }

    static Dim Hidden(Dim dim, double? ratio, string label)
    {
        if (ratio is double r && dim.AsLong is long d) return Dim.Const((long)System.Math.Floor(r * d));
        if (ratio is double r2 && r2 == System.Math.Floor(r2)) return dim * Dim.Const((long)r2);
        return Dim.Symbol($"{label}({dim})");
    }
}
