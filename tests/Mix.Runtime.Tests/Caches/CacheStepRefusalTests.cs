using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// A cache step refused for its input (no room in a fixed-capacity KV slot, another batch, a mask of the wrong shape,
/// a token id outside the vocabulary, a cache of another model) throws a managed exception before any slot changes:
/// every slot keeps its counts and tensors, and the next valid step gives exactly the logits of a fresh cache fed the
/// same tokens. (Before: slots advanced unevenly and the next step failed natively; a quantized fixed-capacity cache
/// accepted the overflow and drifted silently; a batch mismatch reached a native reshape after the cache changed.)
/// </summary>
public sealed class CacheStepRefusalTests
{
    private static KvCacheOptions Fixed(int capacity, bool quantized) => new()
    {
        InitialCapacity = capacity,
        FixedCapacity = true,
        // G = 4, R = 0: a block is quantized as soon as four tokens are held, so the step after the refusal packs one.
        Quantization = quantized ? new KvQuantizationOptions { Mode = KvQuantMode.Kivi4, GroupSize = 4, ResidualLength = 0 } : null,
    };

    /// <summary>Everything a step may change, as (description, tensor clone) pairs.</summary>
    internal static List<(string what, Tensor? value)> Snapshot(InferenceCache cache)
    {
        var list = new List<(string, Tensor?)>();
        foreach (var s in cache.Slots)
        {
            var head = $"layer {s.LayerIndex}: seen {s.TokensSeen}, rows [{string.Join(",", s.RowTokens)}]";
            switch (s)
            {
                case QuantizedKvCacheSlot q:
                    list.Add(($"{head}, entries {q.Count}, tail {q.TailLength}, blocks {q.BlockCount}", null));
                    if (q.Count > 0)
                    {
                        var (k, v) = q.DequantizedKeysValues();
                        list.Add(("keys", k));
                        list.Add(("values", v));
                    }
                    break;
                case KvCacheSlot kv:
                    list.Add(($"{head}, entries {kv.Count}, capacity {kv.Capacity}", null));
                    break;
                case MambaCacheSlot m:
                    list.Add(($"{head}, conv {m.Conv.TokensSeen}, ssm {m.Ssm.TokensSeen}", null));
                    list.Add(("conv", m.Conv.State.clone()));
                    list.Add(("ssm", m.Ssm.State.clone()));
                    break;
                default:
                    list.Add((head, null));
                    break;
            }
        }
        return list;
    }

    internal static void AssertUnchanged(List<(string what, Tensor? value)> before, InferenceCache cache)
    {
        var after = Snapshot(cache);
        Assert.Equal(before.Select(b => b.what), after.Select(a => a.what));
        for (int i = 0; i < before.Count; i++)
            if (before[i].value is Tensor b) Assert.True(TestUtil.Same(after[i].value!, b), $"{before[i].what} changed");
    }

    [Theory]
    [InlineData("attention", false)]
    [InlineData("attention", true)]
    [InlineData("hybrid", false)]
    [InlineData("hybrid", true)]
    public void AFixedCapacityCacheRefusesTheOverflowingStepBeforeTouchingAnything(string kind, bool quantized)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        using var ids = RandomIds(1, 5, 40, 21);
        var kv = Fixed(4, quantized);
        using var cache = lm.CreateCache(1, kv);
        using (var prefix = ids.narrow(1, 0, 3)) lm.Forward(prefix, cache).Dispose();
        var before = Snapshot(cache);

        using (var two = ids.narrow(1, 3, 2))
        {
            var e = Assert.Throws<InvalidOperationException>(() => lm.Forward(two, cache));
            Assert.Contains("is full: it holds 3 of 4 positions and 2 new tokens do not fit", e.Message);
        }
        AssertUnchanged(before, cache);

