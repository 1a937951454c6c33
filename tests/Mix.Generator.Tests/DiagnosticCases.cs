using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using static Microsoft.CodeAnalysis.DiagnosticSeverity;

namespace Mix.Generator.Tests;

/// <summary>Where a diagnostic comes from: the front end (MIX0xxx, on .mix files) or the generator's own checks
/// (MIX9xxx); the generator reports both.</summary>
public enum Tool { FrontEnd, Generator }

/// <summary>
/// A minimal bad input for one diagnostic. <see cref="Mix"/> holds .mix files and <see cref="CSharp"/> an optional C#
/// file, both in Microsoft.CodeAnalysis.Testing's markup: <c>{|MIX0101:text|}</c> marks the exact span of one
/// expected diagnostic (<c>{|MIX0001:|}</c> an empty one). Every diagnostic the input produces must be marked.
/// </summary>
public sealed record DiagnosticCase(string Name, string Id, DiagnosticSeverity Severity, Tool Tool, IReadOnlyList<(string Path, string Text)> Mix, string? CSharp = null);

/// <summary>The span cases of the diagnostic catalog, one or more per ID (first one per ID gives its severity).</summary>
public static class DiagnosticCases
{
    /// <summary>The .mix file of a case (under the root the generator tests use as the project folder).</summary>
    public const string File = Harness.Root + "bad.mix";

    /// <summary>IDs that no input can produce, with the reason. Everything else in the catalog needs a case.</summary>
    public static readonly IReadOnlyDictionary<string, string> NotTriggerable = new Dictionary<string, string>
    {
        ["MIX0999"] = "internal checker error: reported only when the checker itself throws, which is a bug; the fuzz test asserts no input does",
    };

    const string Sig = "block b(dim: int) (x: [B, dim]) -> [B, dim]";

    static DiagnosticCase Front(string id, DiagnosticSeverity severity, string mix, string? name = null) =>
        new(name ?? id, id, severity, Tool.FrontEnd, new[] { (File, mix) });

    static DiagnosticCase Gen(string id, DiagnosticSeverity severity, string mix, string? csharp = null, string mixPath = File, string? name = null) =>
        new(name ?? id, id, severity, Tool.Generator, new[] { (mixPath, mix) }, csharp);

    /// <summary>A model file that checks and generates cleanly, for the [MixModel] cases.</summary>
    const string GoodModel = "model m(dim: int = 8) (x: [B, dim]) -> [B, dim] { fc = linear(dim, dim) }\n";
    const string GoodModelPath = Harness.Root + "models/m.mix";

