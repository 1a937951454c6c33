using Mix.Dsl.Semantics;
using Xunit;

namespace Mix.Dsl.Tests;

public class DimTests
{
    static Dim S(string s) => Dim.Symbol(s);
    static Dim C(long v) => Dim.Const(v);

    [Fact]
    public void CanonicalFormMakesEqualDimensionsEqual()
    {
        Assert.Equal(S("H"), S("H").DivideBy(C(4))! * C(4));
        Assert.Equal(S("H") * S("W"), S("W") * S("H"));
        Assert.Equal(S("D") * C(2), S("D") + S("D"));
        Assert.NotEqual(S("H"), S("W"));
        Assert.Equal(C(0), S("H") - S("H"));
    }

    [Fact]
    public void PrintsReadably()
    {
        Assert.Equal("H/4", S("H").DivideBy(C(4))!.ToString());
        Assert.Equal("2*D", (S("D") * C(2)).ToString());
        Assert.Equal("H*W", (S("H") * S("W")).ToString());
        Assert.Equal("H/2 + 1", (S("H").DivideBy(C(2))! + C(1)).ToString());
        Assert.Equal("64", C(64).ToString());
    }

    [Fact]
    public void FloorDivisionIsExactForConstantsAndAssumesDivisibleSymbols()
    {
        // 224 + 2·2 − 7 = 221; 221 // 4 = 55; + 1 = 56 (timm's stem on 224×224).
        Assert.Equal(C(55), (C(224) + C(4) - C(7)).FloorDivideBy(4));
        // Symbolic: (H − 3) // 4 + 1 == H/4 when H is a multiple of 4.
        Assert.Equal(S("H").DivideBy(C(4)), (S("H") - C(3)).FloorDivideBy(4)! + C(1));
    }

    [Fact]
    public void SolvesLinearPatterns()
    {
        var pattern = S("$H").DivideBy(C(4))! + C(1);
        Assert.True(pattern.TryLinearIn("$H", out var coef, out var rest));
        Assert.Equal(new Rational(1, 4), coef);
        Assert.Equal(C(1), rest);
        Assert.False((S("$H") * S("$H")).TryLinearIn("$H", out _, out _));
    }

    [Fact]
    public void OverflowThrowsInsteadOfWrapping()
    {
        Assert.Throws<System.OverflowException>(() => C(long.MaxValue) + C(1));
    }
}
