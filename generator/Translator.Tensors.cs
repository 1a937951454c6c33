using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Mix.Dsl.Semantics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Generator;

// Tensor math, parameters and buffers in generated code: a tensor-math built-in is Fn.Name(...) with its arguments in
// .mix order (optional ones by name after a gap), an initializer is MixInit.Name(s, ...) over the declared shape s,
// and `w = param(...)` is a Parameter field built with MixInit.Of.
internal sealed partial class Translator
{
    /// <summary>Inside a param/buffer init: the C# name of the declared shape (the init lambda's parameter).</summary>
    string? _initShape;
    /// <summary>The first forward input, whose device a non-persistent buffer follows.</summary>
    string _deviceOf = "x";
    // Non-persistent buffers as the forward reads them (moved to the input's device) → as an init reads them (the
    // constructor's local): `zoh = buffer(..., init = matrix_exp(legendre), persistent = false)`.
    readonly Dictionary<string, string> _ctorReads = new();

    static readonly Dictionary<string, string> s_comparisons = new()
    {
        ["<"] = "Less", ["<="] = "LessEqual", [">"] = "Greater", [">="] = "GreaterEqual", ["=="] = "Equal", ["!="] = "NotEqual",
    };

    /// <summary>A call of a tensor-math built-in by name, or null (the general call path handles it).</summary>
    V? TryMathCall(CallExpr call, Scope scope, V? pipeInput)
    {
        if (call.Callee is not NameExpr ne || scope.TryGet(ne.Name, out _) || _defs.ContainsKey(ne.Name)) return null;
        if (BuiltinCatalog.Find(ne.Name) is not BuiltinCallable fn || !(fn.BindsAll || fn.TakesInit || fn.TensorForm is not null)) return null;
        if (fn.Name == "state") return new VState(call);

        var args = new List<Arg>();
        if (pipeInput is not null) args.Add(new Arg(null, pipeInput, call.Span));
        int positional = 0;
        foreach (var a in call.Args)
        {
            bool isInit = fn.TakesInit && (a.Name == "init" || (a.Name is null && positional == 1));
            if (a.Name is null) positional++;
            var saved = _initShape;
            if (isInit) _initShape = "s";
            args.Add(new Arg(a.Name, Eval(a.Value, scope), a.Value.Span));
            _initShape = saved;
        }
        if (fn.TensorForm is { } tensorForm && args.Any(a => IsTensorArg(a.Value))) fn = tensorForm;
        if (!fn.BindsAll)
        {
            var plain = Bind(new VFactory(fn, "function", new Dictionary<string, V>()), args, true, true, call.Span);
            return CallFunction(fn, plain, new List<V>(), call.Span);
        }
        var bound = Bind(new VFactory(fn, "function", new Dictionary<string, V>()), args, true, false, call.Span);
        if (fn.TakesInit) return WeightValue(fn, bound, call.Span);
        if (!bound.IsComplete) return bound; // partial: x |> cumsum(dim = 1)
        return EmitMath(fn, bound.Args, call.Span);
    }

    static bool IsTensorArg(V v) => v is VCode { Type.Kind: "tensor" } || v is VArray a && a.Items.Any(IsTensorArg);

    /// <summary>A partial tensor-math function applied to tensors: they fill its first unbound parameters.</summary>
    V ApplyMath(BuiltinCallable fn, VFactory bound, List<V> tensors, TextSpan span)
    {
        var args = new Dictionary<string, V>(bound.Args);
        var free = fn.Params.Where(p => !args.ContainsKey(p.Name)).ToList();
        for (int i = 0; i < tensors.Count && i < free.Count; i++) args[free[i].Name] = tensors[i];
        return EmitMath(fn, args, span);
    }

    V EmitMath(BuiltinCallable fn, IReadOnlyDictionary<string, V> args, TextSpan span)
    {
        // aux_loss / aux_stat record under the module that runs them (MixAux), so they take `this`.
        if (fn.Name is "aux_loss" or "aux_stat")
        {
            var value = args["value"] is VCode { Type.Kind: "tensor" } tv ? Materialize(tv).Code : Val(args["value"], GType.Tensor, span);
            return new VCode($"MixAux.{(fn.Name == "aux_loss" ? "Loss" : "Stat")}(this, {Val(args["name"], GType.String, span)}, {value})", GType.Tensor);
        }
        if (!fn.IsInit && FusibleMath(fn, args, a => MathCall(fn, a, span, materialize: false)) is VCode fused) return fused;
        if (fn.IsInit && _initShape is null) throw new UnsupportedException(span, $"{fn.Name} is an initializer; use it in a param or buffer init");
        bool anyTensor = args.Values.Any(IsTensorArg);
        var call = MathCall(fn, args, span, materialize: true);
        if (fn.IsInit) return new VCode(call, GType.Tensor);
        var type = fn.ReturnsTuple ? GType.Tuple : fn.HasNumberForm && !anyTensor ? GType.Float : GType.Tensor;
        // Tensors made from sizes alone are created on the CPU; in the forward they follow the input's device.
        if (_initShape is null && fn.Name is "arange" or "ones_mask") call += $".to({_deviceOf}.device)";
        return new VCode(call, type);
    }

