using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Dsl;
using Mix.Dsl.Semantics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Generator;

/// <summary>A construct the generator cannot emit yet; becomes a MIX9001 diagnostic at <see cref="Span"/>.</summary>
internal sealed class UnsupportedException : Exception
{
    public UnsupportedException(TextSpan span, string message) : base(message) => Span = span;
    public TextSpan Span { get; }
}

/// <summary>
/// Translates one checked .mix definition into a <see cref="ClassSpec"/>: configuration expressions become C# over
/// <c>options</c>, layer declarations become fields built in the constructor, tensor statements become <c>forward</c>.
/// Configuration locals are substituted where used (they are pure), so only layers and tensors need C# names.
/// </summary>
internal sealed partial class Translator
{
    const string ModuleType = "nn.Module<Tensor, Tensor>";

    /// <summary>The TorchSharp module type taking <paramref name="inputs"/> tensors.</summary>
    static string ModuleOfArity(int inputs) =>
        inputs <= 1 ? ModuleType : "nn.Module<" + string.Join(", ", Enumerable.Repeat("Tensor", inputs + 1)) + ">";

    sealed class Scope
    {
        readonly Dictionary<string, V> _vars = new();
        public Scope(Scope? parent) => Parent = parent;
        public Scope? Parent { get; }
        public void Set(string name, V v) => _vars[name] = v;
        public bool TryGet(string name, out V v)
        {
            for (var s = this; s is not null; s = s.Parent)
                if (s._vars.TryGetValue(name, out v!)) return true;
            v = null!;
            return false;
        }
    }

    readonly CheckedDefinition _checked;
    readonly UserCallable _u;
    readonly Definition _def;
    readonly SourceText _source;
    readonly IReadOnlyDictionary<string, UserCallable> _defs;
    readonly List<CodeLine> _ctor = new();
    readonly List<CodeLine> _ties = new();
    readonly List<CodeLine> _forward = new();
    readonly List<FieldSpec> _fields = new();
    readonly List<(string Field, VLayer Layer, int Line)> _declared = new();
    readonly Dictionary<string, string> _shapeSymbols = new();
    readonly HashSet<string> _usedShapeSymbols = new();
    readonly HashSet<string> _forwardLocals = new();
    readonly HashSet<string> _fieldNames = new();
    int _temp;

    /// <summary>Enum members of the compilation; enums are strings in generated code (the checker already typed them).</summary>
    readonly IReadOnlyCollection<string> _enumMembers;

    /// <summary>C# mixers (<c>[Mixer]</c>): .mix name → fully qualified C# type.</summary>
    readonly IReadOnlyDictionary<string, string> _externals;

    public Translator(CheckedDefinition checkedDef, IReadOnlyDictionary<string, UserCallable> defs, IReadOnlyCollection<string>? enumMembers = null,
        IReadOnlyDictionary<string, string>? externals = null)
    {
        _externals = externals ?? new Dictionary<string, string>();
        _enumMembers = enumMembers ?? Array.Empty<string>();
        _checked = checkedDef;
        _u = checkedDef.Callable;
        _def = _u.Definition;
        _source = _u.File.Source;
        _defs = defs;
    }

    int LineOf(TextSpan span) => _source.GetPosition(span.Start).Line + 1;

    bool InStandardLibrary => StandardLibrary.IsStdPath(_source.Path);

    // ---- entry --------------------------------------------------------------------------------------------------

    public ClassSpec Translate()
    {
        // A standard-library class is named like the built-in it re-expresses (SepConv, GlobalFilter).
        var name = StandardLibrary.IsLibraryPath(_source.Path) ? Names.LibraryClass(_source.Path, _def.Name.Name) : Names.Pascal(_def.Name.Name);
        var options = _u.Params.Select(OptionOf).ToList();
        var root = new Scope(null);
        foreach (var p in _u.Params) root.Set(p.Name, ParamValue(p));

        var inputs = new List<InputSpec>();
        bool isAlias = _def.Alias is not null;
        string? aliasType = null;
        var sigInputs = _def.Signature?.Inputs ?? AliasInputs();
        for (int i = 0; i < sigInputs.Count; i++)
        {
            var input = sigInputs[i];
            var shapeDoc = i < _checked.Inputs.Count ? _checked.Inputs[i].ToString() : MixPrinter.Shape(input.Shape);
            inputs.Add(new InputSpec(Names.Escape(input.Name.Name), shapeDoc));
            _forwardLocals.Add(input.Name.Name);
            root.Set(input.Name.Name, new VCode(Names.Escape(input.Name.Name), GType.Tensor));
            for (int k = 0; k < input.Shape.Dims.Count; k++)
            {
                if (input.Shape.Dims[k] is NameExpr n && _u.FindParam(n.Name) is null && !_shapeSymbols.ContainsKey(n.Name))
                    _shapeSymbols[n.Name] = $"{Names.Escape(input.Name.Name)}.shape[{k}]";
            }
        }
        if (inputs.Count == 0) inputs.Add(new InputSpec("x", "tensor"));
        _deviceOf = inputs[0].Name;

        if (_def.Alias is Expr alias)
        {
            var v = Eval(alias, root);
            if (v is not VFactory { Callable: UserCallable target } f || !f.IsComplete)
                throw new UnsupportedException(alias.Span, "an alias must name a complete block or model");
            aliasType = ClassOf(target);
            _ctor.Add(new CodeLine(LineOf(alias.Span), $"model = {Inst(v, alias.Span)};"));
            _forward.Add(new CodeLine(LineOf(alias.Span), $"return model.call({string.Join(", ", inputs.Select(x => x.Name))});"));
        }
        else
        {
            TranslateBody(_def.Body ?? Array.Empty<Statement>(), root, inputs);
        }

        // Debug shape checks against the signature (MixShapes.Enabled), then the shape symbols read from the inputs.
        var prologue = new List<CodeLine>();
        if (_def.Signature is Signature sig)
        {
            foreach (var input in sig.Inputs)
            {
                var expected = input.Shape.Dims.Select(d => ExpectedDim(d, root));
                prologue.Add(new CodeLine(LineOf(input.Span),
                    $"if (MixShapes.Enabled) MixShapes.Check({Names.Escape(input.Name.Name)}, {Names.Literal(_def.Name.Name)}, " +
                    $"{Names.Literal(input.Name.Name)}, {Names.Literal(MixPrinter.Shape(input.Shape))}, {Names.Literal(_source.Path)}, " +
                    $"{LineOf(input.Span)}, {string.Join(", ", expected)});"));
            }
        }
        prologue.AddRange(_shapeSymbols.Where(kv => _usedShapeSymbols.Contains(kv.Key))
            .Select(kv => new CodeLine(0, $"var {Names.Escape(kv.Key)} = {kv.Value};")));

        var doc = new List<string> { "<c>" + Xml(MixPrinter.Signature(_def)) + "</c>" };
        var shapes = string.Join(", ", _checked.Inputs.Select(s => s.ToString()));
        if (_checked.Inputs.Count > 0 || _checked.Output is not null)
            doc.Add($"Shapes: ({Xml(shapes)}) → {Xml(_checked.Output?.ToString() ?? "?")}.");
        if (_def.Kind == DefinitionKind.Model && _checked.Root?.ParameterCount() is long count)
            doc.Add($"Parameters: {count.ToString("N0", CultureInfo.InvariantCulture)} (as built with the default options).");

        return new ClassSpec(
            name, _def.Name.Name, _def.Kind.ToString().ToLowerInvariant(), doc.ToEquatableArray(), inputs.ToEquatableArray(),
            options.ToEquatableArray(), _fields.ToEquatableArray(), _ctor.ToEquatableArray(),
            prologue.Concat(_forward).ToEquatableArray(), isAlias, aliasType, Xml(_checked.Output?.ToString() ?? "tensor"),
            KernelOf(_def))
        {
            Ties = _ties.ToEquatableArray(),
            States = _states.ToEquatableArray(),
            KeyValues = KeyValuesCondition(),
            Regions = _regions.ToEquatableArray(),
        };
    }

