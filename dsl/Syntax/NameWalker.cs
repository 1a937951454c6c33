using System.Collections.Generic;

namespace Mix.Dsl.Syntax;

/// <summary>Every name a definition mentions (parameters' defaults, body, alias, annotations), in no particular
/// order: a conservative answer to "which definitions can this one use", found without evaluating anything.</summary>
public static class NameWalker
{
    /// <summary>The names mentioned anywhere in <paramref name="definition"/>.</summary>
    public static HashSet<string> Names(Definition definition)
    {
        var names = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var a in definition.Annotations) Add(a, names);
        foreach (var p in definition.Parameters)
        {
            names.Add(p.Type.Name); // an enum type
            if (p.Default is not null) Add(p.Default, names);
        }
        if (definition.Body is not null) Add(definition.Body, names);
        if (definition.Alias is not null) Add(definition.Alias, names);
        return names;
    }

    static void Add(IReadOnlyList<Statement> body, HashSet<string> names)
    {
        foreach (var s in body)
        {
            foreach (var a in s.Annotations) Add(a, names);
            switch (s)
            {
                case BindingStatement b: Add(b.Value, names); break;
                case ReturnStatement r: Add(r.Value, names); break;
            }
        }
    }

    static void Add(Annotation a, HashSet<string> names)
    {
        foreach (var arg in a.Args) Add(arg.Value, names);
    }

    static void Add(Expr? e, HashSet<string> names)
    {
        // An explicit stack: the parser admits deep nesting, and this runs inside the generator.
        var stack = new Stack<Expr>();
        if (e is not null) stack.Push(e);
        while (stack.Count > 0)
        {
            switch (stack.Pop())
            {
                case NameExpr n: names.Add(n.Name); break;
                case UnaryExpr u: stack.Push(u.Operand); break;
                case BinaryExpr b: stack.Push(b.Left); stack.Push(b.Right); break;
                case CallExpr c:
                    stack.Push(c.Callee);
                    foreach (var arg in c.Args) stack.Push(arg.Value);
                    break;
                case IndexExpr i: stack.Push(i.Target); stack.Push(i.Index); break;
                case MemberExpr m: stack.Push(m.Target); break;
                case SliceExpr s:
                    stack.Push(s.Target);
                    if (s.Start is not null) stack.Push(s.Start);
                    if (s.End is not null) stack.Push(s.End);
                    break;
                case ArrayExpr a: foreach (var item in a.Items) stack.Push(item); break;
                case IfExpr f: stack.Push(f.Condition); stack.Push(f.Then); stack.Push(f.Else); break;
                case ForExpr f: stack.Push(f.Start); stack.Push(f.End); stack.Push(f.Body); break;
                case RepeatExpr r: stack.Push(r.Count); stack.Push(r.Body); break;
                case InlineBlockExpr block: Add(block.Statements, names); break;
            }
        }
    }
}
