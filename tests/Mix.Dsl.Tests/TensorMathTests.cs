using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>Tensor math built-ins: result shapes and element types, and located diagnostics naming both shapes.</summary>
public class TensorMathTests
{
    /// <summary>The shape of <paramref name="expr"/> in a block over x: [B, L, D] (D = 8, L = 5).</summary>
    static string ShapeOf(string expr, string input = "[2, 5, 8]")
    {
        var text = $"model m() (x: {input}) -> [1] {{\n  y = {expr}\n  return y\n}}\n";
        var c = Repo.Compile(text);
        var errors = c.Diagnostics.Where(d => d.Severity == Diagnostics.Severity.Error && d.Id != "MIX0303").Select(d => d.ToString()).ToList();
        Assert.Empty(errors);
        var mismatch = c.Diagnostics.Single(d => d.Id == "MIX0303").Message;
        // "m returns [..] but declares [1]": the inferred shape is in the message.
        var start = mismatch.IndexOf("returns ", System.StringComparison.Ordinal) + "returns ".Length;
        return mismatch.Substring(start, mismatch.IndexOf(" but", start, System.StringComparison.Ordinal) - start);
    }

    static Diagnostics.Diagnostic Error(string body, string id, out string spanText, string input = "[2, 5, 8]")
    {
        var text = $"model m() (x: {input}) -> {input} {{\n{body}\n}}\n";
        var errors = Repo.Compile(text).Diagnostics.Where(d => d.Severity == Diagnostics.Severity.Error).ToList();
        var d = Assert.Single(errors);
        Assert.Equal(id, d.Id);
        spanText = text.Substring(d.Span.Start, d.Span.Length);
        return d;
    }

    [Theory]
    [InlineData("exp(x) * sigmoid(x) + rsqrt(abs(x) + 1e-5)", "[2, 5, 8]")]
    [InlineData("sin(x) * cos(2 * x)", "[2, 5, 8]")]
    [InlineData("pow(x, 2) + clamp(x, min = 0.1) + logsigmoid(x) + inv_softplus(softplus(x))", "[2, 5, 8]")]
    [InlineData("where(x > 0, x, 0.0)", "[2, 5, 8]")]
    [InlineData("not (x > 0) or x < 1 and x > mean(x, [2], keepdim = true)", "bool[2, 5, 8]")]
    [InlineData("x > mean(x, [2], keepdim = true)", "bool[2, 5, 8]")]
    [InlineData("sum(x, [1])", "[2, 8]")]
    [InlineData("sum(x)", "[]")]
    [InlineData("amax(x, [-1], keepdim = true)", "[2, 5, 1]")]
    [InlineData("max(x, [0, 2])", "[5]")]
    [InlineData("norm(x, [2]) + var(x, [2]) + min(x, [2])", "[2, 5]")]
    [InlineData("log_softmax(x, 1) + cumsum(x, dim = 1)", "[2, 5, 8]")]
    [InlineData("segsum(x)", "[2, 5, 8, 8]")]
    [InlineData("tril(ones_mask(5, 5))", "bool[5, 5]")]
    [InlineData("triu(x, 1)", "[2, 5, 8]")]
    [InlineData("log(arange(1, 9)) * x", "[2, 5, 8]")]
    [InlineData("arange(5)", "long[5]")]
    [InlineData("roll(x, 1, 1) + flip(x, [1])", "[2, 5, 8]")]
    [InlineData("pad(x, [1, 2])", "[2, 5, 11]")]
    [InlineData("repeat(x, [1, 2, 1])", "[2, 10, 8]")]
    [InlineData("expand(unsqueeze(x, 1), [-1, 3, -1, -1])", "[2, 3, 5, 8]")]
    [InlineData("stack([x, x, x], dim = 1)", "[2, 3, 5, 8]")]
    [InlineData("squeeze(unsqueeze(x, -1), -1)", "[2, 5, 8]")]
    [InlineData("select(x, 1, -1)", "[2, 8]")]
    [InlineData("softshrink(narrow(x, 1, 1, 3), lambd = 0.1)", "[2, 3, 8]")]
    [InlineData("x |> exp |> cumsum(dim = 1)", "[2, 5, 8]")]
    [InlineData("einsum(\"b l d, b m d -> b l m\", x, x)", "[2, 5, 5]")]
    [InlineData("einsum(\"bld,bmd->blm\", x, x)", "[2, 5, 5]")]
    [InlineData("rfft(x, dim = 1)", "complex[2, 3, 8]")]
    [InlineData("irfft(rfft(x, dim = 1), dim = 1, n = 5)", "[2, 5, 8]")]
    [InlineData("abs(fft(x)) + real(ifft(fft(x))) + imag(fft(x))", "[2, 5, 8]")]
    [InlineData("view_as_real(rfft2(x, dims = [1, 2]))", "[2, 5, 5, 2]")]
    [InlineData("irfft2(rfft2(x, dims = [1, 2], norm = \"ortho\"), dims = [1, 2], s = [5, 8], norm = \"ortho\")", "[2, 5, 8]")]
    [InlineData("complex(x, x) * rfft(x, dim = 2, n = 14)", "complex[2, 5, 8]")]
    [InlineData("idct(dct(x, norm = \"ortho\"), norm = \"ortho\")", "[2, 5, 8]")]
    public void Result_shapes(string expr, string expected) => Assert.Equal(expected, ShapeOf(expr));