    /// <summary>A nullable number compared with <c>none</c>: its name and its value where it is not none.</summary>
    (string Name, V Value)? NoneTested(BinaryExpr test, Scope scope)
    {
        var name = (test.Left, test.Right) switch
        {
            (NameExpr n, NoneExpr) => n,
            (NoneExpr, NameExpr n) => n,
            _ => null,
        };
        if (name is null || !scope.TryGet(name.Name, out var v) || v is not VCode { Type.Nullable: true } code
            || code.Type.Kind is not ("int" or "float" or "bool")) return null;
        return (name.Name, new VCode($"{Paren(code.Code, code.Prec, 100)}.Value", code.Type with { Nullable = false }));
    }

    /// <summary>The kernel of <c>@kernel("name")</c> (the front end checked it), or null.</summary>
    static string? KernelOf(Definition d) =>
        d.Annotations.Where(a => a.Name.Name == "kernel" && a.Args.Count == 1).Select(a => a.Args[0].Value).OfType<StringExpr>()
            .Select(s => s.Value).FirstOrDefault();

    /// <summary>The C# class of a definition: its Pascal name, qualified for a standard-library definition.</summary>
    static string ClassOf(UserCallable u) =>
        StandardLibrary.IsLibraryPath(u.File.Source.Path)
            ? $"global::{Names.LibraryNamespace(u.File.Source.Path)}.{Names.LibraryClass(u.File.Source.Path, u.Name)}"
            : Names.Pascal(u.Name);

    IReadOnlyList<InputDecl> AliasInputs()
    {
        if (_def.Alias is CallExpr { Callee: NameExpr n } && _defs.TryGetValue(n.Name, out var target))
        {
            for (var t = target; t is not null;)
            {
                if (t.Definition.Signature is Signature s) return s.Inputs;
                t = t.Definition.Alias is CallExpr { Callee: NameExpr m } && _defs.TryGetValue(m.Name, out var next) ? next : null;
            }
        }
        return Array.Empty<InputDecl>();
    }

    OptionSpec OptionOf(ParamSpec p)
    {
        var type = GType.From(p.Type);
        string? def = null;
        if (p.DefaultExpr is Expr d)
        {
            if (ReferencesParameter(d))
                throw new UnsupportedException(d.Span, $"the default of '{p.Name}' uses another parameter; the generator needs defaults that stand alone");
            def = Val(Eval(d, new Scope(null)), type, d.Span);
        }
        else if (p.Type.IsOptional) def = "null";
        var decl = _def.Parameters.FirstOrDefault(x => x.Name.Name == p.Name);
        var doc = decl is null ? $"{p.Name}: {p.Type} (the mixer's channels)" : MixPrinter.Parameter(decl);
        return new OptionSpec(Names.Pascal(p.Name), p.Name, type.CSharp, def, def is null, Xml(doc));
    }

    bool ReferencesParameter(Expr e) => e switch
    {
        NameExpr n => _u.FindParam(n.Name) is not null,
        BinaryExpr b => ReferencesParameter(b.Left) || ReferencesParameter(b.Right),
        UnaryExpr u => ReferencesParameter(u.Operand),
        CallExpr c => c.Args.Any(a => ReferencesParameter(a.Value)),
        ArrayExpr a => a.Items.Any(ReferencesParameter),
        IfExpr i => ReferencesParameter(i.Condition) || ReferencesParameter(i.Then) || ReferencesParameter(i.Else),
        RepeatExpr r => ReferencesParameter(r.Count) || ReferencesParameter(r.Body),
        _ => false,
    };

    V ParamValue(ParamSpec p)
    {
        var t = GType.From(p.Type);
        var code = "options." + Names.Pascal(p.Name);
        if (t.IsFactoryKind) return new VFactory(null, t.Kind, new Dictionary<string, V>(), code);
        return new VCode(code, t);
    }

    // ---- bodies -------------------------------------------------------------------------------------------------

    void TranslateBody(IReadOnlyList<Statement> body, Scope scope, List<InputSpec> inputs)
    {
        bool returned = false;
        foreach (var st in body)
        {
            int line = LineOf(st.Span);
            switch (st)
            {
                case ReturnStatement r:
                {
                    var result = Code(Eval(r.Value, scope), r.Value.Span);
                    WriteStates(line);
                    _forward.Add(new CodeLine(line, $"return {result};"));
                    returned = true;
                    break;
                }
                case BindingStatement b when b.Targets.Count > 1:
                {
                    var v = Eval(b.Value, scope);
                    if (v is not VCode { Type.Kind: "tuple" } tuple) throw new UnsupportedException(b.Value.Span, "only split and chunk can be destructured");
                    var tmp = "parts" + (_temp++ == 0 ? "" : _temp.ToString(CultureInfo.InvariantCulture));
                    _forward.Add(new CodeLine(line, $"var {tmp} = {tuple.Code};"));
                    for (int i = 0; i < b.Targets.Count; i++)
                        AssignLocal(b.Targets[i].Name, $"{tmp}[{i}]", scope, line);
                    break;
                }
                case BindingStatement b:
                    TranslateBinding(b, scope, line);
                    break;
            }
            if (returned) break;
        }
        if (returned) return;

        // A pipeline: the declared layers run in order.
        var x = inputs[0].Name;
        foreach (var (field, layer, line) in _declared)
        {
            if (layer.IsSequence) _forward.Add(new CodeLine(line, $"foreach (var layer in {field}) {x} = layer.call({x});"));
            else _forward.Add(new CodeLine(line, $"{x} = {Apply(layer, new[] { x })};"));
        }
        WriteStates(0);
        _forward.Add(new CodeLine(0, $"return {x};"));
    }

