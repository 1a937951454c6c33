using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace Mix.Fuzz;

/// <summary>
/// Random programs from the grammar, mostly well-formed, with the structures plain mutation rarely builds: deep
/// nesting (brackets, if/for, inline blocks), long operator, pipe and index chains, statements and inline blocks
/// that use themselves, symbolic dimension arithmetic that grows (products, squares, / and %), long strings.
/// </summary>
public sealed class ProgramGenerator
{
    static readonly string[] Layers = { "linear(dim, dim)", "layernorm(dim)", "gelu", "identity", "rmsnorm(dim)", "dropout(0.1)", "linear(dim, 2 * dim)" };
    static readonly string[] Binary = { "+", "-", "*", "/", "//", "%", "==", "!=", "<", ">=", "and", "or", "|>" };

    readonly Random _r;
    readonly string _prefix;
    readonly string[] _external;
    readonly StringBuilder _sb = new();
    int _nodes;

    public ProgramGenerator(Random r, string prefix = "d", string[]? external = null)
    {
        _r = r;
        _prefix = prefix;
        _external = external ?? Array.Empty<string>();
    }

    bool Chance(int percent) => _r.Next(100) < percent;

    /// <summary>Log-uniform in [1, max]: mostly small, sometimes huge.</summary>
    int Size(int max) => (int)Math.Exp(_r.NextDouble() * Math.Log(max));

    public string File()
    {
        if (Chance(15)) _sb.Append("enum mode { a, b, c }\n");
        int defs = 1 + _r.Next(4);
        for (int i = 0; i < defs; i++) Definition(i, defs);
        return _sb.ToString();
    }

    void Definition(int i, int count)
    {
        var kind = _r.Next(3) switch { 0 => "model", 1 => "mixer", _ => "block" };
        var name = $"{_prefix}{i}";
        _sb.Append($"{kind} {name}(dim: int{(kind == "model" ? " = 8" : "")}, n: int = {_r.Next(5)}, e: int{(Chance(50) ? " = 4" : "")}, s: string = \"a\")");
        _sb.Append(Chance(85) ? " (x: [B, dim]) -> [B, dim]" : Chance(50) ? $" (x: [B, {Dim(0)}]) -> [B, {Dim(0)}]" : "");
        if (Chance(10))
        {
            _sb.Append(" = ").Append(Expr(0, new List<string>(), name)).Append('\n');
            return;
        }
        _sb.Append(" {\n");
        var names = new List<string>();
        int statements = 1 + Size(Chance(3) ? 400 : 12);
        for (int k = 0; k < statements && _nodes < 20000; k++)
        {
            var target = Chance(20) && names.Count > 0 ? names[_r.Next(names.Count)] : $"v{k}";
            _sb.Append("  ").Append(target).Append(" = ").Append(Expr(0, names, target)).Append('\n');
            if (!names.Contains(target)) names.Add(target);
        }
        if (Chance(85)) _sb.Append("  return ").Append(Chance(60) ? "x" : Expr(0, names, null)).Append('\n');
        if (!Chance(3)) _sb.Append("}\n"); // sometimes unclosed, as while typing
        // A definition that uses another, possibly the next one or itself.
        if (Chance(20)) _sb.Append($"block {name}_user(dim: int) (x: [B, dim]) -> [B, dim] {{\n  inner = {_prefix}{_r.Next(count + 1)}(dim)\n  return inner(x)\n}}\n");
    }

    string Dim(int depth)
    {
        _nodes++;
        if (depth > 3 || Chance(40)) return _r.Next(4) switch { 0 => "dim", 1 => "B", 2 => _r.Next(1, 64).ToString(), _ => "e" };
        var op = new[] { "+", "-", "*", "/", "*" }[_r.Next(5)];
        if (Chance(5)) return string.Join($" {op} ", Enumerable.Repeat("dim", Size(1500)));
        return $"({Dim(depth + 1)} {op} {Dim(depth + 1)})";
    }

