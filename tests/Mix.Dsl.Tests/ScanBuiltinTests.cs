using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>The scan primitives in .mix: shape contracts on symbolic shapes, tuple results, located errors.</summary>
public class ScanBuiltinTests
{
    static CheckedDefinition Check(string text, string name)
    {
        var c = Repo.Compile(text);
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        return c.Find(name)!;
    }

    static Mix.Dsl.Diagnostics.Diagnostic Single(string text, string id)
    {
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal(id, d.Id);
        return d;
    }

    [Fact]
    public void SsdScanGivesOutputAndStateOnSymbolicShapes()
    {
        var def = Check("""
            block ssd(chunk: int = 32)
              (x: [Bt, L, H, P], dt: [Bt, L, H], a: [H], b: [Bt, L, G, N], c: [Bt, L, G, N], d: [H], h0: [Bt, H, P, N]) -> [Bt, H, P, N]
            {
              y, state = ssd_scan(x, dt, a, b, c, chunk_size = chunk, D = d, z = x, dt_bias = d, dt_softplus = true, initial_state = h0)
              return state
            }
            block ssd_y() (x: [Bt, L, H, P], dt: [Bt, L, H], a: [H], b: [Bt, L, G, N], c: [Bt, L, G, N]) -> [Bt, L, H, P] {
              y, state = ssd_scan(x, dt, a, b, c)
              return y
            }
            """, "ssd");
        Assert.Equal("[Bt, H, P, N]", def.Output!.ToString());
    }

    [Fact]
    public void SsdScanNamesTheOperandThatDoesNotFit()
    {
        const string text = """
            block ssd() (x: [Bt, L, H, P], dt: [Bt, L, P], a: [H], b: [Bt, L, G, N]) -> [Bt, L, H, P] {
              y, state = ssd_scan(x, dt, a, b, b)
              return y
            }
            """;
        var d = Single(text, "MIX0302");
        Assert.Contains("ssd_scan expects dt = [b, l, h] = [Bt, L, H] but got [Bt, L, P]", d.Message);
        Assert.Equal("ssd_scan(x, dt, a, b, b)", text.Substring(d.Span.Start, d.Span.Length));
    }

    [Fact]
    public void SsdScanGroupsMustDivideHeads()
    {
        var d = Single("""
            block ssd() (x: [2, 9, 6, 4], dt: [2, 9, 6], a: [6], b: [2, 9, 4, 8]) -> [2, 9, 6, 4] {
              y, state = ssd_scan(x, dt, a, b, b)
              return y
            }
            """, "MIX0206");
        Assert.Contains("groups of B and C must divide the heads: 4 does not divide 6", d.Message);
    }

    [Fact]
    public void SsdScanStateMustMatch()
    {
        var d = Single("""
            block ssd() (x: [Bt, L, H, P], dt: [Bt, L, H], a: [H], b: [Bt, L, G, N], h0: [Bt, H, N, P]) -> [Bt, L, H, P] {
              y, state = ssd_scan(x, dt, a, b, b, initial_state = h0)
              return y
            }
            """, "MIX0302");
        Assert.Contains("initial_state = [b, h, p, n] = [Bt, H, P, N] but got [Bt, H, N, P]", d.Message);
    }

    [Fact]
    public void OptionalTensorsArePassedByName()
    {
        var d = Single("""
            block s() (u: [Bt, D, L], delta: [Bt, D, L], a: [D, N], b: [Bt, N, L], dd: [D]) -> [Bt, D, L] {
              return selective_scan(u, delta, a, b, b, dd)
            }
            """, "MIX0207");
        Assert.Contains("pass the optional tensors by name: D = ..., z = ..., delta_bias = ...", d.Message);
    }

    [Fact]
    public void SelectiveScanKeepsUsShape()
    {
        var def = Check("""
            block s() (u: [Bt, D, L], delta: [Bt, D, L], a: [D, N], b: [Bt, N, L], dd: [D]) -> [Bt, D, L] {
              return selective_scan(u, delta, a, b, b, D = dd, z = u, delta_bias = dd, delta_softplus = true)
            }
            """, "s");
        Assert.Equal("[Bt, D, L]", def.Output!.ToString());
        var d = Single("""
            block s() (u: [Bt, D, L], delta: [Bt, D, L], a: [D, N], b: [Bt, L, N]) -> [Bt, D, L] {
              return selective_scan(u, delta, a, b, b)
            }
            """, "MIX0302");
        Assert.Contains("selective_scan expects B = [b, n, L] = [Bt, N, L] but got [Bt, L, N]", d.Message);
    }

    [Fact]
    public void GlaScanGivesOutputAndState()
    {
        var def = Check("""
            block gla() (q: [Bt, T, H, K], v: [Bt, T, H, V], g: [Bt, T, H, K], s0: [Bt, H, K, V]) -> [Bt, T, H, V] {
              o, state = gla_scan(q, q, v, g, scale = 1.0, chunk_size = 16, initial_state = s0)
              return o
            }
            block gla_state() (q: [Bt, T, H, K], v: [Bt, T, H, V], g: [Bt, T, H, K]) -> [Bt, H, K, V] {
              o, state = gla_scan(q, q, v, g)
              return state
            }
            """, "gla_state");
        Assert.Equal("[Bt, H, K, V]", def.Output!.ToString());
        var d = Single("""
            block gla() (q: [Bt, T, H, K], v: [Bt, T, H, V], g: [Bt, T, H, V]) -> [Bt, T, H, V] {
              o, state = gla_scan(q, q, v, g)
              return o
            }
            """, "MIX0302");
        Assert.Contains("gla_scan expects g = [b, T, h, K] = [Bt, T, H, K] but got [Bt, T, H, V]", d.Message);
    }

    [Fact]
    public void ConvolutionsCheckTheirFilters()
    {
        var def = Check("""
            block conv() (u: [Bt, D, L], k: [D, L], w: [D, 4], bias: [D]) -> [Bt, D, L] {
              y = fft_conv(u, k) + fft_conv(u, k, causal = true)
              return causal_conv1d(y, w, bias = bias, activation = "silu")
            }
            """, "conv");
        Assert.Equal("[Bt, D, L]", def.Output!.ToString());
        Assert.Contains("odd length ≤ 2L − 1 = 15; got 8", Single("""
            block conv() (u: [2, 3, 8], k: [3, 8]) -> [2, 3, 8] { return fft_conv(u, k, causal = false) }
            """, "MIX0302").Message);
        Assert.Contains("causal filter of 9 taps is longer than the 8 steps", Single("""
            block conv() (u: [2, 3, 8], k: [3, 9]) -> [2, 3, 8] { return fft_conv(u, k) }
            """, "MIX0302").Message);
        Assert.Contains("causal_conv1d expects weight = [d, W] = [D, W] but got [E, 4]", Single("""
            block conv() (u: [Bt, D, L], w: [E, 4]) -> [Bt, D, L] { return causal_conv1d(u, w) }
            """, "MIX0302").Message);
        Assert.Contains("activation must be none, \"silu\" or \"swish\"; got \"gelu\"", Single("""
            block conv() (u: [Bt, D, L], w: [D, 4]) -> [Bt, D, L] { return causal_conv1d(u, w, activation = "gelu") }
            """, "MIX0205").Message);
    }
}
