using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Caches;
using Mix.Runtime.Tests.Parity;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.Caches.CacheTestUtil;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

/// <summary>
/// The cache invariant: decoding token by token, or in random chunk sizes, from an empty cache gives the outputs of one
/// full forward (fp32, max relative error ≤ 1e-5), for every causal mixer and for attention, Mamba and hybrid LMs.
/// </summary>
public class CacheInvariantTests
{
    private const double Tol = 1e-5;

    public static IEnumerable<object[]> Splits() => new[] { new object[] { 0 }, new object[] { 1 }, new object[] { 2 }, new object[] { 3 } };

    private static IEnumerable<int> Split(int total, int mode) => mode == 0 ? Enumerable.Repeat(1, total) : Chunks(total, 100 + mode, 6);

    [Theory]
    [MemberData(nameof(Splits))]
    public void MambaMixerChunkedEqualsFull(int mode)
    {
        using var noGrad = torch.no_grad();
        using var mixer = new MambaMixer(hiddenSize: 16, stateSize: 8, convKernel: 4, expand: 2);
        mixer.eval();
        using var x = TestUtil.Det(new long[] { 2, 19, 16 }, salt: 0.3);
        using var full = mixer.forward(x);
        using var slot = new MambaCacheSlot(0, 2, mixer.IntermediateSize, mixer.ConvKernel, mixer.StateSize);
        using var got = RunChunked(x, Split(19, mode), part => mixer.Forward(part, slot));
        Assert.True(RelErr(got, full) <= Tol, $"rel err {RelErr(got, full)}");
        Assert.Equal(19, slot.TokensSeen);
        Assert.Equal(new long[] { 19, 19 }, slot.RowTokens);
    }

