using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Mix.Dsl.Semantics;

/// <summary>
/// Reuse of checked instances. A model instantiates the same block many times with the same arguments and input
/// shapes (PoolFormer-S36: 36 blocks, 4 distinct); checking one is enough when checking it reported nothing, and the
/// others get a copy of its module subtree. Nothing observable changes: the copy has the same keys, weights, shapes
/// and caches, and an instance whose check reported anything is never reused, so every diagnostic still comes from a
/// real evaluation. The step budget is charged for the copy (one step per node and weight copied), the work actually
/// done: charging a second check instead made a compilation of the whole zoo nearly fill the budget with checks it
/// never ran. Copies still cost what they copy, so nesting that multiplies instances (a block of two blocks of two
/// ...) grows the charge as fast as the tree and stops at the budget (MIX0406) as before.
/// </summary>
internal sealed partial class Evaluator
{
    sealed class CheckedInstance
    {
        public CheckedInstance(Value result, LayerNode template, int depth)
        {
            Result = result;
            Template = template;
            Depth = depth;
            CopyCost = Size(template);
        }

        static int Size(LayerNode n)
        {
            int size = 1 + n.Weights.Count;
            foreach (var c in n.Children) size += Size(c);
            return size;
        }

        public Value Result { get; }
        /// <summary>A detached copy of the instance's node: its weights, cache and children.</summary>
        public LayerNode Template { get; }
        /// <summary>Steps charged for a reuse: the nodes and weights the copy makes.</summary>
        public int CopyCost { get; }
        /// <summary>How many definitions deep the check nested, counting the instance itself.</summary>
        public int Depth { get; }
    }

    readonly Dictionary<string, CheckedInstance> _instances = new();
    readonly Dictionary<Callable, int> _callableIds = new();
    int _deepest;
    // Per logical flow, not per process: a test that compares both ways must not turn reuse off under compilations that
    // other tests run at the same time (StepBudgetTests then saw the zoo charged as full second checks).
    static readonly System.Threading.AsyncLocal<bool> s_disableInstanceReuse = new();

    /// <summary>Turns reuse off for evaluators created afterwards in the calling flow (tests compare both ways).</summary>
    internal static bool DisableInstanceReuse { get => s_disableInstanceReuse.Value; set => s_disableInstanceReuse.Value = value; }
    readonly bool _reuse = !DisableInstanceReuse;

    /// <summary>Whether this instantiation may be served from, or stored in, the instance cache.</summary>
    bool Reusable(UserCallable u, LayerNode node) =>
        _reuse && u.Definition.Alias is null && u.Definition.Signature is not null && !u.IsExternal
        && !node.Expanded && node.Children.Count == 0 && node.Weights.Count == 0 && node.Cache is null;

    bool TryReuse(string key, LayerNode node, out Value result)
    {
        result = UnknownValue.Instance;
        if (!_instances.TryGetValue(key, out var hit)) return false;
        // Replaying must not skip the depth limit the real check would hit; the budget is charged for the copy.
        if (_active.Count + hit.Depth > MaxInstantiationDepth || _steps + hit.CopyCost > _budget) return false;
        _steps += hit.CopyCost;
        _deepest = System.Math.Max(_deepest, _active.Count + hit.Depth);
        node.Expanded = true;
        node.CopyContentsFrom(hit.Template);
        result = hit.Result;
        return true;
    }

    void Remember(string key, LayerNode node, Value result, int depth)
    {
        if (!IsPlain(result)) return;
        var template = new LayerNode(node.Name, null, node.Kind);
        template.CopyContentsFrom(node);
        _instances[key] = new CheckedInstance(result, template, depth);
    }

    /// <summary>A result that holds no reference into the module tree.</summary>
    static bool IsPlain(Value v) => v switch
    {
        TensorValue => true,
        TupleValue t => System.Linq.Enumerable.All(t.Items, IsPlain),
        _ => false,
    };

    /// <summary>
    /// A text that identifies the definition, its arguments and its inputs exactly, or null when some value cannot
    /// be written down without losing identity (a layer, an inline block that captures a scope, an unknown).
    /// </summary>
    string? InstanceKey(UserCallable u, IReadOnlyDictionary<string, Value> args, IReadOnlyList<Value> inputs)
    {
        var sb = new StringBuilder();
        sb.Append(CallableId(u)).Append('(');
        var names = new List<string>(args.Keys);
        names.Sort(System.StringComparer.Ordinal);
        foreach (var name in names)
        {
            sb.Append(name).Append('=');
            if (!Write(args[name], sb)) return null;
            sb.Append(';');
        }
        sb.Append(")<-");
        foreach (var input in inputs)
        {
            if (input is not TensorValue) return null;
            Write(input, sb);
            sb.Append(';');
        }
        return sb.ToString();
    }

    string CallableId(Callable c)
    {
        if (!_callableIds.TryGetValue(c, out var id)) _callableIds[c] = id = _callableIds.Count;
        return c.Name + "#" + id.ToString(CultureInfo.InvariantCulture);
    }

    bool Write(Value v, StringBuilder sb)
    {
        switch (v)
        {
            case IntValue i: sb.Append("i:").Append(i.Dim); return true;
            case FloatValue f: sb.Append("f:").Append(f.Value?.ToString("R", CultureInfo.InvariantCulture) ?? "?"); return true;
            case BoolValue b: sb.Append("b:").Append(b.Value is bool x ? (x ? "1" : "0") : "?"); return true;
            case StringValue s: sb.Append("s:").Append(s.Value is null ? "?" : s.Value.Length.ToString(CultureInfo.InvariantCulture) + ":" + s.Value); return true;
            case EnumValue e: sb.Append("e:").Append(e.EnumName).Append('.').Append(e.Member ?? "?"); return true;
            case NoneValue: sb.Append("none"); return true;
            case TensorValue t:
                sb.Append("t:").Append(t.Shape.ElementType).Append('[');
                foreach (var d in t.Shape.Dims) sb.Append(d).Append(',');
                sb.Append(']');
                return true;
            case ArrayValue a:
                if (a.Items is null) return false;
                sb.Append("a");
                if (a.RepeatSpan is { } r) sb.Append('@').Append(r.Start).Append('+').Append(r.Length);
                sb.Append('[');
                foreach (var item in a.Items)
                {
                    if (!Write(item, sb)) return false;
                    sb.Append(',');
                }
                sb.Append(']');
                return true;
            case TupleValue tuple:
                sb.Append("(");
                foreach (var item in tuple.Items)
                {
                    if (!Write(item, sb)) return false;
                    sb.Append(',');
                }
                sb.Append(')');
                return true;
            case FactoryValue f when f.Callable is BuiltinCallable or UserCallable:
                sb.Append("F:").Append(CallableId(f.Callable)).Append('{');
                var names = new List<string>(f.Args.Keys);
                names.Sort(System.StringComparer.Ordinal);
                foreach (var name in names)
                {
                    sb.Append(name).Append('=');
                    if (!Write(f.Args[name], sb)) return false;
                    sb.Append(';');
                }
                sb.Append('}');
                return true;
            default:
                return false; // layers, inline blocks, sequences, unknowns
        }
    }
}
