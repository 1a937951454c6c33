using System.Linq;
using Xunit;

namespace Mix.Dsl.Tests;

/// <summary>Shape inference through the constructs; errors name both shapes at the place they happen.</summary>
public class ShapeInferenceTests
{
    static CheckedDefinition Check(string text, string name)
    {
        var c = Repo.Compile(text);
        Assert.Empty(c.Diagnostics.Select(d => d.ToString()));
        return c.Find(name)!;
    }

    [Fact]
    public void ResidualMismatchNamesBothShapes()
    {
        const string text = """
            block b(dim: int = 64) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              conv = conv2d(dim, 2 * dim, kernel_size = 1)
              return x + conv(x)
            }
            """;
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal("MIX0301", d.Id);
        Assert.Contains("adds [B, 128, H, W] to [B, 64, H, W]", d.Message);
        Assert.Equal("x + conv(x)", text.Substring(d.Span.Start, d.Span.Length));
    }

    [Fact]
    public void ConvolutionArithmeticIsExactForConcreteSizes()
    {
        var def = Check("""
            model m() (x: [2, 3, 225, 225]) -> [2, 8, 56, 56] {
              conv = conv2d(3, 8, kernel_size = 7, stride = 4, padding = 2)
            }
            """, "m");
        Assert.Equal("[2, 8, 56, 56]", def.Output!.ToString()); // (225 + 4 − 7) // 4 + 1
    }

    [Fact]
    public void SignatureSymbolsAreSolvedFromArithmetic()
    {
        // The callee's input is written [B, C, H/2, W/2]; H is solved from the caller's actual size.
        var c = Repo.Compile("""
            block half(c: int) (x: [B, c, H, W]) -> [B, c, H/2, W/2] {
              conv = conv2d(c, c, kernel_size = 3, stride = 2, padding = 1)
              return conv(x)
            }
            block quarter(c: int) (x: [B, c, H, W]) -> [B, c, H/4, W/4] {
              a = half(c)
              b = half(c)
              return b(a(x))
            }
            """);
        Assert.Empty(c.Diagnostics);
        Assert.Equal("[B, c, H/4, W/4]", c.Find("quarter")!.Output!.ToString());
    }

    [Fact]
    public void CalleeInputMismatchIsReportedAtTheCallSite()
    {
        const string text = """
            block inner(c: int) (x: [B, c, L]) -> [B, c, L] { return x }
            block outer(c: int = 8) (x: [B, c, L]) -> [B, c, L] {
              i = inner(2 * c)
              return i(x)
            }
            """;
        var d = Assert.Single(Repo.Compile(text).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("inner expects x: [B, c, L] but got [B, 8, L]: axis 1 should be 16, not 8", d.Message);
        Assert.Equal("i(x)", text.Substring(d.Span.Start, d.Span.Length));
    }

    [Fact]
    public void SplitConcatGatingAndLayouts()
    {
        var def = Check("""
            block gated(dim: int = 96, hidden: int = 256, conv_channels: int = 96)
              (x: [B, H, W, dim]) -> [B, H, W, dim]
            {
              norm = layernorm(dim)
              fc1 = linear(dim, 2 * hidden)
              conv = conv2d(conv_channels, conv_channels, kernel_size = 7, padding = 3, groups = conv_channels)
              fc2 = linear(hidden, dim)
              g, i, c = split(fc1(norm(x)), [hidden, hidden - conv_channels, conv_channels], -1)
              c = c |> permute([0, 3, 1, 2]) |> conv |> permute([0, 2, 3, 1])
              return x + fc2(gelu(g) * concat([i, c], -1))
            }
            """, "gated");
        Assert.Equal("[B, H, W, 96]", def.Output!.ToString());
        Assert.Equal(new[] { "norm.weight", "norm.bias", "fc1.weight", "fc1.bias", "conv.weight", "conv.bias", "fc2.weight", "fc2.bias" },
            def.Root!.AllWeights().Select(w => w.Key));
    }

    [Fact]
    public void TokensAndImageRoundTrip()
    {
        var def = Check("""
            block b(dim: int = 32) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              attn = attention(dim = dim)
              return image(attn(tokens(x)), H, W)
            }
            """, "b");
        Assert.Equal("[B, 32, H, W]", def.Output!.ToString());
    }

    [Fact]
    public void AttentionOnImagesIsAnErrorNamingTheContract()
    {
        var d = Assert.Single(Repo.Compile("""
            block b(dim: int = 32) (x: [B, dim, H, W]) -> [B, dim, H, W] {
              attn = attention(dim = dim)
              return attn(x)
            }
            """).Diagnostics);
        Assert.Equal("MIX0302", d.Id);
        Assert.Contains("attention expects [B, N, dim] (rank 3) but got [B, 32, H, W]", d.Message);
    }

    [Fact]
    public void RepeatMustKeepTheShape()
    {
        var d = Assert.Single(Repo.Compile("""
            block b(dim: int = 8) (x: [B, dim]) -> [B, dim] {
              layers = 3 x linear(dim, 2 * dim)
              return layers(x)
            }
            """).Diagnostics);
        Assert.Equal("MIX0304", d.Id);
        Assert.Contains("maps [B, 8] to [B, 16]", d.Message);
    }

    [Fact]
    public void InceptionMixerFromTheDocsChecks()
    {
        var def = Check("""
            mixer inception(branch_ratio: float = 0.125)
              (x: [B, dim, H, W]) -> [B, dim, H, W]
            {
              gc = int(dim * branch_ratio)
              dwconv_hw = conv2d(gc, gc, kernel_size = 3, padding = 1, groups = gc)
              dwconv_w = conv2d(gc, gc, kernel_size = 11, padding = 5, groups = gc)
              x_id, x_hw, x_w = split(x, [dim - 2 * gc, gc, gc], 1)
              return concat([x_id, dwconv_hw(x_hw), dwconv_w(x_w)], 1)
            }
            model m() (x: [B, 64, 14, 14]) -> [B, 64, 14, 14] {
              mix = inception(dim = 64)
              return mix(x)
            }
            """, "m");
        Assert.Equal(new[] { "mix.dwconv_hw.weight [8, 1, 3, 3]", "mix.dwconv_hw.bias [8]", "mix.dwconv_w.weight [8, 1, 11, 11]", "mix.dwconv_w.bias [8]" },
            def.Root!.AllWeights().Select(w => w.Key + " " + w.Weight.ShapeText));
    }

    [Fact]
    public void AnnotationsRenameKeysAndMarkFusedOff()
    {
        var def = Check("""
            model m() (x: [B, 4]) -> [B, 4] {
              @key("backbone.head") @fused(false) fc = linear(4, 4)
              return fc(x)
            }
            """, "m");
        Assert.Equal(new[] { "backbone.head.weight", "backbone.head.bias" }, def.Root!.AllWeights().Select(w => w.Key));
        Assert.True(def.Root.Children.Single().FusedDisabled);
    }
}