    void AssignLocal(string name, string code, Scope scope, int line)
    {
        var id = Names.Escape(name);
        _forward.Add(new CodeLine(line, _forwardLocals.Add(name) ? $"var {id} = {code};" : $"{id} = {code};"));
        scope.Set(name, new VCode(id, GType.Tensor));
    }

    void TranslateBinding(BindingStatement b, Scope scope, int line)
    {
        var name = b.Targets[0].Name;
        var v = Eval(b.Value, scope);
        if (v is VWeight weight)
        {
            TranslateWeight(b, weight, scope, line);
            return;
        }
        // `bias = if has_bias then param(...) else none`: a weight that only some configurations have (no key otherwise).
        if (v is VCond { Then: VWeight or VCode { Type.Kind: "none" }, Else: VWeight or VCode { Type.Kind: "none" } } cond
            && (cond.Then is VWeight) != (cond.Else is VWeight))
        {
            var present = cond.Then is VWeight ? cond.Condition : "!(" + cond.Condition + ")";
            TranslateWeight(b, (VWeight)(cond.Then as VWeight ?? cond.Else), scope, line, present);
            return;
        }
        if (v is VState state)
        {
            TranslateState(b, state, scope, line);
            return;
        }
        if (v is VCode { Type.Kind: "tensor" } t)
        {
            AssignLocal(name, Materialize(t).Code, scope, line);
            return;
        }
        if (!IsLayerValue(v) && IsTensorList(v))
        {
            // A list of tensors (a comprehension, an array literal, split's parts) is computed once, here: substituted where
            // used, every `bands[j]` ran the whole list again (WaveMix's level-3 blocks: 108 Haar transforms instead of 3).
            var code = Code(v, b.Value.Span, out var listType, out _);
            var id = Names.Escape(name);
            _forward.Add(new CodeLine(line, _forwardLocals.Add(name) ? $"var {id} = {code};" : $"{id} = {code};"));
            scope.Set(name, new VCode(id, listType));
            return;
        }
        if (!IsLayerValue(v))
        {
            // Configuration (numbers, factories not yet complete): substituted where used.
            scope.Set(name, v);
            return;
        }

        string key = name;
        bool allowFused = true;
        foreach (var a in b.Annotations)
        {
            if (a.Name.Name == "key" && a.Args.Count == 1 && a.Args[0].Value is StringExpr s) key = s.Value;
            if (a.Name.Name == "fused" && a.Args.Count == 1 && a.Args[0].Value is BoolExpr fb) allowFused = fb.Value;
        }
        if (key.Split('.').Any(s => s.Length == 0))
            throw new UnsupportedException(b.Span, $"@key(\"{key}\") has an empty segment");
        // @tied: the front end checked that both keys exist with one shape; the layer shares the other's Parameter.
        foreach (var a in b.Annotations.Where(a => a.Name.Name == "tied"))
            foreach (var arg in a.Args)
                if (arg.Name is string own && arg.Value is StringExpr target)
                    _ties.Add(new CodeLine(LineOf(a.Span), $"MixWeights.Tie(this, {Names.Literal(key + "." + own)}, {Names.Literal(target.Value)});"));

        var field = Names.Escape(name == "options" || name == "model" ? name + "_" : name);
        if (!_fieldNames.Add(field)) field += "_" + _fieldNames.Count.ToString(CultureInfo.InvariantCulture);
        bool isSeq = v is VFor or VRepeat or VArray;
        string type;
        string init;
        if (isSeq)
        {
            type = $"ModuleList<{ModuleType}>";
            init = v is VArray arr
                ? $"new ModuleList<{ModuleType}>({string.Join(", ", arr.Items.Select(i => Inst(i, b.Value.Span)))})"
                : $"new ModuleList<{ModuleType}>({SeqItems(v, b.Value.Span)}.ToArray())";
        }
        else
        {
            type = v switch
            {
                VFactory { Callable: UserCallable uc } when _externals.TryGetValue(uc.Name, out var ext) => ext,
                // Standard-library classes are internal to the consuming assembly: a public field stays a module (of
                // the block's arity: a library block may take two tensors, as gated_rmsnorm(x, z) does).
                VFactory { Callable: UserCallable uc } when StandardLibrary.IsLibraryPath(uc.File.Source.Path) =>
                    ModuleOfArity(uc.Definition.Signature?.Inputs.Count ?? 1),
                VFactory { Callable: UserCallable uc } => Names.Pascal(uc.Name),
                // Typed where the built-in always builds one module type, except in the standard library's files: their
                // classes are internal, and the quantizer must be able to swap their linear layers (a field typed
                // Linear cannot hold a QuantizedLinear).
                VFactory { Callable: BuiltinCallable bc } f when f.IsComplete && !f.IsFunction && !InStandardLibrary
                    && BuiltinModuleTypes.Of(bc.Name) is { } builtinType => builtinType,
                VInline => "MixPipeline",
                _ => ModuleType,
            };
            init = Inst(v, b.Value.Span);
        }
        // A dotted key is registered as nested modules after RegisterComponents (TorchSharp refuses dots in a
        // name), so the field is assigned there and the constructor holds the layer in a local until then.
        string? local = key.Contains('.') ? "keyed_" + field.TrimStart('@') : null;
        _ctor.Add(new CodeLine(line, local is null ? $"{field} = {init};" : $"var {local} = {init};"));
        var node = _checked.Root?.Children.FirstOrDefault(c => c.Name == key);
        var doc = "<c>" + Xml(MixPrinter.Statement(b)) + "</c>";
        if (node?.OutputShape is Shape shape) doc += " → <c>" + Xml(shape.ToString()) + "</c>";
        _fields.Add(new FieldSpec(field, key, type, doc, local));
        var layer = new VLayer(field, LayerKind(v), isSeq, allowFused, local);
        _declared.Add((field, layer, line));
        scope.Set(name, layer);
    }

    /// <summary>Whether a bound value is a list of tensors (or split's parts), which the forward computes once.</summary>
    static bool IsTensorList(V v) => v switch
    {
        VCode c => c.Type.Kind == "tuple" || c.Type is { IsArray: true, Element.Kind: "tensor" },
        VFor f => IsTensorValue(f.Body),
        VRepeat r => IsTensorValue(r.Body),
        VArray a => a.Items.Count > 0 && a.Items.All(IsTensorValue),
        _ => false,
    };

    static bool IsTensorValue(V v) => v is VCode { Type.Kind: "tensor" };

