using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// Parameters, buffers and their initializers. `w = param([d, n], init = normal(std = 0.02))`: the statement's name is
// the state-dict key; the init is evaluated once, at construction, with the declared shape as its context.
public static partial class BuiltinCatalog
{
    static readonly string[] s_dtypes = { "float", "complex", "long", "bool" };

    static void RegisterInit()
    {
        Init("zeros", Array.Empty<ParamSpec>(), "all zeros");
        Init("ones", Array.Empty<ParamSpec>(), "all ones");
        Init("constant", new[] { Req("value", MixType.Float) }, "every entry = value");
        Init("normal", new[] { Opt("mean", MixType.Float, F(0)), Opt("std", MixType.Float, F(1)) }, "N(mean, std²)", c => CheckPositiveStd(c));
        Init("trunc_normal", new[] { Opt("std", MixType.Float, F(1)), Opt("mean", MixType.Float, F(0)), Opt("a", MixType.Float, F(-2)), Opt("b", MixType.Float, F(2)) },
            "N(mean, std²) truncated to [a, b] (timm's trunc_normal_)", c =>
            {
                CheckPositiveStd(c);
                if (c.Double("a") is double a && c.Double("b") is double b && a >= b) c.Report(DiagnosticIds.OutOfRange, $"trunc_normal needs a < b; got a = {a}, b = {b}");
            });
        Init("uniform", new[] { Opt("a", MixType.Float, F(0)), Opt("b", MixType.Float, F(1)) }, "U(a, b)", c =>
        {
            if (c.Double("a") is double a && c.Double("b") is double b && a > b) c.Report(DiagnosticIds.OutOfRange, $"uniform needs a ≤ b; got a = {a}, b = {b}");
        });
        Init("kaiming_uniform", new[] { Opt("a", MixType.Float, F(Math.Sqrt(5))) }, "He uniform, fan-in (PyTorch's default for linear weights with a = √5)");
        Init("kaiming_normal", new[] { Opt("a", MixType.Float, F(0)) }, "He normal, fan-in");
        Init("xavier_uniform", new[] { Opt("gain", MixType.Float, F(1)) }, "Glorot uniform");

        Weight("param", "a learned parameter (frozen: requires_grad = false, still in the state dict)",
            Opt("frozen", MixType.Bool, B(false)), isBuffer: false);
        Weight("buffer", "a buffer: moves with the module, not trained; persistent = false keeps it out of the state dict",
            Opt("persistent", MixType.Bool, B(true)), isBuffer: true);

    }

    static void CheckPositiveStd(BuiltinCall c)
    {
        if (c.Double("std") is double s && s < 0) c.Report(DiagnosticIds.OutOfRange, $"std must not be negative; got {s}");
    }

    static void Init(string name, ParamSpec[] ps, string summary, Action<BuiltinCall>? validate = null) =>
        Add(new BuiltinCallable(name, CallableKind.Function, ps, "the declared shape", summary)
        {
            BindsAll = true,
            IsInit = true,
            Apply = c =>
            {
                validate?.Invoke(c);
                var s = c.InitShape!;
                if (name.StartsWith("kaiming", StringComparison.Ordinal) || name.StartsWith("xavier", StringComparison.Ordinal))
                    if (s.Rank < 2) c.Report(DiagnosticIds.BadAxis, $"{name} needs fan-in and fan-out: a shape of rank ≥ 2; got {s}");
                return new TensorValue(new Shape(s.Dims, s.ElementType == "complex" ? "complex" : "float"));
            },
        });

    static void Weight(string name, string summary, ParamSpec flag, bool isBuffer) =>
        Add(new BuiltinCallable(name, CallableKind.Function,
            new[] { Req("shape", MixType.Int.Array()), Opt("init", MixType.Any, Factory("zeros")), Opt("dtype", MixType.String, new StringValue("float")), flag },
            "[shape] (dtype)", summary)
        {
            BindsAll = true,
            TakesInit = true,
            Apply = c =>
            {
                if (c.Arg("dtype") is StringValue { Value: string dt } && !s_dtypes.Contains(dt))
                {
                    c.Report(DiagnosticIds.OutOfRange, $"dtype must be one of {string.Join(", ", s_dtypes.Select(d => "\"" + d + "\""))}; got \"{dt}\"");
                    return UnknownValue.Instance;
                }
                var dtype = (c.Arg("dtype") as StringValue)?.Value ?? "float";
                if (Evaluator.ShapeOf(c.Arg("shape"), dtype) is not Shape shape) return UnknownValue.Instance;
                foreach (var d in shape.Dims)
                    if (d.AsLong is long l && l <= 0)
                    {
                        c.Report(DiagnosticIds.OutOfRange, $"{name} sizes must be positive; got {shape}");
                        return UnknownValue.Instance;
                    }
                var init = c.Arg("init");
                switch (init)
                {
                    case FactoryValue { Callable: BuiltinCallable { IsInit: true } fn } fv:
                        if (fv.Missing.Any())
                        {
                            c.Report(DiagnosticIds.MissingArgument, $"{fn.Name} needs {string.Join(", ", fv.Missing.Select(p => p.Name))}");
                            return UnknownValue.Instance;
                        }
                        fn.Apply!(new BuiltinCall(fn, fv.Args, Array.Empty<Value>(), null, c.Report) { InitShape = shape });
                        break;
                    case IntValue or FloatValue or BoolValue or UnknownValue:
                        break;
                    case TensorValue t:
                        if (t.Shape.ElementType == "complex" && dtype != "complex")
                        {
                            c.Report(DiagnosticIds.DtypeMismatch, $"the init of a {dtype} {name} is complex ({t.Shape}); declare dtype = \"complex\" or take real(z)");
                            return UnknownValue.Instance;
                        }
                        if (!Broadcasting.BroadcastsTo(t.Shape, shape, out var axis))
                        {
                            c.Report(DiagnosticIds.ShapeMismatch,
                                $"the init's shape {t.Shape} does not broadcast to the declared {shape}" + (axis >= 0 && axis < shape.Rank && t.Shape.Rank <= shape.Rank ? $": axis {axis} is {shape[axis]}" : ""));
                            return UnknownValue.Instance;
                        }
                        break;
                    default:
                        c.Report(DiagnosticIds.WrongType,
                            $"init of {name} must be an initializer (zeros, ones, normal(std = 0.02), …), a number or a tensor expression; found {init.Describe()}");
                        return UnknownValue.Instance;
                }
                return new WeightDeclValue(shape, isBuffer, !isBuffer && c.Bool("frozen") == true, !isBuffer || c.Bool("persistent") != false);
            },
        });
}
