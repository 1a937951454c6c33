using System.Collections.Generic;

namespace Mix.Dsl.Syntax;

/// <summary>
/// How deep an expression tree goes, measured without recursion. The checker and the generator walk trees
/// recursively, so the parser rejects a tree deeper than <see cref="Max"/> (MIX0004): an operator chain such as
/// <c>a + a + ...</c> counts one level per operator, an else-if chain one level per <c>if</c>.
/// </summary>
internal static class ExpressionDepth
{
    /// <summary>Deepest expression tree the parser accepts.</summary>
    public const int Max = 256;

    /// <summary>The first node found deeper than <see cref="Max"/>, or null when the whole tree fits.</summary>
    public static Expr? FindTooDeep(Expr root)
    {
        var stack = new Stack<(Expr Node, int Depth)>();
        stack.Push((root, 1));
        while (stack.Count > 0)
        {
            var (e, depth) = stack.Pop();
            if (depth > Max) return e;
            int d = depth + 1;
            switch (e)
            {
                case UnaryExpr u: stack.Push((u.Operand, d)); break;
                case BinaryExpr b: stack.Push((b.Right, d)); stack.Push((b.Left, d)); break;
                case CallExpr c:
                    foreach (var a in c.Args) stack.Push((a.Value, d));
                    stack.Push((c.Callee, d));
                    break;
                case IndexExpr ix: stack.Push((ix.Index, d)); stack.Push((ix.Target, d)); break;
                case MemberExpr m: stack.Push((m.Target, d)); break;
                case SliceExpr sl:
                    if (sl.End is not null) stack.Push((sl.End, d));
                    if (sl.Start is not null) stack.Push((sl.Start, d));
                    stack.Push((sl.Target, d));
                    break;
                case ArrayExpr a: foreach (var i in a.Items) stack.Push((i, d)); break;
                case IfExpr i: stack.Push((i.Else, d)); stack.Push((i.Then, d)); stack.Push((i.Condition, d)); break;
                case ForExpr f: stack.Push((f.Body, d)); stack.Push((f.End, d)); stack.Push((f.Start, d)); break;
                case RepeatExpr r: stack.Push((r.Body, d)); stack.Push((r.Count, d)); break;
                case InlineBlockExpr ib:
                    foreach (var s in ib.Statements)
                    {
                        switch (s)
                        {
                            case BindingStatement bs: stack.Push((bs.Value, d)); break;
                            case ReturnStatement rs: stack.Push((rs.Value, d)); break;
                        }
                        foreach (var an in s.Annotations)
                            foreach (var a in an.Args) stack.Push((a.Value, d));
                    }
                    break;
            }
        }
        return null;
    }
}
