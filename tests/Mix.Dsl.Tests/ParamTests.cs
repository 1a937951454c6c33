using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>param and buffer: names are state-dict keys, shapes are checked, inits broadcast to the declared shape.</summary>
public class ParamTests
{
    static CheckedDefinition Check(string text, string name)
    {
        var c = Repo.Compile(text);
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        return c.Find(name)!;
    }

    static Diagnostics.Diagnostic Single(string text, string id, out string spanText)
    {
        var diagnostics = Repo.Compile(text).Diagnostics.Where(d => d.Severity == Diagnostics.Severity.Error).ToList();
        var d = Assert.Single(diagnostics);
        Assert.Equal(id, d.Id);
        spanText = text.Substring(d.Span.Start, d.Span.Length);
        return d;
    }

    const string Ssm = """
        block ssm(dim: int, d_state: int = 16, dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4)
          (x: [B, L, dim]) -> [B, L, dim]
        {
          A_log = param([dim, d_state], init = log(arange(1, d_state + 1)))
          D = param([dim], init = ones)
          dt_bias = param([dim], init = inv_softplus(clamp(exp(uniform(log(dt_min), log(dt_max))), min = dt_init_floor)))
          mix = param([d_state, d_state], init = normal(std = 1), frozen = true)
          pos = buffer([1, 1, dim], init = zeros, persistent = false)
          steps = buffer([d_state], init = arange(0, d_state))
          a = exp(A_log)
          h = einsum("b l d, d n -> b l n", x, a)
          h = einsum("b l n, n m -> b l m", h, mix)
          y = x * D + sum(h, [2], keepdim = true) + pos + dt_bias
          return y
        }
        model m() (x: [2, 5, 8]) -> [2, 5, 8] { s = ssm(8) }
        """;

    [Fact]
    public void Weights_are_keys_of_their_module_with_their_shapes()
    {
        var def = Check(Ssm, "m");
        var keys = def.Root!.AllWeights().Select(w => $"{w.Key}:{w.Weight.ShapeText}:{(w.Weight.IsBuffer ? "buffer" : "param")}").ToList();
        Assert.Equal(new[]
        {
            "s.A_log:[8, 16]:param", "s.D:[8]:param", "s.dt_bias:[8]:param", "s.mix:[16, 16]:param", "s.steps:[16]:buffer",
        }, keys);
        // A non-persistent buffer is no key; frozen parameters are still parameters.
        Assert.Equal(8 * 16 + 8 + 8 + 16 * 16, def.Root.ParameterCount());
    }

    [Fact]
    public void Init_that_does_not_broadcast_names_both_shapes()
    {
        const string text = """
            block b(dim: int = 4, n: int = 3) (x: [B, dim]) -> [B, dim] {
              w = param([dim, n], init = log(arange(1, dim + 1)))
              return x
            }
            """;
        var d = Single(text, "MIX0301", out var span);
        Assert.Contains("[4] does not broadcast to the declared [4, 3]", d.Message);
        Assert.StartsWith("param(", span);
    }

    [Fact]
    public void Initializer_outside_an_init_is_located()
    {
        const string text = "block b(dim: int) (x: [B, dim]) -> [B, dim] { return x + normal(std = 2) }\n";
        var d = Single(text, "MIX0220", out var span);
        Assert.Equal("normal(std = 2)", span);
        Assert.Contains("param", d.Message);
    }

    [Fact]
    public void Unbound_param_is_rejected()
    {
        const string text = "block b(dim: int) (x: [B, dim]) -> [B, dim] { return x * param([dim]) }\n";
        var d = Single(text, "MIX0402", out _);
        Assert.Contains("bind it to a name", d.Message);
    }

    [Fact]
    public void Param_names_are_unique_with_layers()
    {
        const string text = """
            block b(dim: int) (x: [B, dim]) -> [B, dim] {
              w = linear(dim, dim)
              w = param([dim])
              return x
            }
            """;
        var d = Single(text, "MIX0107", out var span);
        Assert.Equal("w", span);
    }

    [Fact]
    public void Dtype_and_sizes_are_checked()
    {
        Single("block b(dim: int) (x: [B, dim]) -> [B, dim] {\n  w = param([dim], dtype = \"half\")\n  return x\n}\n", "MIX0205", out _);
        Single("block b(dim: int) (x: [B, dim]) -> [B, dim] {\n  w = param([0, dim])\n  return x\n}\n", "MIX0205", out _);
        var d = Single("block b(dim: int) (x: [B, dim]) -> [B, dim] {\n  w = param([dim], init = \"zeros\")\n  return x\n}\n", "MIX0204", out _);
        Assert.Contains("initializer", d.Message);
    }

    [Fact]
    public void Complex_params_hold_complex_values()
    {
        var def = Check("""
            block gf(h: int, w: int, dim: int) (x: [B, h, w, dim]) -> [B, h, w, dim] {
              weight = param([h, w / 2 + 1, dim, 2], init = normal(std = 0.02))
              y = rfft2(x, dims = [1, 2], norm = "ortho") * view_as_complex(weight)
              return irfft2(y, dims = [1, 2], s = [h, w], norm = "ortho")
            }
            model m() (x: [2, 4, 6, 8]) -> [2, 4, 6, 8] { f = gf(4, 6, 8) }
            """, "m");
        Assert.Equal("f.weight:[4, 4, 8, 2]", string.Join(",", def.Root!.AllWeights().Select(w => $"{w.Key}:{w.Weight.ShapeText}")));
        var c = Repo.Compile("block b(n: int) (x: [B, n]) -> [B, n] {\n  z = param([n], dtype = \"complex\", init = normal())\n  return x + log(z)\n}\n");
        Assert.Equal("MIX0309", Assert.Single(c.Diagnostics).Id);
    }
}
