using System;
using System.Collections.Generic;

namespace Mix.Dsl.Semantics;

/// <summary>A built-in from the catalog (docs/language.md, "Built-in catalog").</summary>
public sealed class BuiltinCallable : Callable
{
    internal BuiltinCallable(string name, CallableKind kind, IReadOnlyList<ParamSpec> parameters, string contract, string summary)
    {
        Name = name;
        Kind = kind;
        Params = parameters;
        Contract = contract;
        Summary = summary;
    }

    /// <inheritdoc />
    public override string Name { get; }
    /// <inheritdoc />
    public override CallableKind Kind { get; }
    /// <inheritdoc />
    public override IReadOnlyList<ParamSpec> Params { get; }
    /// <summary>Whether a call gives a tuple of tensors (destructured by <c>a, b = ...</c>) rather than one tensor.</summary>
    public bool ReturnsTuple { get; internal init; }
    /// <summary>The optional state parameter (<c>state</c>, <c>initial_state</c>) that, when given a tensor, makes a call give
    /// <c>(y, final_state)</c> instead of <c>y</c>; null when the result does not depend on it.</summary>
    public string? TupleWhenGiven { get; internal init; }
    /// <summary>Shape contract, e.g. <c>[*, in_features] -&gt; [*, out_features]</c>.</summary>
    public string Contract { get; }
    /// <summary>One line saying what it is.</summary>
    public string Summary { get; }

    /// <summary>Output for tensor inputs (layers, mixers, norms, acts) or the result of a function call.</summary>
    internal Func<BuiltinCall, Value>? Apply { get; init; }
    /// <summary>Declares the weights of a layer on its node.</summary>
    internal Action<BuiltinCall>? Weights { get; init; }
    /// <summary>Range and divisibility checks on the arguments.</summary>
    internal Action<BuiltinCall>? Validate { get; init; }
    /// <summary>Whether it owns weights (an unnamed use would have no state-dict key).</summary>
    internal Func<BuiltinCall, bool>? HasWeights { get; init; }
    /// <summary>Name of the tensor parameter of a function (bound separately from the others).</summary>
    internal int TensorParams { get; init; }

    /// <summary>
    /// Tensor math: every argument, tensors included, binds to its parameter like any other (so <c>where(c, x, 0.0)</c>
    /// and <c>clamp(x, min = 0.1)</c> read naturally); <see cref="Apply"/> reads tensors with <see cref="BuiltinCall.Arg"/>.
    /// </summary>
    public bool BindsAll { get; internal init; }
    /// <summary>The number form of an elementwise function (<c>log(dt_min)</c>, <c>sqrt(5)</c>): its value for numbers.</summary>
    internal Func<double[], double>? Scalar { get; init; }
    /// <summary>Whether it has a number form (called with numbers only, it gives a number).</summary>
    public bool HasNumberForm => Scalar is not null;
    /// <summary>The tensor form of a number function of the same name (<c>sum(x, [1])</c> beside <c>sum(array)</c>).</summary>
    public BuiltinCallable? TensorForm { get; internal set; }
    /// <summary>Whether this is the tensor form of a number function (not in <see cref="BuiltinCatalog.All"/>).</summary>
    public bool IsTensorForm { get; internal init; }
    /// <summary>An initializer (<c>zeros</c>, <c>normal(std = 0.02)</c>): only inside <c>param</c>/<c>buffer</c>'s init, where
    /// the declared shape is its shape.</summary>
    public bool IsInit { get; internal init; }
    /// <summary><c>param</c> and <c>buffer</c>: the <c>init</c> argument is checked with the declared shape as context.</summary>
    public bool TakesInit { get; internal init; }

    /// <summary>The signature as documented: <c>conv2d(in_channels: int, out_channels: int, ...)</c>.</summary>
    public string SignatureText
    {
        get
        {
            var parts = new List<string>();
            foreach (var p in Params)
            {
                if (p.IsImplicitDim) continue;
                var s = $"{p.Name}: {p.Type}";
                if (p.Default is not null) s += " = " + DefaultText(p.Default);
                parts.Add(s);
            }
            return $"{Name}({string.Join(", ", parts)})";
        }
    }

    static string DefaultText(Value v) => v switch
    {
        IntValue i => i.Dim.ToString(),
        FloatValue f => f.Value?.ToString("R", System.Globalization.CultureInfo.InvariantCulture).Replace("E", "e") ?? "?",
        BoolValue b => b.Value == true ? "true" : "false",
        NoneValue => "none",
        FactoryValue fv => fv.Callable.Name,
        StringValue s => $"\"{s.Value}\"",
        _ => v.Describe(),
    };
}

/// <summary>One use of a built-in: bound arguments, tensor inputs, the layer's node, and a way to report.</summary>
internal sealed class BuiltinCall
{
    readonly Action<Diagnostics.DiagnosticDescriptor, string> _report;

    public BuiltinCall(BuiltinCallable callable, IReadOnlyDictionary<string, Value> args, IReadOnlyList<Value> inputs,
        LayerNode? node, Action<Diagnostics.DiagnosticDescriptor, string> report)
    {
        Callable = callable;
        Args = args;
        Inputs = inputs;
        Node = node;
        _report = report;
    }

    public BuiltinCallable Callable { get; }
    public IReadOnlyDictionary<string, Value> Args { get; }
    public IReadOnlyList<Value> Inputs { get; }
    public LayerNode? Node { get; }
    /// <summary>Inside a <c>param</c>/<c>buffer</c> init: the declared shape (the shape of <c>zeros</c>, <c>uniform(a, b)</c>).</summary>
    public Shape? InitShape { get; init; }

    public void Report(Diagnostics.DiagnosticDescriptor d, string message) => _report(d, message);

    public Value Arg(string name)
    {
        if (Args.TryGetValue(name, out var v)) return v;
        var p = Callable.FindParam(name);
        return p?.Default ?? UnknownValue.Instance;
    }

    /// <summary>An int argument as a dimension; an unknown dim if it is not an int.</summary>
    public Dim Dim(string name) => Arg(name) is IntValue i ? i.Dim : Semantics.Dim.Symbol("?" + name);
    public long? Long(string name) => Arg(name).AsLong();
    public double? Double(string name) => Arg(name).AsDouble();
    public bool? Bool(string name) => Arg(name) is BoolValue b ? b.Value : null;
    public bool IsNone(string name) => Arg(name) is NoneValue;

    /// <summary>The i-th tensor input's shape, or null (with nothing reported) when it is not a known tensor.</summary>
    public Shape? Input(int i = 0) => i < Inputs.Count && Inputs[i] is TensorValue t ? t.Shape : null;

    public void Weight(string name, params Dim[] shape) => Node?.AddWeight(name, shape);
    public void Buffer(string name, params Dim[] shape) => Node?.AddWeight(name, shape, isBuffer: true);

    /// <summary>Declares a child module (e.g. <c>fc1</c> of an MLP) and returns it for its weights.</summary>
    public LayerNode? Child(string name, string kind) => Node?.AddChild(name, kind);
}
