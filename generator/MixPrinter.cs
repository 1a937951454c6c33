using System.Linq;
using Mix.Dsl.Syntax;

namespace Mix.Generator;

/// <summary>Prints .mix syntax back in a normalized layout (for doc comments; independent of the file's whitespace).</summary>
internal static class MixPrinter
{
    public static string Expr(Expr e) => e switch
    {
        NumberExpr n => n.Text,
        StringExpr s => "\"" + s.Value + "\"",
        BoolExpr b => b.Value ? "true" : "false",
        NoneExpr => "none",
        NameExpr n => n.Name,
        UnaryExpr u => u.Op == "not" ? "not " + Expr(u.Operand) : u.Op + Expr(u.Operand),
        BinaryExpr b => Wrap(b.Left) + " " + b.Op + " " + Wrap(b.Right),
        CallExpr c => Expr(c.Callee) + "(" + string.Join(", ", c.Args.Select(a => (a.Name is null ? "" : a.Name + " = ") + Expr(a.Value))) + ")",
        IndexExpr ix => Expr(ix.Target) + "[" + Expr(ix.Index) + "]",
        MemberExpr m => Expr(m.Target) + "." + m.Name,
        SliceExpr sl => Expr(sl.Target) + "[" + (sl.Start is null ? "" : Expr(sl.Start)) + ":" + (sl.End is null ? "" : Expr(sl.End)) + "]",
        ArrayExpr a => "[" + string.Join(", ", a.Items.Select(Expr)) + "]",
        IfExpr i => "if " + Expr(i.Condition) + " then " + Expr(i.Then) + " else " + Expr(i.Else),
        ForExpr f => "for " + f.Variable + " in " + Expr(f.Start) + ".." + Expr(f.End) + ": " + Expr(f.Body),
        RepeatExpr r => Wrap(r.Count) + " x " + Expr(r.Body),
        InlineBlockExpr ib => "{ " + string.Join("; ", ib.Statements.Select(s => s is BindingStatement b ? string.Join(", ", b.Targets.Select(t => t.Name)) + " = ..." : "return ...")) + " }",
        _ => "?",
    };

    static string Wrap(Expr e) => e is BinaryExpr or IfExpr or RepeatExpr or ForExpr ? "(" + Expr(e) + ")" : Expr(e);

    public static string Statement(Statement s) => s switch
    {
        BindingStatement b => string.Join(", ", b.Targets.Select(t => t.Name)) + " = " + Expr(b.Value),
        ReturnStatement r => "return " + Expr(r.Value),
        _ => "?",
    };

    public static string Shape(ShapeRef s) => (s.ElementType ?? "") + "[" + string.Join(", ", s.Dims.Select(Expr)) + "]";

    public static string Parameter(Parameter p) => p.Name.Name + ": " + p.Type + (p.Default is null ? "" : " = " + Expr(p.Default));

    public static string Signature(Definition d)
    {
        var kind = d.Kind.ToString().ToLowerInvariant();
        var head = $"{kind} {d.Name.Name}({string.Join(", ", d.Parameters.Select(Parameter))})";
        if (d.Signature is Signature sig)
            head += " (" + string.Join(", ", sig.Inputs.Select(i => i.Name.Name + ": " + Shape(i.Shape))) + ") -> " + Shape(sig.Output);
        if (d.Alias is not null) head += " = " + Expr(d.Alias);
        return head;
    }
}