    [Fact]
    public void MambaMixerStateMatchesForwardWithState()
    {
        using var noGrad = torch.no_grad();
        using var mixer = new MambaMixer(hiddenSize: 16, stateSize: 8);
        using var x = TestUtil.Det(new long[] { 1, 9, 16 }, salt: 1.1);
        var (_, conv, ssm) = mixer.ForwardWithState(x);
        using var slot = new MambaCacheSlot(0, 1, mixer.IntermediateSize, mixer.ConvKernel, mixer.StateSize);
        using var y = RunChunked(x, new[] { 4, 5 }, p => mixer.Forward(p, slot));
        Assert.True(RelErr(slot.Conv.State, conv) <= Tol);
        Assert.True(RelErr(slot.Ssm.State, ssm) <= Tol);
        conv.Dispose(); ssm.Dispose();
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void AttentionMixerChunkedEqualsCausalReference(int mode)
    {
        using var noGrad = torch.no_grad();
        using var attn = new Attention(dim: 32, headDim: 8);
        attn.eval();
        using var x = TestUtil.Det(new long[] { 2, 14, 32 }, salt: 0.7);
        // reference: causal SDPA with the module's own projections
        using var qkv = attn.qkv.forward(x).reshape(2, 14, 3, attn.NumHeads, attn.HeadDim).permute(2, 0, 3, 1, 4);
        using var mask = CachedAttention.CausalMask(14, x.device);
        using var o = CachedAttention.Attend(qkv[0], qkv[1], qkv[2], mask, 1.0 / Math.Sqrt(attn.HeadDim));
        using var expected = attn.proj.forward(o.transpose(1, 2).reshape(2, 14, attn.AttentionDim));
        using var slot = new KvCacheSlot(0, 2, attn.NumHeads, attn.HeadDim, new KvCacheOptions { InitialCapacity = 4 });
        using var got = RunChunked(x, Split(14, mode), p => attn.Forward(p, slot));
        Assert.True(RelErr(got, expected) <= Tol, $"rel err {RelErr(got, expected)}");
        Assert.True(slot.Capacity >= 14);
    }

    [Theory]
    [MemberData(nameof(Splits))]
    public void CausalSelfAttentionChunkedEqualsFull(int mode)
    {
        using var noGrad = torch.no_grad();
        using var attn = new CausalSelfAttention(32, 4);
        using var x = TestUtil.Det(new long[] { 2, 17, 32 }, salt: 0.2);
        using var full = attn.forward(x);
        using var slot = new KvCacheSlot(0, 2, 4, 8);
        using var got = RunChunked(x, Split(17, mode), p => attn.Forward(p, slot));
        Assert.True(RelErr(got, full) <= Tol, $"rel err {RelErr(got, full)}");
    }

    public static IEnumerable<object[]> Models() => new[]
    {
        new object[] { "mamba", 0 }, new object[] { "mamba", 2 },
        new object[] { "attention", 0 }, new object[] { "attention", 3 },
        new object[] { "hybrid", 0 }, new object[] { "hybrid", 1 }, new object[] { "hybrid", 2 },
    };

    internal static nn.Module<Tensor, Tensor> Build(string kind) => kind switch
    {
        "mamba" => new HybridLM(40, 32, "MM", numHeads: 4),   // Mamba layers only (the zoo's generated Mamba LM decodes through CausalModel: GeneratedDecodingTests)
        "attention" => new CausalAttentionLM(40, 32, 2, 4),
        _ => new HybridLM(40, 32, "MAMA", numHeads: 4),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void ModelChunkedDecodeEqualsFullForward(string kind, int mode)
    {
        using var noGrad = torch.no_grad();
        using var model = Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        using var ids = RandomIds(2, 21, 40, 7);
        using var full = model.forward(ids);
        using var cache = lm.CreateCache(2);
        using var got = RunChunked(ids, Split(21, mode), p => lm.Forward(p, cache));
        double err = RelErr(got, full);
        Record($"cache invariant {kind} split {mode}: rel err {err:E2}");
        Assert.True(err <= Tol, $"{kind}: rel err {err}");
        foreach (var s in cache.Slots) Assert.Equal(21, s.TokensSeen);
    }

    [Fact]
    public void HuggingFaceMambaFixtureDecodesTokenByToken()
    {
        using var noGrad = torch.no_grad();
        using var f = HuggingFaceFixture.Open("mamba_causal_lm");
        using var model = MambaParityTests.LoadedLM(f);   // the zoo's generated Mamba LM, through CausalModel
        var lm = new CausalModel(model, f.Long("vocab_size"));
        using var ids = f.Read("input_ids");
        using var expected = f.Read("logits");
        using var cache = lm.CreateCache(ids.shape[0]);
        using var got = RunChunked(ids, Enumerable.Repeat(1, (int)ids.shape[1]), p => lm.Forward(p, cache));
        Assert.True(RelErr(got, expected) <= 1e-4, $"rel err {RelErr(got, expected)}");
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("attention")]
    [InlineData("hybrid")]
    public void LeftPaddedBatchMatchesEachRowAlone(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = Build(kind);
        model.eval();
        var lm = (ICausalLM)model;
        int[] lengths = { 6, 11, 9 };
        int len = lengths.Max();
        var rows = lengths.Select((l, i) => RandomIds(1, l, 40, 50 + i)).ToList();
        var ids = new long[3 * len];
        var mask = new long[3 * len];
        for (int r = 0; r < 3; r++)
        {
            var v = rows[r].data<long>().ToArray();
            int pad = len - lengths[r];
            for (int t = 0; t < len; t++) { ids[r * len + t] = t < pad ? 0 : v[t - pad]; mask[r * len + t] = t < pad ? 0 : 1; }
        }
        using var idT = torch.tensor(ids).reshape(3, len);
        using var maskT = torch.tensor(mask).reshape(3, len);
        using var cache = lm.CreateCache(3);
        var outs = new List<Tensor>();
        long at = 0;
        foreach (int c in Chunks(len, 9, 4))
        {
            using var p = idT.narrow(1, at, c);
            using var m = maskT.narrow(1, at, c);
            outs.Add(lm.Forward(p, cache, m));
            at += c;
        }
        // then two decode steps with a new token per row
        using var next = torch.tensor(new long[] { 3, 4, 5 }).reshape(3, 1);
        outs.Add(lm.Forward(next, cache));
        using var got = torch.cat(outs, 1);
        foreach (var o in outs) o.Dispose();
        for (int r = 0; r < 3; r++)
        {
            using var alone = torch.cat(new[] { rows[r], next.narrow(0, r, 1) }, 1);
            using var expected = model.forward(alone);
            int pad = len - lengths[r];
            using var mine = got.narrow(0, r, 1).narrow(1, pad, lengths[r] + 1);
            double err = RelErr(mine, expected);
            Assert.True(err <= Tol, $"{kind} row {r}: rel err {err}");
            Assert.Equal(lengths[r] + 1, cache.Slots[0].RowTokens[r]);
        }
        Assert.Equal(len + 1, cache.Slots[0].TokensSeen);
        foreach (var t in rows) t.Dispose();
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("hybrid")]
    public void ResetAndReuseGiveTheSameOutputs(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = Build(kind);
        var lm = (ICausalLM)model;
        using var a = RandomIds(1, 8, 40, 1);
        using var b = RandomIds(1, 8, 40, 2);
        using var cache = lm.CreateCache(1);
        using var first = RunChunked(a, new[] { 3, 5 }, p => lm.Forward(p, cache));
        cache.Reset();
        foreach (var s in cache.Slots) Assert.Equal(0, s.TokensSeen);
        using var second = RunChunked(b, new[] { 8 }, p => lm.Forward(p, cache));
        cache.Reset();
        using var again = RunChunked(a, new[] { 1, 1, 6 }, p => lm.Forward(p, cache));
        Assert.True(RelErr(again, first) <= Tol);
        using var fresh = model.forward(b);
        Assert.True(RelErr(second, fresh) <= Tol);
    }

    [Theory]
    [InlineData(4, 2, 1)]
    [InlineData(5, 0, 3)]
    [InlineData(3, 3, 2)]
    public void SlidingWindowWithSinksMatchesMaskedFullForward(int window, int sinks, int chunk)
    {
        using var noGrad = torch.no_grad();
        using var model = new CausalAttentionLM(40, 32, 2, 4);
        const int L = 23;
        using var ids = RandomIds(2, L, 40, 11);
        var allowed = new bool[L * L];
        for (int q = 0; q < L; q++)
            for (int k = 0; k <= q; k++) allowed[q * L + k] = q - k < window || k < sinks;
        using var mask = torch.tensor(allowed).reshape(1, 1, L, L);
        using var pos = torch.arange(L, dtype: ScalarType.Int64).unsqueeze(0).expand(2, L);
        using var expected = model.ForwardMasked(ids, pos, mask);
        using var cache = model.CreateCache(2, new KvCacheOptions { SlidingWindow = window, SinkTokens = sinks, InitialCapacity = 2 });
        using var got = RunChunked(ids, Enumerable.Repeat(chunk, L / chunk).Append(L % chunk).Where(c => c > 0), p => model.Forward(p, cache));
        Assert.True(RelErr(got, expected) <= Tol, $"rel err {RelErr(got, expected)}");
        var slot = cache.Slot<KvCacheSlot>(0);
        Assert.True(slot.Count <= sinks + window - 1 + chunk, $"kept {slot.Count}");
    }

    [Fact]
    public void FixedCapacityThrowsWhenFull()
    {
        using var slot = new KvCacheSlot(0, 1, 2, 4, new KvCacheOptions { InitialCapacity = 4, FixedCapacity = true });
        using var k = torch.zeros(1, 2, 3, 4);
        slot.Update(k, k);
        Assert.Throws<InvalidOperationException>(() => slot.Update(k, k));
    }

    [Fact]
    public void MemoryAccounting()
    {
        using var model = new HybridLM(40, 32, "MA", numHeads: 4, stateSize: 8, convKernel: 4);
        using var cache = model.CreateCache(3);
        var mem = cache.Memory();
        Assert.Equal(0, mem[0].BytesPerToken);
        Assert.Equal(64 * 4 * 4 + 64 * 8 * 4, mem[0].FixedBytesPerRow);        // conv [di, K] + ssm [di, n], float32
        Assert.Equal(2 * 4 * 8 * 4, mem[1].BytesPerToken);                      // K and V, 4 heads × 8, float32
        Assert.Equal(3 * (mem[0].FixedBytesPerRow + 100 * 256.0), cache.BytesFor(3, 100));
        Assert.Contains("KvCacheSlot", cache.Summary());
        Assert.Contains("MambaCacheSlot", cache.Summary());
    }
}
