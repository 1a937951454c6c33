using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

public class GenerationTests
{
    private static long[] NaiveGreedy(nn.Module<Tensor, Tensor> model, long[] prompt, int steps)
    {
        var seq = prompt.ToList();
        for (int i = 0; i < steps; i++)
        {
            using var ids = torch.tensor(seq.ToArray()).reshape(1, -1);
            using var logits = model.forward(ids);
            using var last = logits.select(1, seq.Count - 1).argmax(-1);
            seq.Add(last.item<long>());
        }
        return seq.Skip(prompt.Length).ToArray();
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("attention")]
    [InlineData("hybrid")]
    public void GreedyEqualsNaiveLoopAndIsDeterministic(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        var lm = (ICausalLM)model;
        var prompt = new long[] { 5, 9, 2, 31, 7 };
        var r1 = TextGenerator.Generate(lm, new[] { prompt }, new GenerationOptions { MaxNewTokens = 8, PrefillChunkSize = 2 });
        var r2 = TextGenerator.Generate(lm, new[] { prompt }, new GenerationOptions { MaxNewTokens = 8 });
        Assert.Equal(NaiveGreedy(model, prompt, 8), r1.Tokens[0]);
        Assert.Equal(r1.Tokens[0], r2.Tokens[0]);
        Assert.True(r1.PrefillTokensPerSecond > 0 && r1.DecodeTokensPerSecond > 0);
        Assert.Equal(5, r1.PrefillTokens);
    }

    [Fact]
    public void TopKOneEqualsGreedyAndSeedsReproduce()
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("hybrid");
        var lm = (ICausalLM)model;
        var prompts = new[] { new long[] { 1, 2, 3 }, new long[] { 4, 5 } };
        var greedy = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = 6 });
        var top1 = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = 6, Temperature = 1.5, TopK = 1, Seed = 3 });
        Assert.Equal(greedy.Tokens, top1.Tokens);
        var opts = new GenerationOptions { MaxNewTokens = 10, Temperature = 1.0, TopK = 20, TopP = 0.9, Seed = 42 };
        var s1 = TextGenerator.Generate(lm, prompts, opts);
        var s2 = TextGenerator.Generate(lm, prompts, opts);
        Assert.Equal(s1.Tokens, s2.Tokens);
        Assert.All(s1.Tokens, t => Assert.Equal(10, t.Length));
    }

    [Fact]
    public void BatchOfDifferentLengthsMatchesRowsAloneAndCacheIsReused()
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("hybrid");
        var lm = (ICausalLM)model;
        var prompts = new[] { new long[] { 1, 2, 3, 4, 5, 6, 7 }, new long[] { 8, 9 }, new long[] { 10, 11, 12, 13 } };
        using var cache = lm.CreateCache(3);
        var batch = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = 5 }, cache);
        var again = TextGenerator.Generate(lm, prompts, new GenerationOptions { MaxNewTokens = 5 }, cache);
        Assert.Equal(batch.Tokens, again.Tokens);
        for (int r = 0; r < 3; r++)
            Assert.Equal(TextGenerator.Generate(lm, new[] { prompts[r] }, new GenerationOptions { MaxNewTokens = 5 }).Tokens[0], batch.Tokens[r]);
    }

    [Fact]
    public void StopTokensEndRows()
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("attention");
        var lm = (ICausalLM)model;
        var prompt = new long[] { 3, 1, 4, 1, 5 };
        var free = TextGenerator.Generate(lm, new[] { prompt }, new GenerationOptions { MaxNewTokens = 8 });
        long stop = free.Tokens[0][2];
        int first = Array.IndexOf(free.Tokens[0], stop);
        var r = TextGenerator.Generate(lm, new[] { prompt }, new GenerationOptions { MaxNewTokens = 8, StopTokens = new[] { stop } });
        Assert.True(r.Stopped[0]);
        Assert.Equal(free.Tokens[0].Take(first + 1), r.Tokens[0]);
    }

    [Fact]
    public void SamplerRespectsTopKAndTopP()
    {
        var logits = new float[] { 0f, 5f, 4.9f, -3f, 1f };
        var rng = new Random(1);
        var seen = new HashSet<long>();
        for (int i = 0; i < 300; i++) seen.Add(TextGenerator.Sample(logits, new GenerationOptions { Temperature = 1, TopK = 2 }, rng));
        Assert.Equal(new HashSet<long> { 1, 2 }, seen);
        seen.Clear();
        for (int i = 0; i < 300; i++) seen.Add(TextGenerator.Sample(logits, new GenerationOptions { Temperature = 1, TopP = 0.3 }, rng));
        Assert.Equal(new HashSet<long> { 1 }, seen);
    }
}