    static string LayerKind(V v) => v switch
    {
        VFactory f => f.Kind,
        VCond c => LayerKind(c.Then) == LayerKind(c.Else) ? LayerKind(c.Then) : "block",
        _ => "block",
    };

    static bool IsLayerValue(V v) => v switch
    {
        VFactory f => f.IsFunction ? f.IsPartialFunction : f.IsComplete,
        VCond c => IsLayerValue(c.Then) && IsLayerValue(c.Else),
        VInline => true,
        VFor f => IsLayerValue(f.Body),
        VRepeat r => IsLayerValue(r.Body),
        VArray a => a.Items.Count > 0 && a.Items.All(IsLayerValue),
        _ => false,
    };

    // ---- expressions --------------------------------------------------------------------------------------------

    V Eval(Expr e, Scope scope)
    {
        switch (e)
        {
            case NumberExpr n:
                return n.IntValue is long l
                    ? new VCode(l.ToString(CultureInfo.InvariantCulture), GType.Int, l < 0 ? 90 : 100)
                    : new VCode(FloatLiteral(n), GType.Float);
            case StringExpr s: return new VCode(Names.Literal(s.Value), GType.String);
            case BoolExpr b: return new VCode(b.Value ? "true" : "false", GType.Bool);
            case NoneExpr: return new VCode("null", GType.None);
            case NameExpr n: return EvalName(n, scope);
            case UnaryExpr u:
            {
                var operand = Eval(u.Operand, scope);
                if (u.Op == "-" && IsTensor(operand)
                    && FusibleOp("unary", "neg", new[] { operand }, a => "-" + Paren(a[0].Code, a[0].Prec, 90), 90) is VCode neg) return neg;
                var v = Code(operand, u.Span, out var type, out var prec);
                if (u.Op == "not" && type.Kind == "tensor") return new VCode($"Fn.Not({v})", GType.Tensor);
                if (u.Op == "not") return new VCode("!" + Paren(v, prec, 90), GType.Bool, 90);
                return new VCode("-" + Paren(v, prec, 90), type, 90);
            }
            case BinaryExpr { Op: "|>" } pipe:
            {
                var input = Eval(pipe.Left, scope);
                if (pipe.Right is CallExpr call) return EvalCall(call, scope, input);
                var fn = Eval(pipe.Right, scope);
                return ApplyValue(fn, new List<V> { input }, pipe.Span);
            }
            case BinaryExpr b: return EvalBinary(b, scope);
            case CallExpr c: return EvalCall(c, scope, null);
            case IndexExpr ix: return EvalIndex(ix, scope);
            case MemberExpr m: return EvalMember(m, scope);
            case SliceExpr sl:
            {
                var target = Code(Eval(sl.Target, scope), sl.Target.Span, out var type, out _);
                return new VCode($"{target}[{RangeEnd(sl.Start, scope)}..{RangeEnd(sl.End, scope)}]", type);
            }
            case ArrayExpr a:
                return new VArray(a.Items.Select(i => Eval(i, scope)).ToList());
            case IfExpr ife:
            {
                var c = Code(Eval(ife.Condition, scope), ife.Condition.Span, out _, out var cp);
                // `if n == none then a else b`: in the branch where n is not none it is its value, not a nullable.
                var (thenScope, elseScope) = (scope, scope);
                if (ife.Condition is BinaryExpr { Op: "==" or "!=" } test && NoneTested(test, scope) is var (name, value))
                {
                    var narrowed = new Scope(scope);
                    narrowed.Set(name, value);
                    if (test.Op == "==") elseScope = narrowed; else thenScope = narrowed;
                }
                _guards.Add(Paren(c, cp, 90));
                var then = Eval(ife.Then, thenScope);
                _guards[_guards.Count - 1] = "!" + Paren(c, cp, 100);
                var @else = Eval(ife.Else, elseScope);
                _guards.RemoveAt(_guards.Count - 1);
                if (then is VCode tc && @else is VCode ec)
                {
                    var type = Join(tc.Type, ec.Type);
                    // A tensor chosen by the condition: the ops around it may plan each branch (MaterializeFx).
                    if (type is { Kind: "tensor", Nullable: false }
                        && FusibleCond(Paren(c, cp, 0), tc, ec, $"{Paren(c, cp, 0)} ? {Paren(tc.Code, tc.Prec, 0)} : {Paren(ec.Code, ec.Prec, -1)}", -1,
                            a => $"{Paren(c, cp, 0)} ? {Paren(a[0].Code, a[0].Prec, 0)} : {Paren(a[1].Code, a[1].Prec, -1)}") is VCode fusedCond)
                        return fusedCond;
                    // Each branch's fused regions run only where that branch is taken.
                    var (tcode, tprec) = Materialize(tc);
                    var (ecode, eprec) = Materialize(ec);
                    return new VCode($"{Paren(c, cp, 0)} ? {Paren(tcode, tprec, 0)} : {Paren(ecode, eprec, -1)}", type, -1);
                }
                return new VCond(Paren(c, cp, 0), then, @else);
            }
            case ForExpr fe:
            {
                var start = Code(Eval(fe.Start, scope), fe.Start.Span, out _, out _);
                var end = Code(Eval(fe.End, scope), fe.End.Span, out _, out _);
                var inner = new Scope(scope);
                var variable = Names.Escape(fe.Variable);
                inner.Set(fe.Variable, new VCode(variable, GType.Int));
                return new VFor(variable, start, end, Eval(fe.Body, inner));
            }
            case RepeatExpr r:
                return new VRepeat(Code(Eval(r.Count, scope), r.Count.Span, out _, out _), Eval(r.Body, scope));
            case InlineBlockExpr ib:
            {
                var inner = new Scope(scope);
                var layers = new List<(string, V)>();
                foreach (var st in ib.Statements)
                {
                    if (st is not BindingStatement { Targets.Count: 1 } b)
                        throw new UnsupportedException(st.Span, "inline blocks with return are not supported by the generator yet; use a named block");
                    var v = Eval(b.Value, inner);
                    if (!IsLayerValue(v))
                        throw new UnsupportedException(st.Span, "inline blocks may only declare layers (the generator runs them in order)");
                    var key = b.Targets[0].Name;
                    foreach (var a in b.Annotations)
                    {
                        if (a.Name.Name == "key" && a.Args.Count == 1 && a.Args[0].Value is StringExpr s) key = s.Value;
                        if (a.Name.Name == "tied")
                            throw new UnsupportedException(a.Span, "@tied inside an inline block is not supported by the generator yet; tie a layer of the definition itself");
                    }
                    layers.Add((key, v));
                    inner.Set(b.Targets[0].Name, v);
                }
                return new VInline(layers);
            }
        }
        throw new UnsupportedException(e.Span, "this expression is not supported by the generator yet");
    }

