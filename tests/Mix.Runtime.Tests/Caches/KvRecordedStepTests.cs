using System;
using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// The fixed-shape one-token step a KV slot takes while a decoding step is recorded into a CUDA graph
/// (<see cref="CausalModel.CudaGraphs"/>): append at the position the host set before the replay, attend over the
/// whole capacity with everything past the new entry masked, then the host's bookkeeping. Run here eagerly on the CPU,
/// step by step beside a slot taking the ordinary path: the same outputs (≤ 1e-6: the extra entries weigh zero), the
/// same counts, with padded tokens, growing buffers (Prepare doubles them) and a .mix mixer's slot (created at its
/// first keys).
/// </summary>
public class KvRecordedStepTests
{
    [Theory]
    [InlineData(3, false)]   // grows during the steps
    [InlineData(64, false)]
    [InlineData(3, true)]    // a .mix mixer's slot
    public void The_recorded_step_equals_the_eager_step(int capacity, bool mix)
    {
        using var _ = torch.no_grad();
        torch.manual_seed(4);
        const long B = 2, H = 3, D = 8;
        var options = new KvCacheOptions { InitialCapacity = capacity };
        CacheSlot Make() => mix ? new MixKvCacheSlot(0, B, options) : new KvCacheSlot(0, B, H, D, options);
        using var recorded = Make();
        using var eager = Make();
        Tensor Attend(CacheSlot s, Tensor q, Tensor k, Tensor v, Tensor? m) =>
            s is MixKvCacheSlot x ? x.Attend(q, k, v, m, 0.3) : ((KvCacheSlot)s).Attend(q, k, v, m, 0.3);
        Tensor AttendRecorded(CacheSlot s, Tensor q, Tensor k, Tensor v, Tensor? m) =>
            s is MixKvCacheSlot x ? x.Inner!.AttendRecorded(q, k, v, m, 0.3) : ((KvCacheSlot)s).AttendRecorded(q, k, v, m, 0.3);

        // a prefill of 4 with a padded position in row 1, the same on both
        var pq = torch.randn(B, H, 4, D); var pk = torch.randn(B, H, 4, D); var pv = torch.randn(B, H, 4, D);
        var pm = torch.tensor(new long[] { 1, 1, 1, 1, 0, 1, 1, 1 }).reshape(B, 4);
        Attend(recorded, pq, pk, pv, pm);
        Attend(eager, pq, pk, pv, pm);
        Assert.True(recorded.RecordsSteps);

        var rnd = new Random(1);
        for (int t = 0; t < 9; t++)
        {
            var q = torch.randn(B, H, 1, D); var k = torch.randn(B, H, 1, D); var v = torch.randn(B, H, 1, D);
            // some steps padded in one row, some unmasked
            Tensor? m = rnd.Next(3) == 0 ? torch.tensor(new long[] { 1, 0 }).reshape(B, 1) : null;
            var before = recorded.RecordedAddresses();
            recorded.PrepareRecordedStep();
            var o = AttendRecorded(recorded, q, k, v, m);
            recorded.RecordedStepDone(m);
            var expected = Attend(eager, q, k, v, m);
            Assert.True((o - expected).abs().max().item<float>() < 1e-6f, $"step {t}");
            Assert.Equal(eager.RowTokens, recorded.RowTokens);
            Assert.Equal(eager.TokensSeen, recorded.TokensSeen);
            // the buffers a recording reads change only when they grow
            var after = recorded.RecordedAddresses();
            if (capacity == 64 && t > 0) Assert.Equal(before, after);
        }
        // and the ordinary path continues from where the recorded steps left the slot
        var q2 = torch.randn(B, H, 2, D); var k2 = torch.randn(B, H, 2, D); var v2 = torch.randn(B, H, 2, D);
        Assert.True((Attend(recorded, q2, k2, v2, null) - Attend(eager, q2, k2, v2, null)).abs().max().item<float>() < 1e-6f);
    }
}
