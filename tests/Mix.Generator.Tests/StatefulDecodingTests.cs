using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Generated.Models;
using Mix.Runtime;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Std = Mix.Generated.Std;

namespace Mix.Generator.Tests;

/// <summary>
/// Causal mixers written in .mix that declare decoding state (<c>s = state(...)</c>, updated through a scan's
/// <c>(y, final_state)</c>), from Models/stateful.mix: a causal_conv1d mixer, an ssd_scan mixer, a gla_scan mixer, the
/// standard library's mamba, and a model mixing mamba with the conv mixer. Their forward is their step, so with a
/// <see cref="CausalModel"/> prefill + token-by-token decoding and random chunks equal the full forward (fp32,
/// ≤ 1e-5 relative), left-padded rows equal each row alone, a reset cache is reusable, and a failed step rolls back.
/// </summary>
public class StatefulDecodingTests
{
    const long Vocab = 23;
    const double Tolerance = 1e-5;

    public static TheoryData<int, string> Kinds => new()
    {
        { 0, "causal_conv1d state" }, { 1, "ssd_scan state" }, { 2, "gla_scan state" }, { 3, "library mamba" },
        { 4, "library causal attention" }, { 5, "mamba + attention" },
    };

    static StatefulLm Model(int kind)
    {
        torch.manual_seed(11 + kind);
        var m = new StatefulLm(new StatefulLm.Options { VocabSize = Vocab, Kind = kind });
        m.eval();
        return m;
    }

    static double RelErr(Tensor a, Tensor b) => (a - b).abs().max().item<float>() / Math.Max(1e-6, b.abs().max().item<float>());

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Prefill_then_token_by_token_and_random_chunks_equal_the_full_forward(int kind, string what)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(kind);
        var lm = new CausalModel(model, Vocab);
        Assert.Equal(2, lm.CachedLayers);
        var ids = torch.randint(0, Vocab, new long[] { 2, 13 });
        var full = model.call(ids);

        using var cache = lm.CreateCache(2);
        Assert.All(cache.Slots, s => Assert.True(s is StateCacheSlot or MixKvCacheSlot, s.GetType().Name));
        var parts = new List<Tensor> { lm.Forward(ids.narrow(1, 0, 5), cache) };
        for (int t = 5; t < 13; t++) parts.Add(lm.Forward(ids.narrow(1, t, 1), cache));
        Assert.True(RelErr(torch.cat(parts, 1), full) < Tolerance, what);
        Assert.All(cache.Slots, s => Assert.Equal(13, s.TokensSeen));