    static string FloatLiteral(NumberExpr n)
    {
        if (Regex.IsMatch(n.Text, @"^\d+\.\d+([eE][+-]?\d+)?$") || Regex.IsMatch(n.Text, @"^\d+[eE][+-]?\d+$")) return n.Text;
        var s = n.Value.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s : s + ".0";
    }

    V EvalName(NameExpr n, Scope scope)
    {
        if (scope.TryGet(n.Name, out var v)) return v;
        if (_defs.TryGetValue(n.Name, out var u)) return new VFactory(u, KindOf(u), new Dictionary<string, V>());
        if (BuiltinCatalog.Find(n.Name) is BuiltinCallable b) return new VFactory(b, KindOf(b), new Dictionary<string, V>());
        if (_shapeSymbols.ContainsKey(n.Name))
        {
            if (_noShapeSymbols)
                throw new UnsupportedException(n.Span, $"a state's sizes after the batch axis come from the mixer's parameters; '{n.Name}' is a size of the input");
            _usedShapeSymbols.Add(n.Name);
            return new VCode(Names.Escape(n.Name), GType.Int);
        }
        if (_enumMembers.Contains(n.Name)) return new VCode("\"" + n.Name + "\"", GType.String);
        throw new UnsupportedException(n.Span, $"'{n.Name}' cannot be resolved by the generator");
    }

    /// <summary>A signature dimension as a C# size to check, or <c>null</c> where it involves a free shape symbol.</summary>
    string ExpectedDim(Expr dim, Scope scope)
    {
        if (MentionsShapeSymbol(dim)) return "null";
        try
        {
            return "(long?)(" + Code(Eval(dim, scope), dim.Span) + ")";
        }
        catch (UnsupportedException)
        {
            return "null";
        }
    }

    bool MentionsShapeSymbol(Expr e) => e switch
    {
        NameExpr n => _u.FindParam(n.Name) is null && n.Name.Length > 0 && char.IsUpper(n.Name[0]),
        BinaryExpr b => MentionsShapeSymbol(b.Left) || MentionsShapeSymbol(b.Right),
        UnaryExpr u => MentionsShapeSymbol(u.Operand),
        IndexExpr ix => MentionsShapeSymbol(ix.Target) || MentionsShapeSymbol(ix.Index),
        CallExpr c => MentionsShapeSymbol(c.Callee) || c.Args.Any(a => MentionsShapeSymbol(a.Value)),
        _ => false,
    };

    static string KindOf(Callable c) => c.Kind switch
    {
        CallableKind.Mixer => "mixer",
        CallableKind.Norm => "norm",
        CallableKind.Act => "act",
        CallableKind.Layer => "layer",
        CallableKind.Function => "function",
        _ => "block",
    };

    static readonly Dictionary<string, int> s_prec = new()
    {
        ["or"] = 0, ["and"] = 1, ["=="] = 2, ["!="] = 2, ["<"] = 3, ["<="] = 3, [">"] = 3, [">="] = 3,
        ["+"] = 4, ["-"] = 4, ["*"] = 5, ["/"] = 5, ["%"] = 5, ["//"] = 5,
    };

    V EvalBinary(BinaryExpr b, Scope scope)
    {
        if (TryResidual(b, scope) is VCode residual) return residual;
        var lv = Eval(b.Left, scope);
        var rv = Eval(b.Right, scope);
        if (FusibleBinary(b.Op, lv, rv) is VCode fused) return fused;
        if (FactoryNoneTest(b.Op, lv, rv) is VCode test) return test;
        var l = Code(lv, b.Left.Span, out var lt, out var lp);
        var r = Code(rv, b.Right.Span, out var rt, out var rp);
        if (!s_prec.TryGetValue(b.Op, out var prec)) throw new UnsupportedException(b.OpSpan, $"operator '{b.Op}' is not supported by the generator");
        if ((lt.Kind == "tensor" || rt.Kind == "tensor") && b.Op is "and" or "or")
            return new VCode($"Fn.{(b.Op == "and" ? "And" : "Or")}({l}, {r})", GType.Tensor);
        if ((lt.Kind == "tensor" || rt.Kind == "tensor") && s_comparisons.TryGetValue(b.Op, out var compare))
        {
            string Num(string code, GType t, int p) => t.Kind == "int" ? "(double)" + Paren(code, p, 100) : code;
            return new VCode($"Fn.{compare}({Num(l, lt, lp)}, {Num(r, rt, rp)})", GType.Tensor);
        }
        var op = b.Op switch { "and" => "&&", "or" => "||", _ => b.Op };
        GType type = prec <= 3 ? GType.Bool
            : lt.Kind == "tensor" || rt.Kind == "tensor" ? GType.Tensor
            : lt.Kind == "float" || rt.Kind == "float" ? GType.Float : GType.Int;
        if (b.Op == "//")
            return type.Kind == "int" ? new VCode($"Fn.FloorDiv({l}, {r})", type) : new VCode($"Math.Floor({l} / {r})", type);
        if (b.Op == "%" && type.Kind == "int") return new VCode($"Fn.Mod({l}, {r})", type);
        if (rt.Kind == "none" || lt.Kind == "none") type = GType.Bool;
        var code = $"{Paren(l, lp, prec)} {op} {Paren(r, rp, prec + 1)}";
        if (b.Op == "/" && type.Kind == "int")
            return new VCode(code, type, prec) { ExactQuotient = $"(double){Paren(l, lp, 100)} / {Paren(r, rp, prec + 1)}" };
        return new VCode(code, type, prec);
    }

    /// <summary><c>channel_mixer == none</c> for an optional factory parameter (<c>mixer?</c>): its delegate is null. A
    /// factory the generator knows (a configured callable) is never none.</summary>
    static VCode? FactoryNoneTest(string op, V lv, V rv)
    {
        if (op is not ("==" or "!=")) return null;
        var factory = lv as VFactory ?? rv as VFactory;
        var other = lv is VFactory ? rv : lv;
        if (factory is null || other is not VCode { Type.Kind: "none" }) return null;
        if (factory.Callable is null && (factory.OpaqueArgs?.Count ?? 0) == 0)
            return new VCode($"{factory.OpaqueCode} {op} null", GType.Bool, 2);
        return new VCode(op == "!=" ? "true" : "false", GType.Bool);
    }

    static string Paren(string code, int prec, int needed) => prec < needed ? "(" + code + ")" : code;

    static GType Join(GType a, GType b)
    {
        if (a.Kind == "none") return b with { Nullable = true };
        if (b.Kind == "none") return a with { Nullable = true };
        if (a.Kind == "float" || b.Kind == "float") return GType.Float with { Nullable = a.Nullable || b.Nullable };
        return a;
    }

