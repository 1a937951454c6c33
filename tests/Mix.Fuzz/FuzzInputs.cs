using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Mix.Dsl.Text;

namespace Mix.Fuzz;

/// <summary>One fuzz input: the files checked together and what made them.</summary>
public sealed record FuzzInput(long Index, string Kind, IReadOnlyList<SourceText> Files)
{
    /// <summary>Characters over all files.</summary>
    public int Length => Files.Sum(f => f.Text.Length);
}

/// <summary>
/// Deterministic inputs by index (the same index always gives the same files, so a parent process can name the input
/// a crashed child was checking). Four kinds: mutations of the example models and documented examples, programs
/// generated from the grammar with deep nesting, long chains and self reference, the growing families of issue 19
/// at random sizes, and multi-file import graphs.
/// </summary>
public sealed class FuzzInputs
{
    /// <summary>Largest input (the speed budget is stated for inputs up to 64 KB).</summary>
    public const int MaxLength = 64 * 1024;

    /// <summary>A seed with the tensor-math syntax: params, buffers, inits, einsum, complex shapes and spectra.</summary>
    public const string TensorMathSeed = """
        block gf(h: int, w: int, dim: int, d_state: int = 4) (x: [B, h * w, dim]) -> [B, h * w, dim] {
          complex_weight = param([h, w / 2 + 1, dim, 2], init = normal(std = 0.02))
          A_log = param([dim, d_state], init = log(arange(1, d_state + 1)))
          dt_bias = param([dim], init = inv_softplus(clamp(exp(uniform(log(0.001), log(0.1))), min = 1e-4)), frozen = true)
          mask = buffer([d_state, d_state], init = tril(ones_mask(d_state, d_state)), dtype = "bool", persistent = false)
          z = rfft2(reshape(x, [B, h, w, dim]), dims = [1, 2], norm = "ortho") * view_as_complex(complex_weight)
          y = reshape(irfft2(z, dims = [1, 2], s = [h, w], norm = "ortho"), [B, h * w, dim])
          s = einsum("b l d, d n -> b l n", y, exp(A_log))
          values, indices = topk(s, 2)
          return y * sigmoid(dt_bias) + sum(where(s > 0, s, 0.0), [2], keepdim = true) + max(gather(s, 2, indices), [2], keepdim = true)
        }
        model m() (x: [2, 12, 8]) -> [2, 12, 8] { f = gf(3, 4, 8) }
        """;

    readonly string[] _seeds;
    readonly int _seed;

    public FuzzInputs(string repoRoot, int seed)
    {
        _seed = seed;
        var models = Directory.GetFiles(Path.Combine(repoRoot, "models"), "*.mix").OrderBy(p => p, StringComparer.Ordinal).Select(File.ReadAllText);
        var docs = Regex.Matches(File.ReadAllText(Path.Combine(repoRoot, "docs", "language.md")).Replace("\r\n", "\n"), "```mix[^\n]*\n(.*?)```", RegexOptions.Singleline)
            .Select(m => m.Groups[1].Value);
        _seeds = models.Concat(docs).Append(TensorMathSeed).Where(s => s.Trim().Length > 0).ToArray();
    }

    /// <summary>The input at <paramref name="index"/>.</summary>
    public FuzzInput Get(long index)
    {
        var rnd = new Random(unchecked((int)(index * 1_000_003 + _seed * 7_919)));
        int pick = rnd.Next(100);
        FuzzInput input = pick switch
        {
            < 40 => new FuzzInput(index, "mutation", One(Mutator.Mutate(_seeds[rnd.Next(_seeds.Length)], rnd))),
            < 75 => new FuzzInput(index, "generated", One(new ProgramGenerator(rnd).File())),
            < 90 => Family(index, rnd),
            _ => new FuzzInput(index, "imports", ImportGraph(rnd)),
        };
        return input.Length <= MaxLength ? input : input with { Files = Clip(input.Files) };
    }

    static IReadOnlyList<SourceText> One(string text) => new[] { new SourceText("fuzz.mix", text) };

    static IReadOnlyList<SourceText> Clip(IReadOnlyList<SourceText> files)
    {
        var result = new List<SourceText>();
        int left = MaxLength;
        foreach (var f in files)
        {
            if (left <= 0) break;
            result.Add(f.Text.Length <= left ? f : new SourceText(f.Path, f.Text.Substring(0, left)));
            left -= f.Text.Length;
        }
        return result;
    }

    static FuzzInput Family(long index, Random rnd)
    {
        var family = HostileFamilies.All[rnd.Next(HostileFamilies.All.Count)];
        int max = Math.Max(1, family.Sizes[^1]);
        // Log-uniform sizes, so small, middling and largest members all come up.
        int size = (int)Math.Round(Math.Exp(rnd.NextDouble() * Math.Log(max + 1))) - 1;
        var files = family.Build(Math.Max(family.Sizes[0], size)).ToList();
        if (rnd.Next(4) == 0 && files.Count == 1) files[0] = new SourceText(files[0].Path, Mutator.Mutate(files[0].Text, rnd));
        return new FuzzInput(index, "family:" + family.Name, files);
    }

