using System;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// Token ids already on the GPU are checked there without waiting (<see cref="InferenceCache.DeferDeviceTokenIdCheck"/>):
/// valid ids decode exactly as with the immediate host check; an out-of-range id never reaches the embedding (no
/// device-side assert) and is reported, with its position and step, by the next step or by
/// <see cref="InferenceCache.ThrowIfBadTokenIds"/>; the cache then refuses steps until it is reset, after which it
/// decodes as a fresh cache does.
/// </summary>
[Trait("Category", "Gpu")]
public class DeferredTokenIdCheckGpuTests
{
    [Theory]
    [InlineData(ScalarType.Int64)]
    [InlineData(ScalarType.Int32)]
    public void DeviceIdsDecodeAsWithTheImmediateCheck(ScalarType idType)
    {
        Gpu.Require();
        using var noGrad = torch.no_grad();
        torch.manual_seed(3);
        using var module = new TinyMixLM();
        module.eval();
        module.to(Gpu.Device);
        var lm = new CausalModel(module, 30);
        using var ids = torch.randint(0, 30, new long[] { 2, 9 }, dtype: idType, device: Gpu.Device);
        using var deferred = lm.CreateCache(2);
        using var immediate = lm.CreateCache(2);
        immediate.DeferDeviceTokenIdCheck = false;
        for (int t = 0; t < 9; t++)
        {
            using var step = ids.narrow(1, t, 1).contiguous();
            using var a = lm.Forward(step, deferred);
            using var b = lm.Forward(step, immediate);
            Assert.InRange(Gpu.RelErr(a, b), 0, 1e-6);
        }
        deferred.ThrowIfBadTokenIds();   // nothing to report
    }

    [Fact]
    public void ABadDeviceIdIsReportedWithItsPlaceAndTheCacheRefusesStepsUntilReset()
    {
        Gpu.Require();
        using var noGrad = torch.no_grad();
        torch.manual_seed(4);
        using var module = new TinyMixLM();
        module.eval();
        module.to(Gpu.Device);
        var lm = new CausalModel(module, 30);
        using var good = torch.randint(0, 30, new long[] { 2, 3 }, dtype: ScalarType.Int64, device: Gpu.Device);
        using var bad = torch.tensor(new long[] { 4, 5, 7, 31 }, device: Gpu.Device).reshape(2, 2);
        using var cache = lm.CreateCache(2);
        lm.Forward(good, cache).Dispose();
        using (var logits = lm.Forward(bad, cache))   // runs (clamped), no device assert
            Assert.True(logits.isfinite().all().item<bool>());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cache.ThrowIfBadTokenIds());
        Assert.Contains("token id 31 at [1, 1] of step 2", e.Message);
        Assert.Contains("Reset()", e.Message);
        // every later step refuses, with the same report
        var again = Assert.Throws<ArgumentOutOfRangeException>(() => lm.Forward(good, cache));
        Assert.Contains("token id 31", again.Message);

        cache.Reset();
        using var fresh = lm.CreateCache(2);
        using var a = lm.Forward(good, cache);
        using var b = lm.Forward(good, fresh);
        Assert.InRange(Gpu.RelErr(a, b), 0, 1e-6);
        cache.ThrowIfBadTokenIds();
    }

    [Fact]
    public void TheImmediateCheckStillThrowsBeforeTheStep()
    {
        Gpu.Require();
        using var noGrad = torch.no_grad();
        using var module = new TinyMixLM();
        module.eval();
        module.to(Gpu.Device);
        var lm = new CausalModel(module, 30);
        using var bad = torch.tensor(new long[] { 4, -1 }, device: Gpu.Device).reshape(1, 2);
        using var cache = lm.CreateCache(1);
        cache.DeferDeviceTokenIdCheck = false;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => lm.Forward(bad, cache));
        Assert.Contains("token id -1", e.Message);
    }
}