    [Fact]
    public void Topk_gives_values_and_long_indices_that_gather_takes()
    {
        var text = """
            model m() (x: [2, 5, 8]) -> [2, 5, 3] {
              values, indices = topk(x, 3)
              picked = gather(x, 2, indices)
              routed = scatter_add(zeros_like_x(x), 2, indices, values)
              return picked + values
            }
            """;
        // zeros_like_x is no built-in: exactly one unknown name, and no cascade from the tuple.
        var c = Repo.Compile(text);
        Assert.Equal("MIX0101", Assert.Single(c.Diagnostics).Id);
        var ok = Repo.Compile(text.Replace("zeros_like_x(x)", "x"));
        Assert.Empty(ok.Diagnostics);
        var bad = Repo.Compile(text.Replace("gather(x, 2, indices)", "gather(x, 2, values)").Replace("zeros_like_x(x)", "x"));
        Assert.Equal("MIX0309", Assert.Single(bad.Diagnostics).Id);
    }

    [Fact]
    public void Number_functions_keep_working_beside_their_tensor_forms()
    {
        var c = Repo.Compile("""
            model m(sizes: int[] = [2, 3, 4], a: int = 3, b: int = 7, eps: float = 1e-6) (x: [B, sum(sizes)]) -> [B, max(a, b) + min(a, b) - 1] {
              return x + sqrt(eps) * log(2.0)
            }
            """);
        Assert.Empty(c.Diagnostics);
    }

    [Fact]
    public void Broadcast_mismatch_in_a_function_names_both_shapes()
    {
        var d = Error("  return where(x > 0, x, transpose(x, 1, 2))", "MIX0301", out var span);
        Assert.Contains("[2, 5, 8]", d.Message);
        Assert.Contains("[2, 8, 5]", d.Message);
        Assert.StartsWith("where(", span);
    }

    [Fact]
    public void Where_needs_a_bool_condition()
    {
        var d = Error("  return where(x, x, 0.0)", "MIX0309", out _);
        Assert.Contains("bool condition", d.Message);
        Error("  return where(not x, x, 0.0)", "MIX0309", out _);
        Error("  return where(x > 0 and x, x, 0.0)", "MIX0309", out _);
    }