        // Reset, then the same cache serves another pass in random chunks.
        cache.Reset();
        Assert.All(cache.Slots, s => Assert.Equal(0, s.TokensSeen));
        var rnd = new Random(kind);
        var chunks = new List<Tensor>();
        for (int t = 0; t < 13;)
        {
            int n = Math.Min(13 - t, 1 + rnd.Next(5));
            chunks.Add(lm.Forward(ids.narrow(1, t, n), cache));
            t += n;
        }
        Assert.True(RelErr(torch.cat(chunks, 1), full) < Tolerance, what);
    }

    /// <summary>Rows of 6, 11 and 9 tokens left-padded to 11 (chunked prefill with the mask, then one decode step)
    /// give each row's logits as the row alone through the full forward.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void Left_padded_rows_decode_like_each_row_alone(int kind, string what)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(kind);
        var lm = new CausalModel(model, Vocab);
        var (ids, mask, rows, next) = PaddedBatch();

        using var cache = lm.CreateCache(3);
        var outs = new List<Tensor>();
        for (int t = 0; t < 11; t += 4)
        {
            long n = Math.Min(4, 11 - t);
            outs.Add(lm.Forward(ids.narrow(1, t, n), cache, mask.narrow(1, t, n)));
        }
        outs.Add(lm.Forward(next, cache));
        var logits = torch.cat(outs, 1);   // [3, 12, V]

        for (int r = 0; r < 3; r++)
        {
            var alone = model.call(torch.cat(new[] { rows[r], next[r] }).unsqueeze(0))[0];   // [len + 1, V]
            long len = rows[r].shape[0];
            var mine = logits[r].narrow(0, 11 - len, len + 1);
            Assert.True(RelErr(mine, alone) < Tolerance, $"{what}, row {r}");
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_failed_or_refused_step_leaves_every_state_as_it_was(int kind, string what)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var model = Model(kind);
        var throwing = new ThrowingAfter(model);
        var lm = new CausalModel(throwing, Vocab);
        var ids = torch.randint(0, Vocab, new long[] { 2, 8 });
        using var cache = lm.CreateCache(2);
        lm.Forward(ids.narrow(1, 0, 5), cache);
        var before = Snapshot(cache);

        // The model's own code fails after both mixers wrote their states.
        throwing.Throw = true;
        Assert.Throws<InvalidOperationException>(() => lm.Forward(ids.narrow(1, 5, 3), cache));
        AssertSame(before, Snapshot(cache), what);
        // Refused before anything runs: a batch of 3 for a cache of 2.
        throwing.Throw = false;
        Assert.Throws<ArgumentException>(() => lm.Forward(torch.randint(0, Vocab, new long[] { 3, 2 }), cache));
        AssertSame(before, Snapshot(cache), what);

        var resumed = lm.Forward(ids.narrow(1, 5, 3), cache);
        using var fresh = lm.CreateCache(2);
        lm.Forward(ids.narrow(1, 0, 5), fresh);
        var expected = lm.Forward(ids.narrow(1, 5, 3), fresh);
        Assert.True(resumed.eq(expected).all().item<bool>(), $"{what}: after the rollback the next step is that of a fresh cache fed the same steps, bit for bit");
    }

    [Fact]
    public void Library_mamba_decodes_like_the_runtime_MambaMixer_with_the_same_weights()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var runtime = (MambaMixer)Builtin.Mamba(16, 4, 4, 2, null, false, true);
        var library = new Std.Mamba(new Std.Mamba.Options(16) { DState = 4 });
        library.load_state_dict(runtime.state_dict());
        var embedding = torch.randn(Vocab, 16);
        var a = new CausalModel(new MixerLm(embedding, runtime), Vocab);
        var b = new CausalModel(new MixerLm(embedding, library), Vocab);
        var (ids, mask, _, next) = PaddedBatch();

        using var ca = a.CreateCache(3);
        using var cb = b.CreateCache(3);
        Assert.IsType<MambaCacheSlot>(ca.Slots[0]);
        var slot = Assert.IsType<StateCacheSlot>(cb.Slots[0]);
        for (int t = 0; t < 11; t += 4)
        {
            long n = Math.Min(4, 11 - t);
            var ya = a.Forward(ids.narrow(1, t, n), ca, mask.narrow(1, t, n));
            var yb = b.Forward(ids.narrow(1, t, n), cb, mask.narrow(1, t, n));
            Assert.True(RelErr(yb, ya) < Tolerance);
        }
        Assert.True(RelErr(b.Forward(next, cb), a.Forward(next, ca)) < Tolerance);
        Assert.Equal(ca.Slots[0].RowTokens, cb.Slots[0].RowTokens);

        // The states themselves: the library keeps the last d_conv - 1 inputs (the runtime keeps d_conv), and the same SSM state.
        var m = ca.Slot<MambaCacheSlot>(0);
        Assert.True(RelErr(slot.Get("conv_state"), m.Conv.State.narrow(-1, 1, 3)) < Tolerance);
        Assert.True(RelErr(slot.Get("ssm_state"), m.Ssm.State) < Tolerance);
    }

    public static TheoryData<string> KvSettings => new() { "plain", "fixed capacity", "sliding window + sinks", "kivi4", "kivi4 + window" };

    static KvCacheOptions? Kv(string setting) => setting switch
    {
        "fixed capacity" => new KvCacheOptions { InitialCapacity = 12, FixedCapacity = true },
        "sliding window + sinks" => new KvCacheOptions { SlidingWindow = 5, SinkTokens = 2, InitialCapacity = 4 },
        "kivi4" => new KvCacheOptions { Quantization = new KvQuantizationOptions { Mode = KvQuantMode.Kivi4, GroupSize = 4, ResidualLength = 2 } },
        "kivi4 + window" => new KvCacheOptions
        {
            SlidingWindow = 6, SinkTokens = 1, Quantization = new KvQuantizationOptions { Mode = KvQuantMode.Kivi4, GroupSize = 4, ResidualLength = 2 },
        },
        _ => null,
    };

    /// <summary>The library's causal attention with the runtime <see cref="Attention"/>'s weights decodes exactly like it
    /// under every KV setting (the same slot kinds: plain, fixed capacity, sliding window with sinks, KIVI-4), on a
    /// left-padded batch fed in chunks then token by token.</summary>
    [Theory]
    [MemberData(nameof(KvSettings))]
    public void Library_causal_attention_decodes_like_the_runtime_Attention_under_every_kv_setting(string setting)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var runtime = (Attention)Builtin.Attention(16, headDim: 4, causal: true);
        var library = new Std.Attention(new Std.Attention.Options(16) { HeadDim = 4, Causal = true });
        library.load_state_dict(runtime.state_dict());
        var embedding = torch.randn(Vocab, 16);
        var a = new CausalModel(new MixerLm(embedding, runtime), Vocab);
        var b = new CausalModel(new MixerLm(embedding, library), Vocab);
        var (ids, mask, _, next) = PaddedBatch();
        var kv = Kv(setting);
        using var ca = a.CreateCache(3, kv);
        using var cb = b.CreateCache(3, kv);
        var slot = Assert.IsType<MixKvCacheSlot>(cb.Slots[0]);
        Assert.Null(slot.Inner);   // shaped by the first keys
        for (int t = 0; t < 11; t += 3)
        {
            long n = Math.Min(3, 11 - t);
            var ya = a.Forward(ids.narrow(1, t, n), ca, mask.narrow(1, t, n));
            var yb = b.Forward(ids.narrow(1, t, n), cb, mask.narrow(1, t, n));
            Assert.True(RelErr(yb, ya) < Tolerance, $"{setting}, tokens {t}..{t + n}");
        }
        Assert.Equal(ca.Slots[0].GetType(), slot.Inner!.GetType());
        Assert.Equal(4, slot.Inner.NumHeads);
        Assert.Equal(4, slot.Inner.HeadDim);
        Assert.Equal(ca.Slots[0].BytesPerToken, cb.Slots[0].BytesPerToken);
        Assert.Equal(ca.Slots[0].TokensSeen, cb.Slots[0].TokensSeen);
        Assert.True(RelErr(b.Forward(next, cb), a.Forward(next, ca)) < Tolerance, setting);

        // A fixed-capacity cache refuses a step that does not fit, before anything changes, as for the built-in.
        if (setting == "fixed capacity")
        {
            Assert.Throws<InvalidOperationException>(() => b.Forward(torch.randint(0, Vocab, new long[] { 3, 4 }), cb));
            Assert.Equal(12, cb.Slots[0].TokensSeen);
        }
    }

    [Fact]
    public void Library_attention_without_causal_has_no_kv_slot_and_its_causal_form_equals_causal_sdpa()
    {
        using var _ = torch.no_grad();
        var plain = new Std.Attention(new Std.Attention.Options(16) { HeadDim = 4 });
        Assert.False(((IStatefulMixer)plain).HasKeyValues);
        Assert.Throws<ArgumentException>(() => new CausalModel(new MixerLm(torch.randn(Vocab, 16), plain), Vocab));
        torch.manual_seed(2);
        var runtime = (Attention)Builtin.Attention(16, headDim: 4, causal: true);
        var causal = new Std.Attention(new Std.Attention.Options(16) { HeadDim = 4, Causal = true });
        causal.load_state_dict(runtime.state_dict());
        Assert.True(((IStatefulMixer)causal).HasKeyValues);
        var x = torch.randn(2, 7, 16);
        Assert.True(RelErr(causal.call(x), runtime.call(x)) < 1e-6);
    }

    [Fact]
    public void Declared_states_size_the_slot_and_read_as_zeros_outside_a_cache()
    {
        using var _ = torch.no_grad();
        var mamba = new Std.Mamba(new Std.Mamba.Options(16) { DState = 4, DConv = 3 });
        var specs = ((IStatefulMixer)mamba).States(5);
        Assert.Equal(new[] { "conv_state", "ssm_state" }, specs.Select(s => s.Name));
        Assert.Equal(new long[] { 5, 32, 2 }, specs[0].Shape);
        Assert.Equal(new long[] { 5, 32, 4 }, specs[1].Shape);
        using var slot = new StateCacheSlot(0, 5, specs);
        Assert.Equal(32 * (2 + 4) * 4, slot.FixedBytesPerRow);
        Assert.Equal(0, slot.BytesPerToken);
        Assert.Equal(5 * 32 * (2 + 4) * 4, slot.AllocatedBytes);
        // The front end's footprint (model summaries, `mix summary`) is the slot's: the states' elements per row.
        var c = Mix.Dsl.MixCompilation.Create("m.mix",
            "import \"mix/std/mamba.mix\"\nblock b() (x: [B, L, 16]) -> [B, L, 16] {\n  m = mamba(dim = 16, d_state = 4, d_conv = 3)\n  return m(x)\n}\n");
        Assert.False(c.HasErrors, string.Join("\n", c.Diagnostics));
        var footprint = c.Find("b")!.Root!.Children.Single(n => n.Name == "m").Cache!;
        Assert.Equal("state", footprint.Kind);
        Assert.Equal(slot.FixedBytesPerRow, footprint.Bytes(tokens: 100));

        // Outside a cache the forward starts from zero states: two halves run separately differ from the whole.
        var x = torch.randn(2, 6, 16);
        var whole = mamba.call(x);
        Assert.True(mamba.call(x.narrow(1, 0, 3)).allclose(whole.narrow(1, 0, 3), 1e-5, 1e-6));
        Assert.False(mamba.call(x.narrow(1, 3, 3)).allclose(whole.narrow(1, 3, 3), 1e-5, 1e-6));
    }

    static (Tensor ids, Tensor mask, Tensor[] rows, Tensor next) PaddedBatch()
    {
        var gen = torch.manual_seed(17);
        var lengths = new long[] { 6, 11, 9 };
        var rows = lengths.Select(l => torch.randint(1, Vocab, new[] { l })).ToArray();
        var ids = torch.zeros(3, 11, dtype: ScalarType.Int64);
        var mask = torch.zeros(3, 11, dtype: ScalarType.Int64);
        for (int r = 0; r < 3; r++)
        {
            ids[r].narrow(0, 11 - lengths[r], lengths[r]).copy_(rows[r]);
            mask[r].narrow(0, 11 - lengths[r], lengths[r]).fill_(1);
        }
        var next = torch.randint(1, Vocab, new long[] { 3, 1 });
        return (ids, mask, rows, next);
    }

    static List<(long Seen, long[] Rows, Tensor[] States)> Snapshot(InferenceCache cache) =>
        cache.Slots.Select(s => s switch
        {
            StateCacheSlot st => (s.TokensSeen, s.RowTokens, st.Specs.Select(p => st.Get(p.Name).clone()).ToArray()),
            MixKvCacheSlot kv => (s.TokensSeen, s.RowTokens, KeysAndValues(kv)),
            _ => throw new InvalidOperationException(s.GetType().Name),
        }).ToList();

    /// <summary>What a KV slot holds: its entry count and the tokens its inner slot saw (whether it exists at all); the
    /// entries themselves are checked by the next step equalling a fresh cache's.</summary>
    static Tensor[] KeysAndValues(MixKvCacheSlot kv) =>
        kv.Inner is { } inner ? new[] { torch.tensor(inner.Count), torch.tensor(inner.TokensSeen) } : Array.Empty<Tensor>();

    static void AssertSame(List<(long Seen, long[] Rows, Tensor[] States)> a, List<(long Seen, long[] Rows, Tensor[] States)> b, string what)
    {
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Seen, b[i].Seen);
            Assert.Equal(a[i].Rows, b[i].Rows);
            for (int k = 0; k < a[i].States.Length; k++) Assert.True(a[i].States[k].eq(b[i].States[k]).all().item<bool>(), $"{what}: slot {i} state {k}");
        }
    }

    /// <summary>The model, failing after its layers ran when asked to (a step that fails after the mixers wrote).</summary>
    sealed class ThrowingAfter : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> inner;
        public bool Throw { get; set; }
        public ThrowingAfter(nn.Module<Tensor, Tensor> inner) : base(nameof(ThrowingAfter))
        {
            this.inner = inner;
            RegisterComponents();
        }
        public override Tensor forward(Tensor x)
        {
            var y = inner.call(x);
            if (Throw) throw new InvalidOperationException("failed after the mixers ran");
            return y;
        }
    }

    /// <summary>Embedding then one token mixer through the generated call site (<see cref="MixDispatch.TokenMixer"/>).</summary>
    sealed class MixerLm : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Embedding embeddings;
        private readonly nn.Module<Tensor, Tensor> mixer;
        public MixerLm(Tensor weight, nn.Module<Tensor, Tensor> mixer) : base(nameof(MixerLm))
        {
            embeddings = nn.Embedding(weight.shape[0], weight.shape[1]);
            embeddings.weight = new TorchSharp.Modules.Parameter(weight.clone());
            this.mixer = mixer;
            RegisterComponents();
        }
        public override Tensor forward(Tensor ids) => MixDispatch.TokenMixer(mixer, embeddings.call(ids));
    }
}