        // The next fitting step continues exactly as a fresh cache fed the same tokens.
        using var next = ids.narrow(1, 3, 1);
        using var got = lm.Forward(next, cache);
        using var fresh = lm.CreateCache(1, kv);
        using (var prefix = ids.narrow(1, 0, 3)) lm.Forward(prefix, fresh).Dispose();
        using var expected = lm.Forward(next, fresh);
        Assert.True(TestUtil.Same(got, expected), $"after the refusal the logits differ by {RelErr(got, expected)}");
        if (quantized) Assert.Equal(1, cache.Slots.OfType<QuantizedKvCacheSlot>().First().BlockCount);
    }

    [Fact]
    public void AQuantizedFixedCapacitySlotRefusesAnUpdateThatDoesNotFit()
    {
        using var noGrad = torch.no_grad();
        using var slot = new QuantizedKvCacheSlot(2, 1, 2, 8, Fixed(4, quantized: true));
        using var k = torch.randn(1, 2, 3, 8);
        slot.Update(k, k).keys.Dispose();
        using var k2 = torch.randn(1, 2, 2, 8);
        var e = Assert.Throws<InvalidOperationException>(() => slot.Update(k2, k2));
        Assert.Contains("layer 2", e.Message);
        Assert.Equal(3, slot.Count);
        Assert.Equal(3, slot.TokensSeen);
    }

    [Theory]
    [InlineData("attention")]
    [InlineData("hybrid")]
    [InlineData("mamba")]
    public void AnotherBatchIsRefusedAndTheCacheIsUnchanged(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        using var ids = RandomIds(2, 4, 40, 8);
        using var cache = lm.CreateCache(2);
        using (var prefix = ids.narrow(1, 0, 2)) lm.Forward(prefix, cache).Dispose();
        var before = Snapshot(cache);

        using var one = RandomIds(1, 1, 40, 9);
        var e = Assert.Throws<ArgumentException>(() => lm.Forward(one, cache));
        Assert.Contains("holds 2 rows, the input has 1", e.Message);
        AssertUnchanged(before, cache);

        using var next = ids.narrow(1, 2, 2);
        using var got = lm.Forward(next, cache);
        using var fresh = lm.CreateCache(2);
        using (var prefix = ids.narrow(1, 0, 2)) lm.Forward(prefix, fresh).Dispose();
        using var expected = lm.Forward(next, fresh);
        Assert.True(TestUtil.Same(got, expected));
    }

    [Fact]
    public void AnAttentionLayerFedAnotherBatchThanItsSlotChangesNothing()
    {
        using var noGrad = torch.no_grad();
        using var attn = new CausalSelfAttention(16, 2);
        using var slot = new KvCacheSlot(0, 2, 2, 8);
        using var x = torch.randn(1, 3, 16);
        var e = Assert.Throws<ArgumentException>(() => attn.Forward(x, slot));
        Assert.Contains("holds 2 rows, the input has 1", e.Message);
        Assert.Equal(0, slot.Count);
        Assert.Equal(0, slot.TokensSeen);
    }

    [Theory]
    [InlineData("attention")]
    [InlineData("hybrid")]
    [InlineData("mamba")]
    public void AMaskOfTheWrongShapeIsRefusedAndTheCacheIsUnchanged(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        using var cache = lm.CreateCache(2);
        using (var prefix = RandomIds(2, 3, 40, 1)) lm.Forward(prefix, cache).Dispose();
        var before = Snapshot(cache);
        using var ids = RandomIds(2, 2, 40, 2);
        foreach (var shape in new[] { new long[] { 2, 3 }, new long[] { 1, 2 }, new long[] { 2 }, new long[] { 2, 2, 1 } })
        {
            using var mask = torch.ones(shape, ScalarType.Int64);
            var e = Assert.Throws<ArgumentException>(() => lm.Forward(ids, cache, mask));
            Assert.Contains("the attention mask must be [2, 2]", e.Message);
            AssertUnchanged(before, cache);
        }
    }

    [Theory]
    [InlineData("attention", 40, "embed_tokens")]
    [InlineData("attention", -1, "embed_tokens")]
    [InlineData("hybrid", 41, "embeddings")]
    [InlineData("mamba", 1000, "embeddings")]
    [InlineData("mamba", -7, "embeddings")]
    public void ATokenIdOutsideTheVocabularyIsRefusedAndTheCacheIsUnchanged(string kind, long id, string layer)
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        using var cache = lm.CreateCache(2);
        using (var prefix = RandomIds(2, 3, 40, 1)) lm.Forward(prefix, cache).Dispose();
        var before = Snapshot(cache);
        using var ids = torch.tensor(new long[] { 1, 2, 3, id }).reshape(2, 2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => lm.Forward(ids, cache));
        Assert.Contains($"token id {id} at [1, 1] is outside the vocabulary of {layer}: ids must lie in [0, 40)", e.Message);
        AssertUnchanged(before, cache);

        // Without a cache too: a managed exception, not a native "index out of range in self".
        e = Assert.Throws<ArgumentOutOfRangeException>(() => model.forward(ids));
        Assert.Contains($"token id {id} at [1, 1]", e.Message);
    }

    [Fact]
    public void ACacheOfAnotherModelIsRefusedBeforeAnyLayerRuns()
    {
        using var noGrad = torch.no_grad();
        using var hybrid = CacheInvariantTests.Build("hybrid");
        using var attention = CacheInvariantTests.Build("attention");
        using var cache = ((ICausalLM)attention).CreateCache(1);   // 2 KV slots; the hybrid needs M, A, M, A
        var before = Snapshot(cache);
        using var ids = RandomIds(1, 2, 40, 3);
        var e = Assert.Throws<ArgumentException>(() => ((ICausalLM)hybrid).Forward(ids, cache));
        Assert.Contains("the cache has 2 slots, the model 4 layers", e.Message);
        AssertUnchanged(before, cache);
    }

    [Fact]
    public void ACausalModelRefusesBadStepsBeforeAnySlotChanges()
    {
        using var noGrad = torch.no_grad();
        torch.manual_seed(4);
        using var module = new TinyMixLM();
        module.eval();
        var lm = new CausalModel(module, 30);
        using var cache = lm.CreateCache(2, new KvCacheOptions { InitialCapacity = 4, FixedCapacity = true });
        using (var prefix = RandomIds(2, 3, 30, 1)) lm.Forward(prefix, cache).Dispose();
        var before = Snapshot(cache);

        using var badId = torch.tensor(new long[] { 1, 30 }).reshape(2, 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => lm.Forward(badId, cache));
        Assert.Contains("token id 30 at [1, 0] is outside the vocabulary of embed: ids must lie in [0, 30)", e.Message);
        using var oneRow = RandomIds(1, 1, 30, 2);
        Assert.Throws<ArgumentException>(() => lm.Forward(oneRow, cache));
        using var two = RandomIds(2, 2, 30, 3);
        Assert.Throws<InvalidOperationException>(() => lm.Forward(two, cache));
        AssertUnchanged(before, cache);
    }
}
