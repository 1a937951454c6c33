using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Diagnostics;
using Mix.Dsl.Syntax;
using Mix.Dsl.Text;

namespace Mix.Dsl.Semantics;

internal sealed partial class Evaluator
{
    /// <summary>Gives a complete factory a name in the current body: a layer, with a node in the module tree.</summary>
    LayerValue MakeLayer(string name, FactoryValue factory, TextSpan span, Frame f)
    {
        var node = f.CreatesChildren && f.Node is not null
            ? f.Node.AddChild(name, factory.Callable.Name)
            : new LayerNode(name, null, factory.Callable.Name);
        if (factory.Callable is BuiltinCallable b)
        {
            var call = new BuiltinCall(b, factory.Args, System.Array.Empty<Value>(), node, (d, m) => Report(f, span, d, m));
            b.Validate?.Invoke(call);
            b.Weights?.Invoke(call);
            node.Expanded = true;
        }
        return new LayerValue(factory, node);
    }

    Value ApplyLayer(LayerValue layer, IReadOnlyList<Value> inputs, TextSpan span, Frame f)
    {
        var node = layer.Node;
        node.Used = true;
        Value result;
        switch (layer.Factory.Callable)
        {
            case BuiltinCallable { Kind: CallableKind.Function } fn:
                result = CallFunction(fn, layer.Factory, inputs, f, span);
                break;
            case BuiltinCallable b:
                if (b.Apply is null) return UnknownValue.Instance;
                result = b.Apply(new BuiltinCall(b, layer.Factory.Args, inputs, node, (d, m) => Report(f, span, d, m)));
                break;
            case UserCallable u:
                result = Instantiate(u, layer.Factory.Args, inputs, node, span, f);
                break;
            case InlineCallable inline:
                result = ApplyInline(inline, inputs, node, span, f);
                break;
            case SequenceCallable:
                result = ApplySequence((ArrayValue)layer.Factory.Args["layers"], inputs, span, f);
                break;
            default:
                return UnknownValue.Instance;
        }
        if (result is TensorValue t && node.OutputShape is null) node.OutputShape = t.Shape;
        return result;
    }

    Value ApplyInline(InlineCallable inline, IReadOnlyList<Value> inputs, LayerNode node, TextSpan span, Frame caller)
    {
        // An inline block that reaches itself (`l = { return x |> l }`) would recurse forever: like MIX0106 for
        // definitions, reported where it applies itself.
        if (_active.Exists(a => a is InlineCallable active && ReferenceEquals(active.Expr, inline.Expr)))
        {
            Report(caller, span, DiagnosticIds.Recursion, $"the inline block '{node.Name}' applies itself; inline blocks cannot be recursive");
            return UnknownValue.Instance;
        }
        if (_active.Count >= MaxInstantiationDepth)
        {
            ReportTooDeep(caller, span);
            return UnknownValue.Instance;
        }
        var file = ContextOf(inline.File, caller.File);
        var frame = new Frame(file, new Scope(inline.Scope), node, !node.Expanded);
        node.Expanded = true;
        _active.Add(inline);
        _deepest = System.Math.Max(_deepest, _active.Count);
        try
        {
            var ret = RunStatements(inline.Expr.Statements, frame);
            if (ret is Returned r)
            {
                ResolveTies(frame);
                return r.Value;
            }
            if (frame.HadError) return UnknownValue.Instance;
            var result = RunPipeline(frame, inputs, span);
            ResolveTies(frame);
            return result;
        }
        finally
        {
            _active.RemoveAt(_active.Count - 1);
        }
    }

    /// <summary>A body without <c>return</c>: its layers run in the order declared.</summary>
    Value RunPipeline(Frame frame, IReadOnlyList<Value> inputs, TextSpan span)
    {
        if (inputs.Count != 1)
        {
            Report(frame, span, DiagnosticIds.NotApplicable, $"a pipeline takes one tensor; got {inputs.Count}");
            return UnknownValue.Instance;
        }
        Value x = inputs[0];
        foreach (var (name, layer) in frame.DeclaredLayers)
        {
            x = ApplyLayer(layer, new[] { x }, name.Span, frame);
            if (x is UnknownValue) break;
        }
        return x;
    }

