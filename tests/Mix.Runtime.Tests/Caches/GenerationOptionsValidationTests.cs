using System;
using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;

namespace Mix.Runtime.Tests.Caches;

/// <summary>Generation options and ids are checked on the host before any cache is created or touched: an invalid
/// option is an <see cref="ArgumentOutOfRangeException"/> naming it, its value and the allowed range (they used to be
/// accepted silently); a prompt or pad id outside the vocabulary names the id and where it is (it used to be a native
/// "index out of range in self").</summary>
public sealed class GenerationOptionsValidationTests
{
    private static readonly long[][] Prompts = { new long[] { 5, 9, 2 }, new long[] { 7 } };

    public static TheoryData<string, GenerationOptions> InvalidOptions => new()
    {
        { "Temperature = NaN", new GenerationOptions { Temperature = double.NaN } },
        { "Temperature = -1", new GenerationOptions { Temperature = -1 } },
        { "Temperature = ∞", new GenerationOptions { Temperature = double.PositiveInfinity } },
        { "TopK = -3", new GenerationOptions { TopK = -3 } },
        { "TopP = NaN", new GenerationOptions { TopP = double.NaN } },
        { "TopP = 0", new GenerationOptions { TopP = 0 } },
        { "TopP = 1.5", new GenerationOptions { TopP = 1.5 } },
        { "TopP = -0.2", new GenerationOptions { TopP = -0.2 } },
        { "PrefillChunkSize = -2", new GenerationOptions { PrefillChunkSize = -2 } },
        { "MaxNewTokens = -1", new GenerationOptions { MaxNewTokens = -1 } },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void AnInvalidOptionIsRefusedNamingItsValueAndRange(string expected, GenerationOptions options)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("attention");
        var lm = (ICausalLM)model;
        using var cache = lm.CreateCache(2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TextGenerator.Generate(lm, Prompts, options, cache));
        var option = expected.Split(' ')[0];
        Assert.Equal(option, e.ParamName);
        Assert.Contains($"GenerationOptions.{option} = ", e.Message);
        Assert.Contains("it must", e.Message);
        Assert.All(cache.Slots, s => Assert.Equal(0, s.TokensSeen));
        Assert.Throws<ArgumentOutOfRangeException>(() => TextGenerator.Sample(new float[] { 1, 2, 3 }, options, new Random(0)));
    }

    [Theory]
    [InlineData(40, 0, 2)]
    [InlineData(-1, 1, 0)]
    public void APromptIdOutsideTheVocabularyIsNamedWithItsPosition(long id, int row, int position)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("mamba");
        var prompts = Prompts.Select(p => (long[])p.Clone()).ToArray();
        prompts[row][position] = id;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TextGenerator.Generate((ICausalLM)model, prompts));
        Assert.Contains($"token id {id} (prompt {row}, position {position}) is outside the vocabulary: ids must lie in [0, 40)", e.Message);
    }

    [Theory]
    [InlineData(40)]
    [InlineData(-1)]
    public void APadTokenOutsideTheVocabularyIsRefused(long pad)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("hybrid");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TextGenerator.Generate((ICausalLM)model, Prompts, new GenerationOptions { PadTokenId = pad }));
        Assert.Contains($"token id {pad} (GenerationOptions.PadTokenId)", e.Message);
    }

    [Fact]
    public void BoundaryValuesAreValidAndMeanWhatTheDocsSay()
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("attention");
        var lm = (ICausalLM)model;
        // TopK = 0 is no filter: the same draws as keeping every token.
        var all = new GenerationOptions { MaxNewTokens = 6, Temperature = 1.0, TopK = 0, TopP = 1.0, Seed = 9 };
        var everyToken = all with { TopK = 40 };
        Assert.Equal(TextGenerator.Generate(lm, Prompts, all).Tokens, TextGenerator.Generate(lm, Prompts, everyToken).Tokens);
        // Temperature 0 is greedy whatever TopK/TopP say; PrefillChunkSize 0 is the whole prompt at once.
        var greedy = TextGenerator.Generate(lm, Prompts, new GenerationOptions { MaxNewTokens = 5, Temperature = 0, PrefillChunkSize = 0 }).Tokens;
        var greedyChunked = TextGenerator.Generate(lm, Prompts, new GenerationOptions { MaxNewTokens = 5, TopK = 3, TopP = 0.5, PrefillChunkSize = 1 }).Tokens;
        Assert.Equal(greedy, greedyChunked);
        Assert.Empty(TextGenerator.Generate(lm, Prompts, new GenerationOptions { MaxNewTokens = 0 }).Tokens[0]);
        Assert.Equal(2, TextGenerator.Sample(new float[] { 1, 2, 3 }, new GenerationOptions { Temperature = 0 }, new Random(0)));
    }
}
