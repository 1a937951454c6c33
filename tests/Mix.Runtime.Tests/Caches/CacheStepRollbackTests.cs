using System;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// A step that fails after slots were updated (here: the model's own code throws once both mixers ran) rolls every
/// slot back: counts, KV entries (after a sliding-window compaction too), quantized blocks and tail, Mamba states; the
/// next step then gives exactly the logits of a fresh cache fed the same tokens.
/// </summary>
public sealed class CacheStepRollbackTests
{
    public static TheoryData<string> Kinds => new() { "plain", "quantized", "window", "window-quantized", "growing" };

    private static KvCacheOptions Options(string kind) => kind switch
    {
        "plain" => new KvCacheOptions { InitialCapacity = 16, FixedCapacity = true },
        "quantized" => new KvCacheOptions { InitialCapacity = 16, Quantization = Kivi(4, 1) },
        "window" => new KvCacheOptions { SlidingWindow = 3, SinkTokens = 1, InitialCapacity = 8 },
        "window-quantized" => new KvCacheOptions { SlidingWindow = 5, SinkTokens = 1, Quantization = Kivi(4, 0) },
        "growing" => new KvCacheOptions { InitialCapacity = 6 },   // the failed step doubles the buffers
        _ => throw new ArgumentException(kind),
    };

    private static KvQuantizationOptions Kivi(int g, int r) => new() { Mode = KvQuantMode.Kivi4, GroupSize = g, ResidualLength = r };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AStepThatFailsAfterTheMixersRanLeavesEverySlotAsItWas(string kind)
    {
        using var noGrad = torch.no_grad();
        torch.manual_seed(6);
        using var module = new TinyMixLM();
        module.eval();
        var lm = new CausalModel(module, 30);
        var options = Options(kind);
        using var ids = RandomIds(2, 12, 30, 17);
        using var cache = lm.CreateCache(2, options);
        using (var prefix = ids.narrow(1, 0, 5)) lm.Forward(prefix, cache).Dispose();
        var before = CacheStepRefusalTests.Snapshot(cache);

        module.FailAfterMixers = true;
        using (var failing = ids.narrow(1, 5, 3))
        {
            var e = Assert.Throws<InvalidOperationException>(() => lm.Forward(failing, cache));
            Assert.Contains("injected failure", e.Message);
        }
        module.FailAfterMixers = false;
        CacheStepRefusalTests.AssertUnchanged(before, cache);

        using var rest = ids.narrow(1, 5, 7);
        using var got = lm.Forward(rest, cache);
        using var fresh = lm.CreateCache(2, options);
        using (var prefix = ids.narrow(1, 0, 5)) lm.Forward(prefix, fresh).Dispose();
        using var expected = lm.Forward(rest, fresh);
        Assert.True(TestUtil.Same(got, expected), $"{kind}: after the rollback the logits differ by {RelErr(got, expected)}");
        Assert.Equal(CacheStepRefusalTests.Snapshot(fresh).Select(x => x.what), CacheStepRefusalTests.Snapshot(cache).Select(x => x.what));
    }

    [Fact]
    public void AnUncommittedStepRollsBackAndACommittedOneKeepsItsChanges()
    {
        using var noGrad = torch.no_grad();
        using var model = CacheInvariantTests.Build("hybrid");
        var lm = (ICausalLM)model;
        using var cache = lm.CreateCache(1);
        using var ids = RandomIds(1, 4, 40, 2);
        using (var step = cache.BeginStep())
        {
            var mamba = cache.Slot<MambaCacheSlot>(0);
            var kv = cache.Slot<AttentionCacheSlot>(1);
            var state = mamba.Conv.State;
            mamba.Conv.Set(torch.ones_like(state));
            kv.Update(torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8)).keys.Dispose();
            Assert.Equal(2, kv.TokensSeen);
            Assert.Throws<InvalidOperationException>(() => cache.BeginStep());
        }
        Assert.Equal(0, cache.Slot<AttentionCacheSlot>(1).Count);
        Assert.Equal(0, cache.Slot<AttentionCacheSlot>(1).TokensSeen);
        Assert.Equal(0.0, cache.Slot<MambaCacheSlot>(0).Conv.State.abs().sum().item<float>());

        using (var step = cache.BeginStep())
        {
            // The library's Forward opens its own step: inside a caller's step it is refused, not nested.
            var e = Assert.Throws<InvalidOperationException>(() => lm.Forward(ids, cache));
            Assert.Contains("a step is already open", e.Message);
            cache.Slot<AttentionCacheSlot>(1).Update(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8)).keys.Dispose();
            step.Commit();
        }
        Assert.Equal(3, cache.Slot<AttentionCacheSlot>(1).Count);
        Assert.Equal(3, cache.Slot<AttentionCacheSlot>(1).TokensSeen);
    }
}
