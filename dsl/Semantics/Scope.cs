using System.Collections.Generic;

namespace Mix.Dsl.Semantics;

/// <summary>Names visible in a body: parameters, shape symbols, locals and layers; later bindings shadow earlier.</summary>
internal sealed class Scope
{
    readonly Dictionary<string, Value> _values = new();

    public Scope(Scope? parent) => Parent = parent;

    public Scope? Parent { get; }

    public void Set(string name, Value value) => _values[name] = value;

    public bool TryGet(string name, out Value value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s._values.TryGetValue(name, out value!)) return true;
        value = null!;
        return false;
    }

    public bool ContainsLocal(string name) => _values.ContainsKey(name);

    public IEnumerable<string> AllNames()
    {
        for (var s = this; s is not null; s = s.Parent)
            foreach (var k in s._values.Keys) yield return k;
    }
}
