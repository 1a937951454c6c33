using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MetaFormerTests
{
    private static void AssertMatchesExpected(Func<MetaFormer> build, string file, double paperMillions)
    {
        using var noGrad = torch.no_grad();
        using var model = build();
        var expected = TestUtil.ExpectedLines(file);
        var actual = TestUtil.KeyLines(model);
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], actual[i]);

        long expectedCount = expected.Sum(l => l[(l.IndexOf('[') + 1)..^1].Split(',').Aggregate(1L, (a, s) => a * long.Parse(s, System.Globalization.CultureInfo.InvariantCulture)));
        long count = TestUtil.ParameterCount(model);
        Assert.Equal(expectedCount, count);
        Assert.InRange(count / 1e6, paperMillions * 0.995, paperMillions * 1.005);
    }

    [Fact] public void PoolFormerS12MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.PoolFormerS12(), "poolformer_s12.keys.txt", 11.9);
    [Fact] public void ConvFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.ConvFormerS18(), "convformer_s18.keys.txt", 26.8);
    [Fact] public void CAFormerS18MatchesTimmKeysAndCount() => AssertMatchesExpected(() => MetaFormer.CAFormerS18(), "caformer_s18.keys.txt", 26.3);
}