    string Expr(int depth, List<string> names, string? self)
    {
        _nodes++;
        if (_nodes > 20000 || depth > 8 && Chance(70)) return Leaf(names, self);
        switch (_r.Next(22))
        {
            case 0: case 1: case 2: return Leaf(names, self);
            case 3: return Layers[_r.Next(Layers.Length)];
            case 4: return $"{Expr(depth + 1, names, self)} {Binary[_r.Next(Binary.Length)]} {Expr(depth + 1, names, self)}";
            case 5: return $"({Expr(depth + 1, names, self)})";
            case 6: return $"if {Expr(depth + 1, names, self)} then {Expr(depth + 1, names, self)} else {Expr(depth + 1, names, self)}";
            case 7: return $"for i{depth} in 0..{(Chance(70) ? _r.Next(6).ToString() : "n")}: {Expr(depth + 1, names, self)}";
            case 8: return $"{(Chance(70) ? _r.Next(1, 5).ToString() : "n")} x {Layers[_r.Next(Layers.Length)]}";
            case 9: return "{ " + string.Join("; ", Enumerable.Range(0, 1 + _r.Next(3)).Select(k => $"l{depth}_{k} = {Expr(depth + 1, names, self)}")) + (Chance(50) ? $"; return x |> {(self ?? "gelu")}" : "") + " }";
            case 10: return "[" + string.Join(", ", Enumerable.Range(0, _r.Next(5)).Select(_ => Expr(depth + 1, names, self))) + "]";
            case 11: return $"{Expr(depth + 1, names, self)}[{_r.Next(-2, 4)}]";
            case 12: return $"x |> {string.Join(" |> ", Enumerable.Range(0, 1 + _r.Next(4)).Select(_ => Chance(20) && self is not null ? self : Layers[_r.Next(Layers.Length)]))}";
            case 13: return $"{(Chance(50) ? "-" : "not ")}{Expr(depth + 1, names, self)}";
            case 14: return $"{self ?? "dim"} * {self ?? "dim"}";
            case 15: return $"{self ?? "dim"} {(Chance(50) ? "/" : "%")} {(Chance(50) ? "e" : "dim")}";
            case 16: return $"\"{new string('s', _r.Next(4))}\" + {(Chance(50) && self is not null ? self : "s")}";
            case 17: return _external.Length > 0 ? $"{_external[_r.Next(_external.Length)]}(dim)" : Leaf(names, self);
            case 18: return Spike(names, self);
            case 19: return $"concat([x, x], axis = {_r.Next(-2, 3)})";
            case 20: return $"{Leaf(names, self)}({(Chance(50) ? "x" : Expr(depth + 1, names, self))})";
            default: return Dim(0);
        }
    }

    /// <summary>One of the extremes: very deep nesting or a very long chain.</summary>
    string Spike(List<string> names, string? self)
    {
        int n = Size(4000);
        string leaf = Leaf(names, self);
        return _r.Next(7) switch
        {
            0 => string.Concat(Enumerable.Repeat("(", Math.Min(n, 200))) + leaf + string.Concat(Enumerable.Repeat(")", Math.Min(n, 200))),
            1 => string.Join(" " + Binary[_r.Next(Binary.Length)] + " ", Enumerable.Repeat(leaf, n)),
            2 => leaf + string.Concat(Enumerable.Repeat("[0]", n)),
            3 => string.Concat(Enumerable.Repeat("if true then ", Math.Min(n, 800))) + leaf + string.Concat(Enumerable.Repeat(" else 0", Math.Min(n, 800))),
            4 => string.Concat(Enumerable.Repeat("not ", n)) + "true",
            5 => string.Concat(Enumerable.Repeat("{ return ", Math.Min(n, 100))) + "x" + string.Concat(Enumerable.Repeat(" }", Math.Min(n, 100))),
            _ => string.Concat(Enumerable.Repeat("gelu(", Math.Min(n, 100))) + "x" + string.Concat(Enumerable.Repeat(")", Math.Min(n, 100))),
        };
    }

    string Leaf(List<string> names, string? self)
    {
        int k = _r.Next(10);
        if (k < 3 && names.Count > 0) return names[_r.Next(names.Count)];
        if (k == 3 && self is not null) return self;
        return _r.Next(8) switch
        {
            0 => "x", 1 => "dim", 2 => _r.Next(100).ToString(), 3 => "true", 4 => "none", 5 => "n", 6 => "1.5", _ => "e",
        };
    }
}