    string RangeEnd(Expr? e, Scope scope)
    {
        if (e is null) return "";
        if (e is UnaryExpr { Op: "-", Operand: NumberExpr { IntValue: long n } }) return "^" + n.ToString(CultureInfo.InvariantCulture);
        if (e is NumberExpr { IntValue: long k }) return k.ToString(CultureInfo.InvariantCulture);
        var code = Code(Eval(e, scope), e.Span, out _, out var prec);
        return "(int)" + Paren(code, prec, 100);
    }

    V EvalIndex(IndexExpr ix, Scope scope)
    {
        var target = Eval(ix.Target, scope);
        if (target is VArray arr && ix.Index is NumberExpr { IntValue: long k } && k >= 0 && k < arr.Items.Count) return arr.Items[(int)k];
        if (target is VArray arr2 && ix.Index is UnaryExpr { Op: "-", Operand: NumberExpr { IntValue: long m } } && m > 0 && m <= arr2.Items.Count)
            return arr2.Items[arr2.Items.Count - (int)m];
        if (target is VLayer { IsSequence: true } seq)
        {
            var index = IndexCode(ix.Index, scope);
            return new VLayer($"{seq.Field}[{index}]", "block", false, seq.AllowFused, seq.CtorCode is null ? null : $"{seq.CtorCode}[{index}]");
        }
        var code = Code(target, ix.Target.Span, out var type, out var prec);
        var item = $"{Paren(code, prec, 100)}[{IndexCode(ix.Index, scope)}]";
        var el = type.Element ?? GType.Any;
        if (el.IsFactoryKind) return new VFactory(null, el.Kind, new Dictionary<string, V>(), item);
        return new VCode(item, el);
    }

    string IndexCode(Expr index, Scope scope)
    {
        if (index is NumberExpr { IntValue: long k }) return k.ToString(CultureInfo.InvariantCulture);
        if (index is UnaryExpr { Op: "-", Operand: NumberExpr { IntValue: long m } }) return "^" + m.ToString(CultureInfo.InvariantCulture);
        var code = Code(Eval(index, scope), index.Span, out _, out var prec);
        return "(int)" + Paren(code, prec, 100);
    }

    // ---- calls --------------------------------------------------------------------------------------------------

    sealed record Arg(string? Name, V Value, TextSpan Span);

    V EvalCall(CallExpr call, Scope scope, V? pipeInput)
    {
        if (TryMathCall(call, scope, pipeInput) is V math) return math;
        var args = new List<Arg>();
        if (pipeInput is not null) args.Add(new Arg(null, pipeInput, call.Span));
        foreach (var a in call.Args) args.Add(new Arg(a.Name, Eval(a.Value, scope), a.Value.Span));
        bool byName = call.Callee is NameExpr ne && !scope.TryGet(ne.Name, out _) && (_defs.ContainsKey(ne.Name) || BuiltinCatalog.Find(ne.Name) is not null);
        var callee = Eval(call.Callee, scope);
        int nTensors = 0;
        while (nTensors < args.Count && args[nTensors].Name is null && (IsTensor(args[nTensors].Value) || (nTensors == 0 && pipeInput is not null))) nTensors++;
        var tensors = args.Take(nTensors).Select(a => a.Value).ToList();
        var rest = args.Skip(nTensors).ToList();

        switch (callee)
        {
            case VFactory f when f.IsFunction:
            {
                var fn = (BuiltinCallable)f.Callable!;
                var bound = Bind(f, rest, true, true, call.Span);
                if (tensors.Count == 0 && TensorParamCount(fn) > 0) return bound;
                return CallFunction(fn, bound, tensors, call.Span);
            }
            case VFactory f:
            {
                var bound = Bind(f, rest, byName, false, call.Span);
                return tensors.Count == 0 ? bound : ApplyValue(bound, tensors, call.Span);
            }
            default:
                if (rest.Count > 0) throw new UnsupportedException(call.Span, "this call is not supported by the generator");
                return ApplyValue(callee, tensors, call.Span);
        }
    }

    static int TensorParamCount(BuiltinCallable fn) => fn.Params.Count(IsTensorInput);

    /// <summary>A required tensor parameter of a function: an input passed positionally. Optional tensors (<c>D = D</c>) are named.</summary>
    static bool IsTensorInput(ParamSpec p) => p.Type.Kind == TypeKind.Tensor && !p.Type.IsArray && !p.Type.IsOptional;

    static bool IsTensor(V v) => v is VCode { Type.Kind: "tensor" };

    VFactory Bind(VFactory f, List<Arg> args, bool byName, bool skipTensorParams, TextSpan span)
    {
        if (f.Callable is null)
        {
            if (args.Any(a => a.Name is not null)) throw new UnsupportedException(span, "named arguments to a factory parameter are not supported by the generator");
            return f with { OpaqueArgs = (f.OpaqueArgs ?? new List<V>()).Concat(args.Select(a => a.Value)).ToList() };
        }
        var c = f.Callable;
        var result = new Dictionary<string, V>(f.Args);
        var positional = (byName ? c.ExplicitParams : c.Params)
            .Where(p => !f.Args.ContainsKey(p.Name))
            .Where(p => !(skipTensorParams && p.Type.Kind == TypeKind.Tensor && !p.Type.IsArray))
            .ToList();
        int next = 0;
        foreach (var a in args)
        {
            var p = a.Name is null ? (next < positional.Count ? positional[next++] : null) : c.FindParam(a.Name);
            if (p is null) throw new UnsupportedException(a.Span, "argument does not bind (the checker should have reported this)");
            result[p.Name] = a.Value;
        }
        return f with { Args = result };
    }

    V CallFunction(BuiltinCallable fn, VFactory bound, List<V> tensors, TextSpan span)
    {
        if (fn.BindsAll) return ApplyMath(fn, bound, tensors, span);
        if (fn.Name == "causal_attention") return CausalAttention(bound, tensors, span);
        string A(string name) => Code(bound.Args[name], span, out _, out _);
        switch (fn.Name)
        {
            case "len": return new VCode($"Fn.Len({A("array")})", GType.Int);
            case "sum":
            {
                Code(bound.Args["array"], span, out var t, out _);
                return new VCode($"Fn.Sum({A("array")})", t.Element?.Kind == "float" ? GType.Float : GType.Int);
            }
            case "max":
            case "min":
            {
                Code(bound.Args["a"], span, out var ta, out _);
                Code(bound.Args["b"], span, out var tb, out _);
                return new VCode($"Fn.{Names.Pascal(fn.Name)}({A("a")}, {A("b")})", Join(ta, tb));
            }
            case "int":
            case "ceil":
            {
                // ceil(dim / 16) rounds the exact quotient up, as the checker does (C#'s long division would floor it).
                if (fn.Name == "ceil" && bound.Args["value"] is VCode { ExactQuotient: string exact })
                    return new VCode($"Fn.Ceil({exact})", GType.Int);
                var v = Code(bound.Args["value"], span, out var t, out var prec);
                return t.Kind == "int" ? new VCode(v, GType.Int, prec) : new VCode($"Fn.{Names.Pascal(fn.Name)}({v})", GType.Int);
            }
        }
        if (fn.Name is "mean" or "softmax" or "sqrt" && tensors.Count == 1)
        {
            var placeholder = new List<V> { new VCode("\u0001", GType.Tensor) };
            if (FusibleMath(fn, new Dictionary<string, V>(bound.Args) { ["x"] = tensors[0] }, _ => GeneralCall(fn, bound, placeholder, span).Code)
                is VCode fusedFn) return fusedFn;
        }
        return GeneralCall(fn, bound, tensors, span);
    }