    /// <summary>The result of running a body: the returned value, if a return ran.</summary>
    readonly struct Returned
    {
        public Returned(Value value, TextSpan span) { Value = value; Span = span; }
        public Value Value { get; }
        public TextSpan Span { get; }
    }

    /// <summary>Runs statements; returns the value of the first <c>return</c>, or null for a pipeline body.</summary>
    Returned? RunStatements(IReadOnlyList<Statement> statements, Frame f)
    {
        var layerNames = new Dictionary<string, TextSpan>();
        foreach (var st in statements)
        {
            switch (st)
            {
                case ReturnStatement r:
                    return new Returned(Guard(f.File, r.Span, () => Eval(r.Value, f), UnknownValue.Instance), r.Value.Span);
                case BindingStatement b:
                    Guard(f.File, b.Span, () => { RunBinding(b, f, layerNames); return 0; }, 0);
                    break;
            }
        }
        return null;
    }

    void RunBinding(BindingStatement b, Frame f, Dictionary<string, TextSpan> layerNames)
    {
        var value = Eval(b.Value, f);
        if (value is FactoryValue incomplete && IsLayerCallMissingArguments(b.Value, incomplete))
        {
            // `conv = conv2d(dim, dim, padding = 1)`: the call that lacks kernel_size is the mistake, not the line
            // that later applies conv.
            var missing = incomplete.Missing.Where(p => !p.IsImplicitDim).Select(p => p.Name);
            Report(f, ((CallExpr)b.Value).Callee.Span, DiagnosticIds.MissingArgument, $"{incomplete.Callable.Name} is missing {string.Join(", ", missing)}");
            value = UnknownValue.Instance;
        }
        if (value is UnknownValue) f.HadError = true;
        if (b.Targets.Count > 1)
        {
            var items = value.AsItems();
            if (value is UnknownValue) items = b.Targets.Select(_ => (Value)UnknownValue.Instance).ToList();
            if (items is null || items.Count != b.Targets.Count)
            {
                Report(f, b.Value.Span, DiagnosticIds.WrongKind,
                    $"{b.Targets.Count} names need {b.Targets.Count} values; found {Describe(value)}");
                items = b.Targets.Select(_ => (Value)UnknownValue.Instance).ToList();
            }
            for (int i = 0; i < b.Targets.Count; i++)
            {
                CheckStateUpdate(b.Targets[i], items[i], f);
                f.Scope.Set(b.Targets[i].Name, items[i]);
            }
            ApplyAnnotations(b.Annotations, null, f);
            return;
        }

        var target = b.Targets[0];
        if (value is StateDeclValue state)
        {
            BindState(b, state, f, layerNames);
            ApplyAnnotations(b.Annotations, null, f);
            return;
        }
        CheckStateUpdate(target, value, f);
        if (value is WeightDeclValue weight)
        {
            BindWeight(target, weight, f, layerNames);
            ApplyAnnotations(b.Annotations, null, f);
            return;
        }
        Value bound = value;
        LayerNode? node = null;
        if (value is FactoryValue fv && (fv.Callable.Kind == CallableKind.Function
                ? fv.Missing.All(p => p.Type.Kind == TypeKind.Tensor) && fv.Missing.Any()
                : fv.IsComplete))
        {
            var layer = MakeLayer(target.Name, fv, b.Value.Span, f);
            node = layer.Node;
            bound = layer;
            f.DeclaredLayers.Add((target, layer));
        }
        else if (value is ArrayValue arr && IsLayerArray(arr))
        {
            node = f.CreatesChildren && f.Node is not null ? f.Node.AddChild(target.Name, "sequence") : new LayerNode(target.Name, null, "sequence");
            node.Expanded = true;
            var container = new Frame(f.File, f.Scope, node, f.CreatesChildren);
            var items = arr.Items ?? new[] { arr.Element! };
            var layers = items.Select((item, i) => (Value)MakeLayer(i.ToString(System.Globalization.CultureInfo.InvariantCulture), (FactoryValue)item, b.Value.Span, container)).ToList();
            var seq = arr.Items is null ? new ArrayValue(null, layers[0]) { RepeatSpan = arr.RepeatSpan } : new ArrayValue(layers) { RepeatSpan = arr.RepeatSpan };
            bound = seq;
            f.DeclaredLayers.Add((target, new LayerValue(new FactoryValue(SequenceCallable.Instance, new Dictionary<string, Value> { ["layers"] = seq }), node)));
        }

        if (node is not null)
        {
            if (layerNames.TryGetValue(target.Name, out _))
                Report(f, target.Span, DiagnosticIds.DuplicateLayer,
                    $"layer '{target.Name}' is already declared in this body; each layer name is one state-dict key");
            layerNames[target.Name] = target.Span;
        }
        ApplyAnnotations(b.Annotations, node, f);
        f.Scope.Set(target.Name, bound);
    }