    [Fact]
    public void Bad_axes_are_located()
    {
        Error("  return x + sum(x, [3], keepdim = true)", "MIX0306", out var span);
        Assert.Equal("sum(x, [3], keepdim = true)", span);
        Error("  return squeeze(x, 1)", "MIX0306", out _);
        Error("  return pad(x, [1])", "MIX0306", out _);
        Error("  return unsqueeze(select(x, 1, 5), 1)", "MIX0404", out _);
        Error("  return narrow(x, 1, 3, 3)", "MIX0404", out _);
    }

    [Fact]
    public void Einsum_letter_mismatch_names_the_letter_and_both_sizes()
    {
        var d = Error("  w = param([4, 8])\n  return einsum(\"b l d, d n -> b l n\", x, w)", "MIX0320", out var span);
        Assert.Contains("'d'", d.Message);
        Assert.Contains("is 8 in operand 1", d.Message);
        Assert.Contains("but 4 in operand 2", d.Message);
        Assert.StartsWith("einsum(", span);
    }

    [Theory]
    [InlineData("b l d, d n", "needs '->'")]
    [InlineData("b l, d n -> b n", "names 2 axes but operand 1 is [2, 5, 8]")]
    [InlineData("b l d -> b l d", "1 operand term(s) but 2 tensor(s)")]
    [InlineData("b l d, d n -> b l q", "'q' is in no operand")]
    [InlineData("... d, d n -> ... n", "'...' is not supported")]
    public void Bad_einsum_specs_are_located(string spec, string message)
    {
        var d = Error($"  w = param([8, 4])\n  return einsum(\"{spec}\", x, w)", "MIX0321", out var span);
        Assert.Contains(message, d.Message);
        Assert.StartsWith("einsum(", span);
    }

    [Fact]
    public void Complex_where_real_is_expected_is_located()
    {
        var d = Error("  return log(rfft(x, dim = 1))", "MIX0309", out var span);
        Assert.Contains("needs real values", d.Message);
        Assert.Equal("log(rfft(x, dim = 1))", span);
        Error("  return real(x)", "MIX0309", out _);
        Error("  return irfft(x)", "MIX0309", out _);
    }

    [Fact]
    public void Complex_shapes_in_signatures()
    {
        var c = Repo.Compile("""
            block filt(h: int, w: int, c: int) (z: complex[B, h, w/2+1, c]) -> complex[B, h, w/2+1, c] {
              weight = param([h, w/2+1, c], dtype = "complex", init = normal(std = 0.02))
              return z * weight
            }
            model m() (x: [2, 4, 6, 8]) -> [2, 4, 6, 8] {
              f = filt(4, 6, 8)
              return irfft2(f(rfft2(x, dims = [1, 2])), dims = [1, 2], s = [4, 6])
            }
            """);
        Assert.Empty(c.Diagnostics);
        Assert.Equal("f.weight:[4, 4, 8]", string.Join(",", c.Find("m")!.Root!.AllWeights().Select(w => $"{w.Key}:{w.Weight.ShapeText}")));
        var bad = Repo.Compile("""
            block filt(c: int) (z: complex[B, c]) -> complex[B, c] { return z }
            model m() (x: [2, 8]) -> [2, 8] {
              f = filt(8)
              return f(x)
            }
            """);
        Assert.Equal("MIX0309", Assert.Single(bad.Diagnostics).Id);
    }

    [Fact]
    public void Norm_modes_are_checked()
    {
        var d = Error("  return irfft(rfft(x, norm = \"orto\"), n = 8)", "MIX0205", out _);
        Assert.Contains("\"ortho\"", d.Message);
    }

    [Fact]
    public void Haar_halves_the_image_and_quadruples_channels()
    {
        Assert.Equal("[2, 12, 4, 3]", ShapeOf("haar_dwt2(x)", "[2, 3, 8, 6]"));
        Assert.Equal("[2, 3, 8, 6]", ShapeOf("haar_idwt2(haar_dwt2(x))", "[2, 3, 8, 6]"));
        Error("  return haar_dwt2(x)", "MIX0206", out _, "[2, 3, 7, 6]");
    }
}