    VCode GeneralCall(BuiltinCallable fn, VFactory bound, List<V> tensors, TextSpan span)
    {
        var parts = new List<string>();
        int ti = 0;
        bool gap = false;
        // causal_conv1d(..., state = s), selective_scan(..., initial_state = s): the form that returns (y, final_state).
        bool withState = fn.TupleWhenGiven is string stateParam && bound.Args.TryGetValue(stateParam, out var sv) && sv is not VCode { Type.Kind: "none" };
        foreach (var p in fn.Params)
        {
            if (IsTensorInput(p))
            {
                parts.Add(Code(tensors[ti++], span, out _, out _));
                continue;
            }
            if (bound.Args.TryGetValue(p.Name, out var v))
                parts.Add((gap || p.Name == fn.TupleWhenGiven ? Names.Camel(p.Name) + ": " : "") + Val(v, GType.From(p.Type), span));
            else gap = true;
        }
        if (fn.Name == "drop_path")
        {
            if (!bound.Args.ContainsKey("p")) parts.Add("0.0");
            parts.Add("training");
        }
        // Attention dropout acts only while the calling module trains.
        if (fn.Name == "scaled_dot_product_attention") parts.Add("training: training");
        var type = fn.ReturnsTuple || withState ? GType.Tuple : GType.Tensor;
        var call = new VCode($"Fn.{Names.Builtin(fn.Name)}{(withState ? "WithState" : "")}({string.Join(", ", parts)})", type);
        if (fn.Name == "drop_path" && tensors.Count == 1 && bound.Args.TryGetValue("p", out var rate)
            && IdentityUnlessTraining(call, tensors[0], Val(rate, GType.Float, span)) is VCode dropPath) return dropPath;
        return call;
    }

    /// <summary>Applies a layer, a sequence, a partial function or a weightless built-in to tensors.</summary>
    V ApplyValue(V callee, List<V> tensors, TextSpan span)
    {
        if (callee is VFactory { Callable: BuiltinCallable { Kind: CallableKind.Act } act, Args.Count: 0 } && tensors.Count == 1
            && s_fusibleActs.Contains(act.Name)
            && FusibleCall("unary", act.Name, tensors[0], $"Fn.{Names.Builtin(act.Name)}(\u0001)") is VCode fusedAct) return fusedAct;
        if (callee is VLayer { Kind: "act", IsSequence: false, AllowFused: true } actLayer && tensors.Count == 1
            && FusibleActLayer(actLayer, tensors[0]) is VCode fusedLayer) return fusedLayer;
        var inputs = tensors.Select(t => Code(t, span, out _, out _)).ToList();
        switch (callee)
        {
            case VLayer layer:
                return new VCode(Apply(layer, inputs), GType.Tensor);
            case VFactory f when f.IsFunction:
                return CallFunction((BuiltinCallable)f.Callable!, f, tensors, span);
            case VFactory { Callable: BuiltinCallable b } f when b.Kind is CallableKind.Act or CallableKind.Layer or CallableKind.Norm or CallableKind.Mixer:
            {
                var args = ArgList(b, f.Args, span);
                if (b.Name == "dropout") args = args.Concat(new[] { "training" }).ToList();
                var weightlessName = b.Name == "identity" ? "Identity" : Names.Builtin(b.Name);
                var call = new VCode($"Fn.{weightlessName}({string.Join(", ", inputs.Concat(args))})", GType.Tensor);
                if (b.Name == "dropout" && tensors.Count == 1 && f.Args.TryGetValue("p", out var p)
                    && IdentityUnlessTraining(call, tensors[0], Val(p, GType.Float, span)) is VCode dropout) return dropout;
                return call;
            }
            case VFactory { Callable: null, Kind: "act" } f:
                return new VCode($"{f.OpaqueCode}().call({string.Join(", ", inputs)})", GType.Tensor);
        }
        throw new UnsupportedException(span, "this application is not supported by the generator");
    }

    static string Apply(VLayer layer, IReadOnlyList<string> inputs)
    {
        var args = string.Join(", ", inputs);
        if (layer.IsSequence) return $"MixDispatch.Sequence({layer.Field}, {args})";
        if (layer.Kind == "mixer") return layer.AllowFused ? $"MixDispatch.TokenMixer({layer.Field}, {args})" : $"MixDispatch.TokenMixer({layer.Field}, {args}, allowFused: false)";
        return $"{layer.Field}.call({args})";
    }

    // ---- rendering ----------------------------------------------------------------------------------------------

    /// <summary>C# code of a value that must be a plain value (number, array of numbers, tensor).</summary>
    string Code(V v, TextSpan span, out GType type, out int prec)
    {
        switch (v)
        {
            case VCode c:
                type = c.Type;
                (var code, prec) = Materialize(c);
                return code;
            case VArray or VRepeat or VFor:
                type = NaturalType(v, span);
                prec = 100;
                return Val(v, type, span);
            case VLayer { IsSequence: true } l:
                type = GType.Any;
                prec = 100;
                return l.Field;
        }
        throw new UnsupportedException(span, "a value is needed here (the generator found a layer or factory)");
    }

    string Code(V v, TextSpan span) => Code(v, span, out _, out _);

    GType NaturalType(V v, TextSpan span)
    {
        switch (v)
        {
            case VCode c: return c.Type;
            case VFactory f: return new GType(f.Kind is "layer" or "function" ? "block" : f.Kind);
            case VCond c: return NaturalType(c.Then, span);
            case VArray a:
            {
                GType? el = null;
                foreach (var item in a.Items)
                {
                    var t = NaturalType(item, span);
                    el = el is null ? t : Join(el, t);
                }
                if (el is null || el.Kind == "none") el = GType.Float with { Nullable = true };
                return new GType("array", el);
            }
            case VRepeat r: return new GType("array", NaturalType(r.Body, span));
            case VFor f: return new GType("array", NaturalType(f.Body, span));
        }
        throw new UnsupportedException(span, "this value has no C# type the generator knows");
    }

