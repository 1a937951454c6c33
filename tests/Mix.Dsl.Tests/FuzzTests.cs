using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Mix.Dsl.Diagnostics;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>
/// The front end never throws and never hangs: 100,000 random mutations of the example files (deleted, duplicated
/// and swapped tokens, truncation, random bytes, huge numbers, deep nesting) each give diagnostics or a model.
/// </summary>
public class FuzzTests
{
    const int Iterations = 100_000;
    static readonly TimeSpan PerInputLimit = TimeSpan.FromSeconds(5);

    /// <summary>A seed with the tensor-math syntax: params, buffers, inits, einsum, complex shapes and spectra.</summary>
    const string TensorMathSeed = """
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

    [Fact]
    public void HundredThousandMutationsNeverThrowOrHang()
    {
        var seeds = Repo.ExampleSources().Select(s => s.Text).Append(TensorMathSeed).ToArray();
        var failures = new ConcurrentBag<string>();
        long slowest = 0;
        Parallel.For(0, Iterations, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var rnd = new Random(i);
            var text = Mutate(seeds[rnd.Next(seeds.Length)], rnd);
            var sw = Stopwatch.StartNew();
            MixCompilation c;
            try
            {
                c = MixCompilation.Create("fuzz.mix", text);
            }
            catch (Exception e)
            {
                failures.Add($"seed {i}: threw {e.GetType().Name}: {e.Message}");
                return;
            }
            sw.Stop();
            InterlockedMax(ref slowest, sw.ElapsedTicks);
            if (sw.Elapsed > PerInputLimit) failures.Add($"seed {i}: took {sw.Elapsed.TotalSeconds:F1} s");
            var internalError = c.Diagnostics.FirstOrDefault(d => d.Id == DiagnosticIds.InternalError.Id);
            if (internalError is not null) failures.Add($"seed {i}: {internalError}");
            bool declaresSomething = c.Files.Any(f => f.Definitions.Count + f.Enums.Count + f.Imports.Count > 0);
            if (c.Diagnostics.Count == 0 && !declaresSomething && text.Trim().Length > 0 && !IsOnlyComments(text))
                failures.Add($"seed {i}: neither diagnostics nor definitions");
            foreach (var d in c.Diagnostics)
            {
                if (d.Span.Start < 0 || d.Span.End > text.Length) failures.Add($"seed {i}: span {d.Span} outside the text ({text.Length})");
            }
        });
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(20)));
    }

    static bool IsOnlyComments(string text) =>
        text.Split('\n').All(l => l.Trim().Trim(';').Trim().Length == 0 || l.TrimStart(' ', '\t', ';').StartsWith("//", StringComparison.Ordinal));

    static void InterlockedMax(ref long target, long value)
    {
        long current;
        while ((current = System.Threading.Interlocked.Read(ref target)) < value)
            if (System.Threading.Interlocked.CompareExchange(ref target, value, current) == current) break;
    }

    static readonly Regex TokenPattern = new(@"[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?([eE][-+]?\d+)?|\s+|//[^\n]*|""[^""\n]*""|.", RegexOptions.Compiled);

    internal static string Mutate(string text, Random rnd)
    {
        var tokens = TokenPattern.Matches(text).Select(m => m.Value).ToList();
        int mutations = 1 + rnd.Next(4);
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
                    var open = "([{"[rnd.Next(3)];
                    tokens.Insert(at, new string(open, depth));
                    break;
                }
                case 7: tokens.Insert(at, new[] { "x", "|>", "..", "=", "@", "->", "if", "for", "{", "}", ";", "\n", "param(", "einsum(", "complex[", "\"b l d, d n -> b l n\"", "rfft2(", "init =" }[rnd.Next(18)]); break;
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

    static string HugeNumber(Random rnd) => rnd.Next(4) switch
    {
        0 => "99999999999999999999999999",
        1 => "1e999",
        2 => "9223372036854775807",
        _ => new string('9', 1 + rnd.Next(400)),
    };
}