    /// <summary>A direct call of a layer (not a function, not a mixer waiting only for its dim) that leaves required
    /// parameters unbound: bound to a name, it could never become a layer.</summary>
    static bool IsLayerCallMissingArguments(Expr value, FactoryValue factory) =>
        value is CallExpr && factory.Callable.Kind != CallableKind.Function && !factory.IsComplete
        && factory.Missing.Any(p => !p.IsImplicitDim);

    static bool IsLayerArray(ArrayValue arr)
    {
        bool IsLayerFactory(Value v) => v is FactoryValue fv && fv.IsComplete && fv.Callable.Kind != CallableKind.Function;
        if (arr.Items is null) return arr.Element is not null && IsLayerFactory(arr.Element);
        return arr.Items.Count > 0 && arr.Items.All(IsLayerFactory);
    }

    void ApplyAnnotations(IReadOnlyList<Annotation> annotations, LayerNode? node, Frame f)
    {
        foreach (var a in annotations)
        {
            switch (a.Name.Name)
            {
                case "key":
                    if (a.Args.Count != 1 || a.Args[0].Value is not StringExpr s || !IsValidKey(s.Value))
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@key takes one string of dot-separated names, e.g. @key(\"backbone.layers\")");
                        break;
                    }
                    if (node is null)
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@key applies to a layer declaration");
                        break;
                    }
                    node.Name = s.Value;
                    break;
                case "fused":
                    if (a.Args.Count != 1 || a.Args[0].Value is not BoolExpr)
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@fused takes true or false, e.g. @fused(false)");
                        break;
                    }
                    if (node is null)
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@fused applies to a layer declaration or a definition");
                        break;
                    }
                    node.FusedDisabled = !((BoolExpr)a.Args[0].Value).Value;
                    break;
                case "doc":
                    if (a.Args.Count != 1 || a.Args[0].Value is not StringExpr)
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@doc takes one string");
                    break;
                case "unused":
                    // The official module declares the layer and never calls it: its keys stay for strict loading.
                    if (a.Args.Count != 1 || a.Args[0].Name is not null || a.Args[0].Value is not StringExpr { Value.Length: > 0 })
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation,
                            "@unused takes one string saying why the layer is kept, e.g. @unused(\"declared but never called by the official forward\")");
                        break;
                    }
                    if (node is null)
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@unused applies to a layer declaration");
                        break;
                    }
                    node.KeptUnused = true;
                    break;
                case "tied":
                    if (a.Args.Count == 0 || a.Args.Any(x => x.Name is null || x.Value is not StringExpr s || !IsValidKey(s.Value)))
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation,
                            "@tied takes weight = \"key\" pairs naming the weight another layer shares, e.g. @tied(weight = \"embeddings.weight\")");
                        break;
                    }
                    if (node is null)
                    {
                        Report(f, a.Span, DiagnosticIds.BadAnnotation, "@tied applies to a layer declaration");
                        break;
                    }
                    if (f.CreatesChildren) f.Ties.Add((a, node));
                    break;
                default:
                    var best = Suggestions.Closest(a.Name.Name, new[] { "key", "fused", "doc", "tied", "unused" });
                    Report(f, a.Name.Span, DiagnosticIds.BadAnnotation,
                        $"unknown annotation '@{a.Name.Name}'; annotations are @key, @fused, @doc, @tied and @unused{(best is null ? "" : $"; did you mean '@{best}'?")}");
                    break;
            }
        }
    }

    /// <summary>
    /// Checks a body's <c>@tied</c> annotations once it has run: the layer has the weight, the key names a weight of
    /// another layer of this definition (relative to it, as in its state dict), and both have one shape. Then the
    /// weight is marked as shared (counted once).
    /// </summary>
    void ResolveTies(Frame frame)
    {
        if (frame.Ties.Count == 0 || frame.Node is not LayerNode owner) return;
        var prefix = owner.Path.Length == 0 ? "" : owner.Path + ".";
        // A layer declared twice (already MIX0107) repeats its keys: the first declaration is the one a tie can name.
        var keys = new System.Collections.Generic.Dictionary<string, WeightInfo>(System.StringComparer.Ordinal);
        foreach (var x in owner.AllWeights())
            if (!x.Weight.IsBuffer && !keys.ContainsKey(x.Key.Substring(prefix.Length))) keys[x.Key.Substring(prefix.Length)] = x.Weight;
        foreach (var (annotation, layer) in frame.Ties)
        {
            var ownPrefix = layer.Path.Substring(prefix.Length) + ".";
            foreach (var arg in annotation.Args)
            {
                var key = ((StringExpr)arg.Value).Value;
                var own = layer.Weights.FirstOrDefault(w => w.Name == arg.Name && !w.IsBuffer);
                // `@tied(...) r = if bidirectional then sin_act(n) else identity`: a layer this configuration leaves out
                // ties nothing (the generated constructor skips it the same way).
                if (own is null && layer.Kind == "identity" && layer.Weights.Count == 0 && layer.Children.Count == 0) continue;
                if (own is null)
                {
                    var names = layer.Weights.Where(w => !w.IsBuffer).Select(w => w.Name).ToList();
                    var best = Suggestions.Closest(arg.Name!, names);
                    Report(frame, arg.NameSpan, DiagnosticIds.UnknownTiedWeight,
                        $"layer '{layer.Name}' ({layer.Kind}) has no parameter '{arg.Name}' to tie" +
                        (best is not null ? $"; did you mean '{best}'?" : names.Count > 0 ? $"; its parameters are {string.Join(", ", names)}" : "; it has no parameters of its own"));
                    continue;
                }
                if (!keys.TryGetValue(key, out var target) || key.StartsWith(ownPrefix, System.StringComparison.Ordinal))
                {
                    var best = Suggestions.Closest(key, keys.Keys.Where(k => !k.StartsWith(ownPrefix, System.StringComparison.Ordinal)));
                    Report(frame, arg.Value.Span, DiagnosticIds.UnknownTiedWeight,
                        $"no parameter '{key}' among the other layers of {owner.Kind}{(best is null ? "" : $"; did you mean '{best}'?")}");
                    continue;
                }
                if (own.Shape.Count != target.Shape.Count || own.Shape.Zip(target.Shape, (a, b) => a.Equals(b)).Any(same => !same))
                {
                    Report(frame, arg.Value.Span, DiagnosticIds.TiedShapeMismatch,
                        $"{layer.Path.Substring(prefix.Length)}.{own.Name} is {new Shape(own.Shape)} but {key} is {new Shape(target.Shape)}: a tied weight must have the same shape");
                    continue;
                }
                layer.Tie(own.Name, key);
            }
        }
    }

    static bool IsValidKey(string key) =>
        key.Length > 0 && key.Split('.').All(p => p.Length > 0 && p.All(ch => char.IsLetterOrDigit(ch) || ch == '_'));
}

/// <summary>The callable behind a named list of layers (<c>blocks = depth x block(...)</c>): applies them in order.</summary>
internal sealed class SequenceCallable : Callable
{
    public static readonly SequenceCallable Instance = new();
    public override string Name => "sequence";
    public override CallableKind Kind => CallableKind.Block;
    public override IReadOnlyList<ParamSpec> Params => System.Array.Empty<ParamSpec>();
}