    /// <summary>C# code of a value in a slot of a given type: numbers as they are, factories as delegates.</summary>
    string Val(V v, GType expected, TextSpan span)
    {
        switch (v)
        {
            case VCode c:
                return c.Code;
            case VFactory f when f.Callable is null:
                if ((f.OpaqueArgs?.Count ?? 0) > 0) throw new UnsupportedException(span, "a layer is used where a factory value is expected");
                return f.OpaqueCode!;
            case VFactory f:
            {
                var kind = expected.IsFactoryKind ? expected.Kind : f.Kind;
                if (kind == "act") return "() => " + Inst(f, span);
                var withDim = f;
                var dimParam = f.Callable!.Params.FirstOrDefault(p => p.Name == "dim" && !f.Args.ContainsKey("dim"));
                if (dimParam is not null)
                    withDim = f with { Args = new Dictionary<string, V>(f.Args) { ["dim"] = new VCode("dim", GType.Int) } };
                return "dim => " + Inst(withDim, span);
            }
            case VCond c:
                return $"{c.Condition} ? ({expected.CSharp})({Val(c.Then, expected, span)}) : {Val(c.Else, expected, span)}";
            case VArray a:
            {
                var el = expected.IsArray ? expected.Element! : NaturalType(a, span).Element!;
                return $"new {el.CSharp}[] {{ {string.Join(", ", a.Items.Select(i => Val(i, el, span)))} }}";
            }
            case VRepeat r:
            {
                var el = expected.IsArray ? expected.Element! : NaturalType(r.Body, span);
                var body = Val(r.Body, el, span);
                return $"Fn.Repeat<{el.CSharp}>({r.Count}, {body})";
            }
            case VFor f:
            {
                var el = expected.IsArray ? expected.Element! : NaturalType(f.Body, span);
                return $"Fn.Range({f.Start}, {f.End}).Select({f.Variable} => ({el.CSharp})({Val(f.Body, el, span)})).ToArray()";
            }
        }
        throw new UnsupportedException(span, "this value cannot be passed as a parameter by the generator");
    }

    /// <summary>Arguments of a built-in call: positional while the parameters are bound in order, then named.</summary>
    List<string> ArgList(Callable c, IReadOnlyDictionary<string, V> args, TextSpan span)
    {
        // Required parameters positional, optional ones by name (as the .mix call reads: kernel_size = 7).
        var parts = new List<string>();
        foreach (var p in c.Params)
        {
            if (args.TryGetValue(p.Name, out var v))
                parts.Add((p.Required ? "" : Names.Camel(p.Name) + ": ") + Val(v, GType.From(p.Type), span));
        }
        return parts;
    }

    /// <summary>C# code that creates the module for a complete layer value.</summary>
    string Inst(V v, TextSpan span)
    {
        switch (v)
        {
            case VFactory f when f.Callable is null:
                return $"{f.OpaqueCode}({string.Join(", ", (f.OpaqueArgs ?? new List<V>()).Select(a => Val(a, GType.Int, span)))})";
            case VFactory f when f.IsFunction:
            {
                var saved = _fusing;
                _fusing = false;
                var call = CallFunction((BuiltinCallable)f.Callable!, f, new List<V> { new VCode("t", GType.Tensor) }, span);
                _fusing = saved;
                return $"Builtin.Function({Names.Literal(f.Callable!.Name)}, t => {Code(call, span)})";
            }
            case VFactory { Callable: BuiltinCallable b } f:
                if (!f.IsComplete) throw new UnsupportedException(span, $"{b.Name} is missing arguments");
                return $"Builtin.{Names.Builtin(b.Name)}({string.Join(", ", ArgList(b, f.Args, span))})";
            case VFactory { Callable: UserCallable u } f when _externals.TryGetValue(u.Name, out var external):
            {
                // A C# mixer: new T(dim, name: value, ...) with the .mix parameters in camelCase.
                var args = new List<string>();
                if (f.Args.TryGetValue("dim", out var dim)) args.Add(Val(dim, GType.Int, span));
                foreach (var p in u.Params)
                    if (p.Name != "dim" && f.Args.TryGetValue(p.Name, out var a)) args.Add($"{Names.Camel(p.Name)}: {Val(a, GType.From(p.Type), span)}");
                return $"new {external}({string.Join(", ", args)})";
            }
            case VFactory { Callable: UserCallable u } f:
            {
                var cls = ClassOf(u);
                var required = new List<string>();
                var optional = new List<string>();
                foreach (var p in u.Params)
                {
                    if (!f.Args.TryGetValue(p.Name, out var a)) continue;
                    var code = Val(a, GType.From(p.Type), span);
                    bool isRequired = p.DefaultExpr is null && !p.Type.IsOptional;
                    if (isRequired) required.Add(code);
                    else optional.Add($"{Names.Pascal(p.Name)} = {code}");
                }
                var opts = required.Count > 0 || optional.Count == 0 ? $"new {cls}.Options({string.Join(", ", required)})" : $"new {cls}.Options";
                if (optional.Count > 2) opts += "\n{\n" + string.Join(",\n", optional.Select(Indent)) + ",\n}";
                else if (optional.Count > 0) opts += " { " + string.Join(", ", optional) + " }";
                return $"new {cls}({opts})";
            }
            case VCond c:
            {
                // A condition in the then-branch is parenthesized: the cast would otherwise bind to its condition.
                var then = Inst(c.Then, span);
                return $"{c.Condition} ? ({ModuleType}){(c.Then is VCond ? "(" + then + ")" : then)} : {Inst(c.Else, span)}";
            }
            case VInline inline:
                return "new MixPipeline(\n" + string.Join(",\n", inline.Layers.Select(l =>
                    Indent($"({Names.Literal(l.Key)}, {Inst(l.Layer, span)})"))) + ")";
            case VFor or VRepeat:
                return $"new MixSequence({SeqItems(v, span)})";
            case VArray a:
                return $"new MixSequence(new {ModuleType}[] {{ {string.Join(", ", a.Items.Select(i => Inst(i, span)))} }})";
            case VLayer l:
                return l.CtorCode ?? l.Field;
        }
        throw new UnsupportedException(span, "this layer cannot be built by the generator");
    }

    string SeqItems(V v, TextSpan span) => v switch
    {
        VFor f => $"Fn.Range({f.Start}, {f.End}).Select({f.Variable} => {Inst(f.Body, span)})",
        VRepeat r => $"Fn.Range(0, {r.Count}).Select(_ => {Inst(r.Body, span)})",
        VArray a => $"new {ModuleType}[] {{ {string.Join(", ", a.Items.Select(i => Inst(i, span)))} }}",
        _ => throw new UnsupportedException(span, "not a sequence"),
    };

    static string Indent(string code) => "    " + code.Replace("\n", "\n    ");

    static string Xml(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}
