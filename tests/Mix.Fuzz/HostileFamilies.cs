using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Mix.Dsl.Text;

namespace Mix.Fuzz;

/// <summary>One family of inputs that grows with a size: the rows of issue 19's table.</summary>
public sealed record HostileFamily(string Name, string What, Func<int, IReadOnlyList<SourceText>> Build, int[] Sizes, params string[] Expect)
{
    /// <summary>Whether the largest member is a mistake the checker must report (one of <see cref="Expect"/>), rather
    /// than a big but valid input that must simply check in time.</summary>
    public bool IsError => Expect.Length > 0;

    /// <summary>The largest input of the family that the fuzz test and the acceptance tests run.</summary>
    public IReadOnlyList<SourceText> Largest => Build(Sizes[^1]);
}

/// <summary>Inputs grown until the front end used to fail: stack overflows, exponential time or memory.</summary>
public static class HostileFamilies
{
    const string Head = "block b(dim: int, e: int) (x: [B, dim]) -> [B, dim] {\n";

    static IReadOnlyList<SourceText> One(string text) => new[] { new SourceText("hostile.mix", text) };

    static string Repeat(string s, int n) => string.Concat(Enumerable.Repeat(s, n));

    static string Join(string sep, int n, Func<int, string> item) => string.Join(sep, Enumerable.Range(0, n).Select(item));