    /// <summary>The C# call of a tensor-math built-in (tensor operands with their fused regions cut when <paramref name="materialize"/>).</summary>
    string MathCall(BuiltinCallable fn, IReadOnlyDictionary<string, V> args, TextSpan span, bool materialize)
    {
        var parts = new List<string>();
        bool gap = false;
        foreach (var p in fn.Params)
        {
            if (!args.TryGetValue(p.Name, out var v)) { gap = true; continue; }
            var code = materialize && v is VCode { Type.Kind: "tensor" } tv ? Materialize(tv).Code : Val(v, GType.From(p.Type), span);
            // A whole number where a number or tensor is taken: double, so that C# picks the number overload.
            if (p.Type.Kind == TypeKind.Any && v is VCode { Type.Kind: "int" } iv && fn.Name != "arange")
                code = "(double)" + Paren(code, iv.Prec, 100);
            // Optional settings by name, as the .mix call reads (clamp(x, min = 0.1)); tensors and required ones in order.
            bool named = gap || (!p.Required && p.Type.Kind is not (TypeKind.Tensor or TypeKind.Any));
            if (named) gap = true;
            parts.Add((named ? Names.Camel(p.Name) + ": " : "") + code);
        }
        if (fn.IsInit) return $"MixInit.{Names.Pascal(fn.Name)}({string.Join(", ", new[] { _initShape }.Concat(parts))})";
        // Spectra of half-precision values are complex64 (no complex type holds bfloat16): what comes back to real
        // values is rounded to the forward input's precision (Fn.Spectral), so a bfloat16 model stays bfloat16.
        if (_initShape is null && fn.Name is "irfft" or "irfft2" or "real" or "imag" or "view_as_real") parts.Add($"like: {_deviceOf}");
        return $"Fn.{Names.Builtin(fn.Name)}({string.Join(", ", parts)})";
    }

    /// <summary><c>param(shape, init, dtype, frozen)</c> / <c>buffer(shape, init, dtype, persistent)</c>.</summary>
    V WeightValue(BuiltinCallable fn, VFactory bound, TextSpan span)
    {
        var shape = Val(bound.Args["shape"], new GType("array", GType.Int), span);
        string init;
        var saved = _initShape;
        _initShape = "s";
        switch (bound.Args.TryGetValue("init", out var v) ? v : null)
        {
            case null:
                init = "s => MixInit.Zeros(s)";
                break;
            case VFactory { Callable: BuiltinCallable { IsInit: true } ib } f:
                init = "s => " + Code(EmitMath(ib, f.Args, span), span);
                break;
            case VCode { Type.Kind: "tensor" } t:
                init = "s => " + t.Code;
                break;
            case VCode { Type.Kind: "int" or "float" } n:
                init = n.Type.Kind == "int" ? "(double)" + Paren(n.Code, n.Prec, 100) : n.Code;
                break;
            default:
                throw new UnsupportedException(span, "this init is not supported by the generator");
        }
        _initShape = saved;
        foreach (var read in _ctorReads) init = init.Replace(read.Key, read.Value);
        var dtype = bound.Args.TryGetValue("dtype", out var d) && d is VCode { Type.Kind: "string" } ds ? ds.Code.Trim('"') : "float";
        var scalarType = dtype switch
        {
            "complex" => ", ScalarType.ComplexFloat32",
            "long" => ", ScalarType.Int64",
            "bool" => ", ScalarType.Bool",
            _ => "",
        };
        bool Flag(string name, bool fallback) => bound.Args.TryGetValue(name, out var f) && f is VCode { Code: "true" or "false" } fc ? fc.Code == "true" : fallback;
        return new VWeight($"MixInit.Of({shape}, {init}{scalarType})", fn.Name == "buffer", Flag("frozen", false), Flag("persistent", true));
    }

    void TranslateWeight(BindingStatement b, VWeight w, Scope scope, int line, string? present = null)
    {
        var name = b.Targets[0].Name;
        var field = Names.Escape(name == "options" || name == "model" ? name + "_" : name);
        if (!_fieldNames.Add(field)) field += "_" + _fieldNames.Count.ToString(CultureInfo.InvariantCulture);
        var init = w.IsBuffer ? w.Code : w.Frozen ? $"new Parameter({w.Code}, requires_grad: false)" : $"new Parameter({w.Code})";
        if (present is not null)
        {
            // Left null when absent: RegisterComponents skips null fields, so the state dict has no key for it.
            if (w.IsBuffer && !w.Persistent)
                throw new UnsupportedException(b.Span, "a conditional non-persistent buffer is not supported by the generator yet");
            _ctor.Add(new CodeLine(line, $"{field} = {present} ? {init} : null;"));
            _fields.Add(new FieldSpec(field, name, (w.IsBuffer ? "Tensor" : "Parameter") + "?", "<c>" + Xml(MixPrinter.Statement(b)) + "</c>"));
            scope.Set(name, new VCode(field + "!", GType.Tensor));
            return;
        }
        // A non-persistent buffer is registered after RegisterComponents (which would make it persistent).
        string? local = w.IsBuffer && !w.Persistent ? "buffer_" + field.TrimStart('@') : null;
        _ctor.Add(new CodeLine(line, local is null ? $"{field} = {init};" : $"var {local} = {init};"));
        var doc = "<c>" + Xml(MixPrinter.Statement(b)) + "</c>";
        _fields.Add(new FieldSpec(field, name, w.IsBuffer ? "Tensor" : "Parameter", doc, local, NonPersistent: local is not null));
        // TorchSharp's .to(device) does not move a non-persistent buffer, so the forward takes it to the input's device.
        scope.Set(name, new VCode(local is null ? field : $"{field}.to({_deviceOf}.device)", GType.Tensor));
        // A later init reads it in the constructor, before registration: there it is the local, on no input's device.
        if (local is not null) _ctorReads[$"{field}.to({_deviceOf}.device)"] = local;
    }
}
