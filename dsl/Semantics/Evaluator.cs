using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

/// <summary>
/// Checks definitions by evaluating them over symbolic values: numbers may be symbols (<c>dim</c>, <c>H</c>), tensors
/// are shapes, layers are nodes of the module tree. Every problem is reported at its span; evaluation then continues
/// with an <see cref="UnknownValue"/> that silences follow-on errors.
/// </summary>
internal sealed partial class Evaluator
{
    /// <summary>Evaluation steps allowed per compilation: bounds the time of any input (well under a second). A reused
    /// instance is charged for its copy, not for a second check (<see cref="TryReuse"/>), so the budget counts work done;
    /// the whole model zoo in one compilation (196 definitions with the standard library) takes about 220,000 (460,000
    /// when every reused instance was charged as a second check).</summary>
    const int StepBudget = 500_000;
    /// <summary>The budget of this evaluator: with instance reuse off (a test switch that checks every instance for
    /// real, to compare against reuse) ten times <see cref="StepBudget"/>, so that what reuse saves does not turn into
    /// MIX0406 there.</summary>
    readonly int _budget = DisableInstanceReuse ? 10 * StepBudget : StepBudget;
    /// <summary>Loops and repeats longer than this are checked once, symbolically, instead of unrolled.</summary>
    const int MaxUnroll = 1024;
    /// <summary>Deepest chain of nested layer applications.</summary>
    const int MaxInstantiationDepth = 64;

    readonly DiagnosticBag _diagnostics;
    readonly List<Callable> _active = new();

    /// <summary>Definitions with syntax errors: follow-on flow diagnostics (missing return, unused layer) are not reported.</summary>
    internal HashSet<Syntax.Definition> Broken { get; } = new();
    int _steps;

    /// <summary>Evaluation steps spent so far (tests: how close a compilation comes to the budget).</summary>
    internal int StepsUsed => _steps;
    readonly HashSet<string> _budgetReported = new(StringComparer.Ordinal);

    public Evaluator(DiagnosticBag diagnostics) => _diagnostics = diagnostics;

    sealed class BudgetExceededException : Exception { }

    void Step()
    {
        if (++_steps > _budget) throw new BudgetExceededException();
    }

    /// <summary>Charges work that one step does not cover (arithmetic on large dimensions).</summary>
    void Charge(int steps)
    {
        _steps += steps;
        if (_steps > _budget) throw new BudgetExceededException();
    }

    readonly HashSet<string> _depthReported = new(StringComparer.Ordinal);

    void Report(Frame f, TextSpan span, DiagnosticDescriptor d, string message) =>
        _diagnostics.Report(d, f.File.Source, span, message);

    void Report(FileContext file, TextSpan span, DiagnosticDescriptor d, string message) =>
        _diagnostics.Report(d, file.Source, span, message);

    /// <summary>Runs <paramref name="action"/>, turning any failure into a diagnostic at <paramref name="span"/>.</summary>
    internal T Guard<T>(FileContext file, TextSpan span, Func<T> action, T fallback)
    {
        try
        {
            return action();
        }
        catch (BudgetExceededException)
        {
            // Once the budget is spent every later statement fails the same way: one error per file, where it ran out.
            if (_budgetReported.Add(file.Source.Path))
                Report(file, span, DiagnosticIds.TooLarge, $"checking this needs more than {StepBudget:N0} steps; it is too large to check");
            return fallback;
        }
        catch (InsufficientExecutionStackException)
        {
            // The thread's stack ran low (layers within layers within expressions): unwound to here, one error per file.
            if (_depthReported.Add(file.Source.Path))
                Report(file, span, DiagnosticIds.NestingTooDeep, "this nests too deeply to check (layers, blocks and expressions within each other); split it into named parts");
            return fallback;
        }
        catch (ValueTooLargeException e)
        {
            Report(file, span, DiagnosticIds.ValueTooLarge, e.Message);
            return fallback;
        }
        catch (OverflowException)
        {
            Report(file, span, DiagnosticIds.NumberOutOfRange, "a number here overflows 64-bit arithmetic");
            return fallback;
        }
        catch (DivideByZeroException)
        {
            Report(file, span, DiagnosticIds.OutOfRange, "division by zero");
            return fallback;
        }
        catch (Exception e) when (e is not OutOfMemoryException and not StackOverflowException)
        {
            Report(file, span, DiagnosticIds.InternalError, $"internal checker error ({e.GetType().Name}: {e.Message})");
            return fallback;
        }
    }