    public static readonly IReadOnlyList<DiagnosticCase> All = new[]
    {
        // ---- syntax ----
        Front("MIX0001", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              y = (x +
              {|MIX0001:return|} y
            }
            """),
        Front("MIX0001", Error, Sig + " { return x + {|MIX0001:}|}\n", "MIX0001 missing operand"),
        Front("MIX0002", Error, "import {|MIX0002:\"lib.mix|}\n"),
        Front("MIX0003", Error, "block b(dim: int = {|MIX0003:99999999999999999999|}) (x: [B, dim]) -> [B, dim] { return x }\n"),
        // The body's brace is level 1, so the 48th parenthesis is the 49th level: the one to point at.
        Front("MIX0004", Error, Sig + " { return " + new string('(', 47) + "{|MIX0004:(|}x" + new string(')', 48) + " }\n"),
        Front("MIX0004", Error, Sig + " { return {|MIX0004:" + string.Join(" ", Enumerable.Repeat("-", 49)) + "|} x }\n", "MIX0004 prefix operators"),
        // An operator chain counts one level per operator: the 257th level from the top is the start of the chain.
        Front("MIX0004", Error, Sig + " {\n  c = {|MIX0004:true|}" + string.Concat(Enumerable.Repeat(" and true", 300)) + "\n  return x\n}\n", "MIX0004 long chain"),
        Front("MIX0005", Error, Sig + " { return x {|MIX0005:§|} }\n"),

        // ---- names ----
        Front("MIX0101", Error, Sig + " { return {|MIX0101:y|} }\n"),
        Front("MIX0102", Error, Sig + " { return x }\nblock {|MIX0102:b|}(dim: int) (x: [B, dim]) -> [B, dim] { return x }\n"),
        Front("MIX0103", Error, "block b(dim: int, {|MIX0103:dim|}: int) (x: [B, dim]) -> [B, dim] { return x }\n"),
        Front("MIX0104", Error, "import {|MIX0104:\"missing.mix\"|}\n"),
        Front("MIX0105", Error, "import {|MIX0105:\"bad.mix\"|}\n"),
        new("MIX0105 two files", "MIX0105", Error, Tool.FrontEnd, new[]
        {
            (File, "import {|MIX0105:\"other.mix\"|}\n"),
            (Harness.Root + "other.mix", "import \"bad.mix\"\n"), // one cycle, one error: at the file checked first
        }),
        Front("MIX0106", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              inner = {|MIX0106:b|}(dim)
              return inner(x)
            }
            """),
        Front("MIX0106", Error, """
            block a(dim: int) (x: [B, dim]) -> [B, dim] {
              inner = {|MIX0106:c|}(dim)
              return inner(x)
            }
            block c(dim: int) (x: [B, dim]) -> [B, dim] {
              inner = {|MIX0106:a|}(dim)
              return inner(x)
            }
            """, "MIX0106 through another block"),
        Front("MIX0106", Error, "model m(dim: int = 8) = {|MIX0106:m(dim = 4)|}\n", "MIX0106 alias of itself"),
        // An inline block reaching itself: reported where it applies itself, not where it is first applied.
        Front("MIX0106", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              l13 = { return x |> {|MIX0106:l13|} }
              return x |> l13
            }
            """, "MIX0106 inline block applying itself"),
        // The first fc is shadowed by the second and so never applied: the warning is true, and stays.
        Front("MIX0107", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              {|MIX0109:fc|} = linear(dim, dim)
              {|MIX0107:fc|} = linear(dim, dim)
              return fc(x)
            }
            """),
        Front("MIX0108", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              @{|MIX0108:kee|}("head") fc = linear(dim, dim)
              return fc(x)
            }
            """),
        Front("MIX0109", Warning, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              {|MIX0109:fc|} = linear(dim, dim)
              return x
            }
            """),
        Front("MIX0110", Error, "block b(dim: {|MIX0110:integer|}) (x: [B, dim]) -> [B, dim] { return x }\n"),
        Front("MIX0111", Error, """
            block shift(dim: int) (x: [B, L, dim]) -> [B, L, dim] {
              last = {|MIX0111:state([B, 1, dim])|}
              prev = concat([last, narrow(x, 1, 0, L - 1)], 1)
              last = narrow(x, 1, L - 1, 1)
              return (x + prev) / 2
            }
            """),
        Front("MIX0111", Error, """
            block attend(dim: int) (x: [B, L, dim]) -> [B, L, dim] {
              q = reshape(x, [B, L, 1, dim])
              return reshape({|MIX0111:causal_attention(q, q, q)|}, [B, L, dim])
            }
            """, "MIX0111 causal_attention"),
        Front("MIX0101", Error, """
            mixer conv(kernel: int = 4) (x: [B, L, dim]) -> [B, L, dim] {
              conv = conv1d(dim, dim, kernel_size = kernel, groups = dim)
              s = state([B, dim, kernel - 1])
              y, s = causal_conv1d(transpose(x, 1, 2), conv.{|MIX0101:weights|}, state = s)
              return transpose(y, 1, 2)
            }
            """, "MIX0101 layer weight"),
        Front("MIX0112", Warning, """
            mixer conv(kernel: int = 4) (x: [B, L, dim]) -> [B, L, dim] {
              w = param([dim, kernel], init = normal(std = 0.1))
              {|MIX0112:s|} = state([B, dim, kernel - 1])
              y, final = causal_conv1d(transpose(x, 1, 2), w, state = s)
              return transpose(y, 1, 2)
            }
            """),
        Front("MIX0130", Error, """
            model lm(vocab_size: int = 100, d_model: int = 16) (input_ids: long[B, L]) -> [B, L, vocab_size] {
              backbone = { embeddings = embedding(vocab_size, d_model) }
              @tied(weight = {|MIX0130:"backbone.embedding.weight"|}) lm_head = linear(d_model, vocab_size, bias = false)
              return lm_head(backbone(input_ids))
            }
            """),
        Front("MIX0130", Error, """
            model lm(vocab_size: int = 100, d_model: int = 16) (input_ids: long[B, L]) -> [B, L, vocab_size] {
              backbone = { embeddings = embedding(vocab_size, d_model) }
              @tied({|MIX0130:wieght|} = "backbone.embeddings.weight") lm_head = linear(d_model, vocab_size, bias = false)
              return lm_head(backbone(input_ids))
            }
            """, "MIX0130 own parameter"),

        // ---- arguments ----
        Front("MIX0201", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              fc = linear(dim, dim, {|MIX0201:bais|} = false)
              return fc(x)
            }
            """),
        // Binding an incomplete factory is allowed (it can be completed later); applying it is the error.
        Front("MIX0202", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              norm = layernorm
              return {|MIX0202:norm|}(x)
            }
            """),
        Front("MIX0203", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              fc = linear(dim, dim, bias = true, {|MIX0203:bias = false|})
              return fc(x)
            }
            """),
        Front("MIX0204", Error, """
            block b(dim: int, token_mixer: mixer = {|MIX0204:gelu|}) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              m = token_mixer(dim)
              return m(x)
            }
            """),
        Front("MIX0204", Error, "block b(dim: int, p: float = {|MIX0204:true|} ) (x: [B, dim]) -> [B, dim] { return x }\n", "MIX0204 keyword literal"),
        Front("MIX0205", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              drop = {|MIX0205:dropout(1.5)|}
              return drop(x)
            }
            """),
        Front("MIX0205", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              layers = {|MIX0205:0|} x linear(dim, dim)
              return layers(x)
            }
            """, "MIX0205 repeat count"),
        Front("MIX0206", Error, """
            block b(dim: int = 100) (x: [B, N, dim]) -> [B, N, dim] {
              attn = {|MIX0206:attention(dim = dim, head_dim = 32)|}
              return attn(x)
            }
            """),
        Front("MIX0207", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              fc = linear(dim, dim, true, {|MIX0207:4|})
              return fc(x)
            }
            """),
        Front("MIX0208", Error, Sig + " { return {|MIX0208:linear(dim, dim)|}(x) }\n"),
        Front("MIX0209", Error, "model m({|MIX0209:dim|}: int) (x: [B, dim]) -> [B, dim] { return x }\n"),
        Front("MIX0220", Error, Sig + " { return x + {|MIX0220:normal(std = 0.02)|} }\n"),

        // ---- shapes ----
        Front("MIX0301", Error, "block b(dim: int) (x: [B, dim], y: [B, 2 * dim]) -> [B, dim] { return {|MIX0301:x + y|} }\n"),
        Front("MIX0302", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              fc = linear(2 * dim, dim)
              return {|MIX0302:fc(x)|}
            }
            """),
        Front("MIX0303", Error, "block b(dim: int) (x: [B, dim]) -> [B, dim, dim] { return {|MIX0303:x|} }\n"),
        Front("MIX0304", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              layers = {|MIX0304:2 x linear(dim, 2 * dim)|}
              return layers(x)
            }
            """),
        Front("MIX0305", Error, "model m(dim: int = 64) (x: [B, {|MIX0305:dim / 3|}]) -> [B, dim / 3] { return x }\n"),
        Front("MIX0306", Error, "block b(dim: int) (x: [B, dim, L]) -> [B, L, dim] { return {|MIX0306:transpose(x, 1, 3)|} }\n"),
        Front("MIX0307", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              a, c = {|MIX0307:split(x, [dim, dim], -1)|}
              return a
            }
            """),
        Front("MIX0308", Error, """
            block b(dim: int) (x: [B, dim, L]) -> [B, dim, L] {
              return {|MIX0308:concat([x, transpose(x, 1, 2)], 1)|}
            }
            """),
        Front("MIX0309", Error, """
            model m(vocab: int = 100, dim: int = 16) (x: [B, L]) -> [B, L, dim] {
              embed = embedding(vocab, dim)
              return {|MIX0309:embed(x)|}
            }
            """),
        Front("MIX0330", Error, """
            model lm(vocab_size: int = 100, d_model: int = 16) (input_ids: long[B, L]) -> [B, L, vocab_size] {
              backbone = { embeddings = embedding(vocab_size, d_model); norm_f = rmsnorm(d_model) }
              @tied(weight = {|MIX0330:"backbone.norm_f.weight"|}) lm_head = linear(d_model, vocab_size, bias = false)
              return lm_head(backbone(input_ids))
            }
            """),
        Front("MIX0331", Error, """
            mixer shift() (x: [B, L, dim]) -> [B, L, dim] {
              last = state([B, 1, dim])
              prev = concat([last, narrow(x, 1, 0, L - 1)], 1)
              {|MIX0331:last|} = x
              return (x + prev) / 2
            }
            """),
        Front("MIX0331", Error, """
            mixer ssd(heads: int = 2, n: int = 4) (x: [B, L, dim]) -> [B, L, dim] {
              proj = linear(dim, heads + 2 * n)
              A = param([heads], init = -1.0)
              s = state([B, heads, n, dim / heads])
              dt, b, c = split(proj(x), [heads, n, n], -1)
              y, {|MIX0331:s|} = ssd_scan(reshape(x, [B, L, heads, dim / heads]), dt, A, reshape(b, [B, L, 1, n]), reshape(c, [B, L, 1, n]))
              return reshape(y, [B, L, dim])
            }
            """, "MIX0331 tuple"),
        Front("MIX0332", Error, """
            mixer m() (x: [B, L, dim]) -> [B, L, dim] {
              s = state([{|MIX0332:1|}, dim])
              return x
            }
            """),
        Front("MIX0332", Error, """
            mixer shift() (x: [B, L, dim]) -> [B, L, dim] {
              last = state([B, {|MIX0332:L|}, dim])
              prev = concat([narrow(last, 1, 0, 1), narrow(x, 1, 0, L - 1)], 1)
              last = x
              return (x + prev) / 2
            }
            """, "MIX0332 input size"),

        Front("MIX0309", Error, Sig + " { return x + {|MIX0309:log(rfft(x))|} }\n", "MIX0309 complex where real is needed"),
        Front("MIX0320", Error, """
            block b(dim: int, n: int) (x: [B, L, dim]) -> [B, L, n] {
              w = param([n, dim])
              return {|MIX0320:einsum("b l d, d n -> b l n", x, w)|}
            }
            """),
        Front("MIX0321", Error, """
            block b(dim: int, n: int) (x: [B, L, dim]) -> [B, L, n] {
              w = param([dim, n])
              return {|MIX0321:einsum("b l, d n -> b l n", x, w)|}
            }
            """),

        // ---- flow ----
        Front("MIX0401", Error, "block {|MIX0401:b|}(dim: int) (x: [B, dim]) -> [B, dim] { y = x }\n"),
        Front("MIX0402", Error, Sig + " { return x {|MIX0402:+|} \"one\" }\n"),
        Front("MIX0403", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              layers = {|MIX0403:true|} x linear(dim, dim)
              return layers(x)
            }
            """),
        Front("MIX0404", Error, """
            model m(dims: int[] = [64, 128]) (x: [B, 3]) -> [B, 3] {
              fc = linear(3, dims[{|MIX0404:2|}])
              return fc(x)
            }
            """),
        Front("MIX0405", Error, "block {|MIX0405:b|}(dim: int) {\n  return 1\n}\n"),
        // Reported once per file, where the budget ran out (not again at every later statement).
        Front("MIX0406", Error, """
            model m(n: int = 1000) (x: [B, 4]) -> [B, 4] {
              {|MIX0406:a = for i in 0..n: for j in 0..n: for k in 0..n: i + j + k|}
              return x
            }
            model m2(n: int = 4) (x: [B, 4]) -> [B, 4] { return x }
            """),

        Front("MIX0407", Error, """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              d = dim * dim * dim * dim * dim * dim * dim * dim
              d2 = d * d * d * d {|MIX0407:*|} d
              return x
            }
            """),

        // ---- generator ----
        Gen("MIX9001", Warning, "block b(dim: int, hidden: int = {|MIX9001:dim|}) (x: [B, dim]) -> [B, dim] { fc = linear(dim, hidden)\n  fc2 = linear(hidden, dim) }\n"),
        Gen("MIX9101", Error, GoodModel, "namespace User { [{|MIX9101:Mix.MixModel(\"models/nope.mix\", \"m\")|}] public partial class MyNet { } }", GoodModelPath),
        Gen("MIX9102", Error, GoodModel, "namespace User { [{|MIX9102:Mix.MixModel(\"models/m.mix\", \"nope\")|}] public partial class MyNet { } }", GoodModelPath),
        Gen("MIX9103", Error, GoodModel, "namespace User { [{|MIX9103:Mix.MixModel(\"models/m.mix\", \"m\")|}] public class MyNet { } }", GoodModelPath),
        Gen("MIX9103", Error, GoodModel, "namespace User { [{|MIX9103:Mix.MixModel(\"models/m.mix\", \"m\")|}] public static partial class MyNet { } }", GoodModelPath, "MIX9103 static"),
    };

    /// <summary>The case of a name.</summary>
    public static DiagnosticCase Find(string name) => All.Single(c => c.Name == name);

    /// <summary>The severity an ID is expected to have: that of its first case.</summary>
    public static DiagnosticSeverity SeverityOf(string id) =>
        All.FirstOrDefault(c => c.Id == id)?.Severity ?? throw new InvalidOperationException($"{id} is marked but has no case of its own");
}