    static IReadOnlyList<SourceText> ImportGraph(Random rnd)
    {
        int n = 2 + rnd.Next(rnd.Next(2) == 0 ? 6 : 60);
        var files = new List<SourceText>();
        for (int i = 0; i < n; i++)
        {
            var sb = new StringBuilder();
            int imports = rnd.Next(4);
            for (int k = 0; k < imports; k++) sb.Append($"import \"{(rnd.Next(8) == 0 ? "dir/../" : "")}f{rnd.Next(n + 1)}.mix\"\n");
            var gen = new ProgramGenerator(rnd, $"b{i}_", Enumerable.Range(0, n).Where(j => j != i).Select(j => $"b{j}_0").ToArray());
            sb.Append(gen.File());
            files.Add(new SourceText($"f{i}.mix", sb.ToString()));
        }
        return files;
    }
}

/// <summary>Token-level mutations of a file (deleted, duplicated, swapped tokens, truncation, random bytes, huge
/// numbers, deep brackets), and structural ones: a line repeated many times, a statement that uses its own name,
/// an expression wrapped in deep nesting, a long chain appended.</summary>
public static class Mutator
{
    static readonly Regex TokenPattern = new(@"[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?([eE][-+]?\d+)?|\s+|//[^\n]*|""[^""\n]*""|.", RegexOptions.Compiled);
    static readonly Regex Binding = new(@"^(\s*)([a-z_][a-z0-9_]*)\s*=\s*(.+)$", RegexOptions.Multiline | RegexOptions.Compiled);

    public static string Mutate(string text, Random rnd)
    {
        if (rnd.Next(4) == 0) text = Structural(text, rnd);
        var tokens = TokenPattern.Matches(text).Select(m => m.Value).ToList();
        int mutations = rnd.Next(4);
        for (int m = 0; m < mutations && tokens.Count > 0; m++)
        {
            int at = rnd.Next(tokens.Count);
            switch (rnd.Next(9))
            {
                case 0: tokens.RemoveAt(at); break;
                case 1: tokens.Insert(at, tokens[rnd.Next(tokens.Count)]); break;
                case 2:
                {
                    int other = rnd.Next(tokens.Count);
                    (tokens[at], tokens[other]) = (tokens[other], tokens[at]);
                    break;
                }
                case 3: tokens.RemoveRange(at, tokens.Count - at); break;
                case 4:
                {
                    var bytes = new byte[1 + rnd.Next(8)];
                    rnd.NextBytes(bytes);
                    tokens.Insert(at, Encoding.Latin1.GetString(bytes));
                    break;
                }
                case 5: tokens.Insert(at, HugeNumber(rnd)); break;
                case 6:
                {
                    int depth = rnd.Next(2) == 0 ? 10 + rnd.Next(60) : 1000 + rnd.Next(20000);
                    tokens.Insert(at, new string("([{"[rnd.Next(3)], depth));
                    break;
                }
                case 7: tokens.Insert(at, new[] { "x", "|>", "..", "=", "@", "->", "if", "for", "{", "}", ";", "\n", "not", "-", "[0]" }[rnd.Next(15)]); break;
                default:
                    if (tokens[at].Length > 0)
                    {
                        var chars = tokens[at].ToCharArray();
                        chars[rnd.Next(chars.Length)] = (char)rnd.Next(32, 127);
                        tokens[at] = new string(chars);
                    }
                    break;
            }
        }
        return string.Concat(tokens);
    }

    static string Structural(string text, Random rnd)
    {
        var bindings = Binding.Matches(text);
        if (bindings.Count == 0) return text;
        var b = bindings[rnd.Next(bindings.Count)];
        string indent = b.Groups[1].Value, name = b.Groups[2].Value, value = b.Groups[3].Value.TrimEnd();
        int n = 1 + (int)Math.Exp(rnd.NextDouble() * Math.Log(3000));
        string replacement = rnd.Next(6) switch
        {
            // The binding applies or uses itself.
            0 => $"{indent}{name} = {{ return x |> {name} }}",
            1 => $"{indent}{name} = {value} |> {name}",
            // Repeated many times, each use of the previous.
            2 => string.Concat(Enumerable.Repeat($"{indent}{name} = {name} * {name}\n", Math.Min(n, 64))) + $"{indent}{name} = {value}",
            // Deep nesting around the value.
            3 => $"{indent}{name} = " + string.Concat(Enumerable.Repeat("if true then ", Math.Min(n, 600))) + value + string.Concat(Enumerable.Repeat(" else 0", Math.Min(n, 600))),
            // A long chain.
            4 => $"{indent}{name} = {value}" + string.Concat(Enumerable.Repeat(" + " + value.Split(' ')[0], Math.Min(n, 3000))),
            _ => string.Concat(Enumerable.Repeat(b.Value.TrimEnd() + "\n", Math.Min(n, 2000))),
        };
        return text.Substring(0, b.Index) + replacement + text.Substring(b.Index + b.Length);
    }

    static string HugeNumber(Random rnd) => rnd.Next(4) switch
    {
        0 => "99999999999999999999999999",
        1 => "1e999",
        2 => "9223372036854775807",
        _ => new string('9', 1 + rnd.Next(400)),
    };
}