    // ---- names ------------------------------------------------------------------------------------------------

    static bool IsShapeSymbol(string name) => name.Length > 0 && char.IsUpper(name[0]);

    Callable? FindCallable(FileContext file, string name)
    {
        if (file.Ready().Definitions.TryGetValue(name, out var c)) return c;
        return BuiltinCatalog.Find(name);
    }

    /// <summary>Suggestions ("did you mean") left for this compilation: each compares the name with every name in
    /// scope, so thousands of unknown names among thousands of statements would cost their product.</summary>
    int _suggestionsLeft = 200;

    string DidYouMean(Frame f, string name)
    {
        if (_suggestionsLeft <= 0) return "";
        _suggestionsLeft--;
        var candidates = f.Scope.AllNames()
            .Concat(f.File.Ready().Definitions.Keys)
            .Concat(BuiltinCatalog.All.Keys)
            .Concat(f.File.EnumMembers.Keys)
            .Where(n => !n.StartsWith("$", StringComparison.Ordinal))
            .Distinct()
            .Take(2000);
        var best = Suggestions.Closest(name, candidates);
        return best is null ? "" : $"; did you mean '{best}'?";
    }

    // ---- types ------------------------------------------------------------------------------------------------

    internal MixType? ResolveType(FileContext file, TypeRef t)
    {
        MixType? baseType = t.Name switch
        {
            "int" => MixType.Int,
            "float" => MixType.Float,
            "bool" => MixType.Bool,
            "string" => MixType.String,
            "mixer" => MixType.Mixer,
            "norm" => MixType.Norm,
            "act" => MixType.Act,
            "block" => MixType.Block,
            _ => file.Ready().Enums.ContainsKey(t.Name) ? new MixType(TypeKind.Enum, EnumName: t.Name) : null,
        };
        if (baseType is null)
        {
            var best = Suggestions.Closest(t.Name, new[] { "int", "float", "bool", "string", "mixer", "norm", "act", "block" }.Concat(file.Enums.Keys));
            Report(file, t.Span, DiagnosticIds.UnknownType,
                $"unknown type '{t.Name}'; types are int, float, bool, string, mixer, norm, act, block or an enum{(best is null ? "" : $"; did you mean '{best}'?")}");
            return null;
        }
        return baseType with { IsArray = t.IsArray, IsOptional = t.IsOptional, ElementOptional = t.ElementOptional };
    }

    /// <summary>Whether a value may be passed where <paramref name="type"/> is expected.</summary>
    static bool Conforms(Value v, MixType type)
    {
        if (v is UnknownValue || type.Kind == TypeKind.Any) return true;
        if (v is NoneValue) return type.IsOptional;
        if (type.IsArray)
        {
            if (v is not ArrayValue a) return false;
            var el = type.Element;
            if (a.Items is null) return a.Element is null || Conforms(a.Element, el);
            return a.Items.All(i => Conforms(i, el));
        }
        return type.Kind switch
        {
            TypeKind.Int => v is IntValue,
            TypeKind.Float => v is FloatValue or IntValue,
            TypeKind.Bool => v is BoolValue,
            TypeKind.String => v is StringValue,
            TypeKind.Enum => v is EnumValue e && e.EnumName == type.EnumName,
            TypeKind.Tensor => v is TensorValue,
            TypeKind.Mixer => IsFactoryOf(v, CallableKind.Mixer),
            TypeKind.Norm => IsFactoryOf(v, CallableKind.Norm),
            TypeKind.Act => IsFactoryOf(v, CallableKind.Act),
            TypeKind.Block => v is FactoryValue { Callable.Kind: CallableKind.Block or CallableKind.Layer or CallableKind.Model }
                || IsIdentity(v),
            _ => true,
        };
    }

    static bool IsIdentity(Value v) => v is FactoryValue { Callable: BuiltinCallable { Name: "identity" } };

    static bool IsFactoryOf(Value v, CallableKind kind) =>
        v is FactoryValue f && (f.Callable.Kind == kind || IsIdentity(v));

    static string Describe(Value v) => v.Describe();
}