    /// <summary>Every family, with the sizes the tests run (the last is the one that used to fail worst).</summary>
    public static IReadOnlyList<HostileFamily> All { get; } = new HostileFamily[]
    {
        new("self-inline", "an inline block that applies itself", n => One(
            Head + Repeat("  y = x\n", n) + "  l13 = { return x |> l13 }\n  return x |> l13\n}\n"), new[] { 0, 8 }, "MIX0106"),
        new("self-inline-call", "an inline block that calls itself", n => One(
            Head + Repeat("  y = x\n", n) + "  l13 = { return l13(x) }\n  return l13(x)\n}\n"), new[] { 0, 8 }, "MIX0106"),
        new("and-chain", "a and a and ...", n => One(Head + "  c = " + Join(" and ", n, _ => "true") + "\n  return x\n}\n"), new[] { 100, 1000, 20000 }, "MIX0004"),
        new("mul-shape", "d * d * ... in a shape", n => One(
            "block b(d: int) (x: [B, " + Join(" * ", n, _ => "d") + "]) -> [B, " + Join(" * ", n, _ => "d") + "] { return x }\n"), new[] { 100, 1000, 8000 }, "MIX0004"),
        new("call-chain", "f(f(f(...)))", n => One(Head + "  y = " + Repeat("gelu(", n) + "x" + Repeat(")", n) + "\n  return y\n}\n"), new[] { 40, 1000, 20000 }, "MIX0004"),
        new("index-chain", "a[0][0]...", n => One(Head + "  a = [1]\n  c = a" + Repeat("[0]", n) + "\n  return x\n}\n"), new[] { 100, 2000, 16000 }, "MIX0004"),
        new("plus-chain", "x + x + ...", n => One(Head + "  y = " + Join(" + ", n, _ => "x") + "\n  return y\n}\n"), new[] { 100, 6000, 20000 }, "MIX0004"),
        new("pipe-chain", "x |> gelu |> ...", n => One(Head + "  y = x" + Repeat(" |> gelu", n) + "\n  return y\n}\n"), new[] { 100, 6000 }, "MIX0004"),
        new("not-chain", "not not ... true", n => One(Head + "  c = " + Repeat("not ", n) + "true\n  return x\n}\n"), new[] { 40, 2000, 12000 }, "MIX0004"),
        new("minus-chain", "- - ... 1", n => One(Head + "  c = " + Repeat("- ", n) + "1\n  return x\n}\n"), new[] { 40, 2000 }, "MIX0004"),
        new("if-chain", "if c then 1 else if ... (a long else-if chain)", n => One(
            Head + "  c = " + Join(" else ", n, i => $"if e == {i} then {i}") + " else 0\n  return x\n}\n"), new[] { 100, 1572, 6000 }, "MIX0004"),
        new("for-nest", "for i in 0..2: for ... (nested loops)", n => One(
            Head + "  c = " + Join("", n, i => $"for i{i} in 0..2: ") + "1\n  return x\n}\n"), new[] { 10, 40, 2000 }, "MIX0004"),
        new("square", "d = d * d repeated", n => One(Head + "  d = dim\n" + Repeat("  d = d * d\n", n) + "  y = linear(dim, d)\n  return x\n}\n"), new[] { 10, 24, 64 }, "MIX0407"),
        new("divmod", "repeated / and % of symbolic dims", n => One(
            Head + "  d = dim\n" + Join("", n, i => i % 2 == 0 ? "  d = d / e + d % e\n" : "  d = d % d + d / dim\n") + "  return x\n}\n"), new[] { 10, 28, 64 }, "MIX0407"),
        new("string-double", "a string doubled by + repeatedly", n => One(Head + "  s = \"ab\"\n" + Repeat("  s = s + s\n", n) + "  return x\n}\n"), new[] { 10, 30, 64 }, "MIX0407"),
        new("poly-for", "polynomials in 8 symbols in nested for", n => One(
            "block b(A: int, B: int, C: int, D: int, E: int, F: int, G: int, H: int, n: int) (x: [N, A]) -> [N, A] {\n  c = "
            + Join("", n, i => $"for i{i} in 0..4: ") + Join(" * ", 7, _ => "(A + B + C + D + E + F + G + H)") + "\n  return x\n}\n"), new[] { 1, 2, 4 }, "MIX0407", "MIX0406"),
        new("power-dim", "(A+...+H)^12 in one shape dimension", n => One(
            "block b(A: int, B: int, C: int, D: int, E: int, F: int, G: int, H: int) (x: [N, " + Join(" * ", n, _ => "(A + B + C + D + E + F + G + H)")
            + "]) -> [N, A] { return x }\n"), new[] { 2, 12, 40 }, "MIX0407"),
        new("power-16", "16 symbols ^8", n => One(
            "block b(" + Join(", ", 16, i => $"S{i}: int") + ") (x: [N, " + Join(" * ", n, _ => "(" + Join(" + ", 16, i => $"S{i}") + ")")
            + "]) -> [N, S0] { return x }\n"), new[] { 2, 8, 16 }, "MIX0407"),
        new("unclosed-blocks", "s = { then d = { nested, unclosed (as while typing)", n => One(
            Head + "  s = {\n" + Repeat("  d = {\n", n)), new[] { 5, 22, 400 }, "MIX0004"),
        new("unclosed-if-for", "d = if for i in 0..2: { nested, unclosed", n => One(
            Head + Repeat("  d = if for i in 0..2: {\n", n)), new[] { 5, 20, 300 }, "MIX0004"),
        new("unclosed-parens", "unclosed ( [ { mixed", n => One(Head + "  y = " + Join("", n, i => "([{"[i % 3] + "x, ") + "\n  return y\n}\n"), new[] { 10, 40, 3000 }, "MIX0004"),
        new("nested-inline", "inline blocks nested in inline blocks", n => One(
            Head + "  y = " + Repeat("{ return ", n) + "x" + Repeat(" }", n) + "\n  return x |> y\n}\n"), new[] { 5, 40, 400 }, "MIX0004"),
        new("many-statements", "thousands of statements", n => One(Head + Join("", n, i => $"  v{i} = {i} + dim\n") + "  return x\n}\n"), new[] { 100, 8000 }),
        new("unknown-names", "thousands of statements naming unknown things (each asks for a suggestion)", n => One(
            Head + Join("", n, i => $"  v{i} = w{i} + dim\n") + "  return x\n}\n"), new[] { 100, 4000 }, "MIX0101"),
        new("long-names", "two names of thousands of characters that differ (edit distance)", n => One(
            Head + $"  {new string('a', n)} = 1\n  c = {new string('a', n - 1)}b + 1\n  return x\n}}\n"), new[] { 100, 30000 }, "MIX0101"),
        new("long-line", "one 64K-character line", n => One(Head + "  c = [" + Join(", ", n, i => i.ToString()) + "]\n  return x\n}\n"), new[] { 100, 12000 }),
        new("definition-chain", "each definition uses the previous one", n => One(
            "block b0(dim: int) (x: [B, dim]) -> [B, dim] { return x }\n"
            + Join("", n, i => $"block b{i + 1}(dim: int) (x: [B, dim]) -> [B, dim] {{\n  inner = b{i}(dim)\n  return inner(x)\n}}\n")
            + $"model m() (x: [B, 4]) -> [B, 4] {{\n  top = b{n}(4)\n  return top(x)\n}}\n"), new[] { 10, 60, 800 }, "MIX0406"),
        new("import-chain", "a chain of imported files", n =>
            Enumerable.Range(0, n).Select(i => new SourceText($"f{i}.mix",
                (i + 1 < n ? $"import \"f{i + 1}.mix\"\n" : "") + $"block b{i}(dim: int) (x: [B, dim]) -> [B, dim] {{ return x }}\n")).ToArray(), new[] { 10, 800 }),
        new("import-ring", "files that import each other in a ring", n =>
            Enumerable.Range(0, n).Select(i => new SourceText($"f{i}.mix",
                $"import \"f{(i + 1) % n}.mix\"\nblock b{i}(dim: int) (x: [B, dim]) -> [B, dim] {{ return x }}\n")).ToArray(), new[] { 10, 500 }, "MIX0105"),
    };

    /// <summary>The family with this name.</summary>
    public static HostileFamily Get(string name) => All.First(f => f.Name == name);
}
