using System;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Generator.Tests;

/// <summary>
/// Models generated from .mix decode with a cache (prefill, then any number of new tokens per call) through
/// <see cref="CausalModel"/>: the invariant — token by token, or in random chunks, from an empty cache equals one
/// full forward (fp32, 1e-5 relative) — holds for the generated Mamba LM and the generated hybrid LM.
/// </summary>
public class GeneratedDecodingTests
{
    static nn.Module<Tensor, Tensor> Model(string name)
    {
        torch.manual_seed(7);
        nn.Module<Tensor, Tensor> m = name switch
        {
            "mamba" => new Mamba130m(new Mamba130m.Options { VocabSize = 40, DModel = 32, NLayer = 2, DState = 8 }),
            _ => new HybridLm(new HybridLm.Options { VocabSize = 40, DModel = 64, NLayer = 4, AttnEvery = 2 }),
        };
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Theory]
    [InlineData("mamba", 2)]
    [InlineData("hybrid", 4)]
    public void TokenByTokenAndChunkedDecodingEqualTheFullForward(string name, int cachedLayers)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(name);
        var lm = new CausalModel(model, 40);
        Assert.Equal(cachedLayers, lm.CachedLayers);
        var ids = torch.randint(0, 40, new long[] { 2, 13 });
        var full = model.call(ids);

        using (var cache = lm.CreateCache(2))
        {
            var steps = Enumerable.Range(0, 13).Select(t => lm.Forward(ids.narrow(1, t, 1), cache)).ToArray();
            Assert.True(RelErr(torch.cat(steps, 1), full) < 1e-5);
            Assert.All(cache.Slots, s => Assert.Equal(13, s.TokensSeen));

            // The same cache serves a new generation after Reset.
            cache.Reset();
            var rnd = new Random(5);
            var chunks = new System.Collections.Generic.List<Tensor>();
            for (int t = 0; t < 13;)
            {
                int n = Math.Min(13 - t, 1 + rnd.Next(5));
                chunks.Add(lm.Forward(ids.narrow(1, t, n), cache));
                t += n;
            }
            Assert.True(RelErr(torch.cat(chunks, 1), full) < 1e-5);
        }
    }

    [Fact]
    public void GreedyGenerationWithTheCacheEqualsArgmaxWithoutIt()
    {
        using var _ = torch.no_grad();
        var model = Model("hybrid");
        var lm = new CausalModel(model, 40);
        var prompt = new long[] { 3, 14, 15, 9, 2 };
        var result = TextGenerator.Generate(lm, new[] { prompt }, new GenerationOptions { MaxNewTokens = 6 });
        var tokens = prompt.ToList();
        for (int i = 0; i < 6; i++)
        {
            using var logits = model.call(torch.tensor(tokens.ToArray()).unsqueeze(0));
            tokens.Add(logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(tokens.Skip(prompt.Length), result.Tokens[0]);
    }

    [Fact]
    public void ANonCausalModelIsRejectedWithAClearMessage()
    {
        var e = Assert.Throws<ArgumentException>(() => new CausalModel(new PoolformerS12(), 1000));
        Assert.Contains("no causal mixer", e.Message);
    }
}
