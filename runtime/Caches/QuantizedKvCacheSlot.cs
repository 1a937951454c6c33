using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// KV slot with KIVI / VidKV quantization (<see cref="KvCacheOptions.Quantization"/>): tokens are appended to a
/// full-precision tail; whenever the tail holds R + G tokens, its oldest G tokens become a <see cref="QuantizedKvBlock"/>
/// (keys per channel over the G tokens, values per token over groups of G channels, float16 scale and minimum).
/// Attention runs on the dequantized blocks followed by the tail (CPU reference: dequantized block by block on every
/// update). With a sliding window (and attention sinks) a block is evicted once none of its G tokens can be seen by a
/// future query; tail tokens are evicted one by one.
/// </summary>
public sealed class QuantizedKvCacheSlot : AttentionCacheSlot
{
    private readonly List<QuantizedKvBlock> blocks = new();
    private readonly ScalarType dtype;
    private readonly Device? device;
    // The full-precision tail lives in preallocated [B, H, capacity, D] buffers written in place (capacity R + G + 15:
    // the longest tail before quantization, R + G − 1, plus a fused step's 16 new tokens); tailLength rows are in use.
    private Tensor? tailK;
    private Tensor? tailV;
    private long tailLength;
    private Tensor? spareK;   // the other pair of tail buffers: the block quantization kernel shifts the tail into it
    private Tensor? spareV;
    private Tensor? ptrTable;
    private int ptrRows;
    private Tensor? workspace;

    /// <summary>Creates an empty slot.</summary>
    /// <param name="layerIndex">Layer index.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="numHeads">Key/value heads.</param>
    /// <param name="headDim">Features per head.</param>
    /// <param name="options">Options (with <see cref="KvCacheOptions.Quantization"/> set).</param>
    /// <param name="dtype">Model dtype (tail and dequantized blocks).</param>
    /// <param name="device">Device.</param>
    public QuantizedKvCacheSlot(int layerIndex, long batch, long numHeads, long headDim, KvCacheOptions options,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
        : base(layerIndex, batch, numHeads, headDim, options)
    {
        Quant = options?.Quantization ?? throw new ArgumentException("options.Quantization must be set", nameof(options));
        if (Quant.GroupSize <= 0 || Quant.ResidualLength < 0) throw new ArgumentOutOfRangeException(nameof(options));
        if (headDim % Math.Min(Quant.GroupSize, headDim) != 0) throw new ArgumentException("the value group must divide the head dimension", nameof(headDim));
        if (Quant.Mode != KvQuantMode.VidKv && Quant.GroupSize % 4 != 0) throw new ArgumentException("KIVI group size must be a multiple of 4", nameof(options));
        this.dtype = dtype;
        this.device = device;
    }

    /// <summary>Quantization options.</summary>
    public KvQuantizationOptions Quant { get; }

    /// <summary>Quantized blocks held.</summary>
    public int BlockCount => blocks.Count;

    /// <summary>Tokens in the full-precision tail.</summary>
    public long TailLength => tailLength;

    /// <summary>Rows of the tail buffers (R + G + 15, or more after one long append).</summary>
    private long TailCapacity => Quant.ResidualLength + Quant.GroupSize + QuantizedOps.MaxFusedQueries - 1;

    /// <inheritdoc/>
    public override double BytesPerToken
    {
        get
        {
            var (kb, vb) = Quant.BitsPerElement(HeadDim);
            return NumHeads * HeadDim * (kb + vb) / 8.0;
        }
    }

    /// <summary>Full-precision tail at its largest (R + G − 1 tokens), per row.</summary>
    public override long FixedBytesPerRow => (Quant.ResidualLength + Quant.GroupSize - 1) * 2 * NumHeads * HeadDim * ElementBytes(dtype);

    /// <inheritdoc/>
    /// <remarks>Counts the tail tokens in use; the tail buffers' spare rows (at most G + 15 per row beyond
    /// <see cref="FixedBytesPerRow"/>' R + G − 1 tokens) are not counted.</remarks>
    public override long AllocatedBytes => blocks.Sum(b => b.Bytes) + 2 * Batch * NumHeads * tailLength * HeadDim * ElementBytes(dtype);

    /// <inheritdoc/>
    protected override (Tensor keys, Tensor values) Store(Tensor keys, Tensor values)
    {
        Append(keys, values);
        return DequantizedKeysValues();
    }

    /// <inheritdoc/>
    /// <remarks>Writes into the tail buffers in place (pieces of at most the free rows, quantizing the oldest G tokens
    /// whenever the tail reaches R + G); inside a transactional step a shift after quantization goes to new buffers, so
    /// the buffers of the step's start keep their rows.</remarks>
    protected override void Append(Tensor keys, Tensor values)
    {
        long n = keys.size(2);
        bool fused = UseFusedKernels && keys.dtype == dtype && keys.device_type == DeviceType.CUDA;
        for (long done = 0; done < n;)
        {
            EnsureTail(keys);
            long cap = tailK!.size(2);
            long m = Math.Min(cap - tailLength, n - done);
            var k = m == n ? keys : keys.narrow(2, done, m);
            var v = m == n ? values : values.narrow(2, done, m);
            // the tail buffers are the slot's own (contiguous, this dtype, the keys' device): passed by address
            if (!(fused && QuantizedKvAttention.AppendTail(k, v, TensorPointers.Address(tailK), TensorPointers.Address(tailV!), cap, tailLength, Quant.Mode)))
            {
                using var noGrad = torch.no_grad();
                using var dk = tailK.narrow(2, tailLength, m);
                using var dv = tailV!.narrow(2, tailLength, m);
                dk.copy_(k);
                dv.copy_(v);
            }
            if (m != n) { k.Dispose(); v.Dispose(); }
            tailLength += m;
            done += m;
            while (tailLength >= Quant.ResidualLength + Quant.GroupSize) QuantizeOldest();
        }
    }

    private void EnsureTail(Tensor like)
    {
        if (tailK is not null && tailK.device_type == like.device_type && tailK.device_index == like.device_index) return;
        var device = like.device;
        var shape = new[] { Batch, NumHeads, TailCapacity, HeadDim };
        var k = torch.zeros(shape, dtype, device).DetachFromDisposeScope();
        var v = torch.zeros(shape, dtype, device).DetachFromDisposeScope();
        if (tailK is not null && tailLength > 0)
        {
            using var noGrad = torch.no_grad();
            using (var dst = k.narrow(2, 0, tailLength)) using (var src = tailK.narrow(2, 0, tailLength)) dst.copy_(src);
            using (var dst = v.narrow(2, 0, tailLength)) using (var src = tailV!.narrow(2, 0, tailLength)) dst.copy_(src);
        }
        Retire(tailK);
        Retire(tailV);
        (tailK, tailV) = (k, v);
    }

    /// <summary>Packs the tail's oldest G tokens into a block and moves the rest to the front of the tail.</summary>
    private void QuantizeOldest()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long g = Quant.GroupSize, rest = tailLength - g;
        if (UseFusedKernels && Quant.Mode != KvQuantMode.VidKv && tailK!.device_type == DeviceType.CUDA)
        {
            // one launch: the block and the shifted tail (into the spare buffers; inside a step into new ones, so the
            // buffers of the step's start are never written)
            bool fresh = InStep || spareK is null || spareK.device_index != tailK.device_index;
            var dk = fresh ? torch.empty_like(tailK) : spareK!;
            var dv = fresh ? torch.empty_like(tailV!) : spareV!;
            var blk = QuantizedKvAttention.QuantizeBlock(tailK, tailV!, dk, dv, tailLength, Quant);
            if (blk is not null)
            {
                blocks.Add(blk);
                if (fresh)
                {
                    dk.DetachFromDisposeScope();
                    dv.DetachFromDisposeScope();
                }
                if (InStep)
                {
                    Retire(tailK);
                    Retire(tailV);
                }
                else
                {
                    if (fresh) { spareK?.Dispose(); spareV?.Dispose(); }
                    (spareK, spareV) = (tailK, tailV);
                }
                (tailK, tailV) = (dk, dv);
                tailLength = rest;
                return;
            }
        }
        blocks.Add(KvQuantizer.Quantize(tailK!.narrow(2, 0, g), tailV!.narrow(2, 0, g), Quant));
        if (InStep)
        {
            var k = torch.zeros_like(tailK).DetachFromDisposeScope();
            var v = torch.zeros_like(tailV).DetachFromDisposeScope();
            if (rest > 0)
            {
                k.narrow(2, 0, rest).copy_(tailK.narrow(2, g, rest));
                v.narrow(2, 0, rest).copy_(tailV.narrow(2, g, rest));
            }
            Retire(tailK);
            Retire(tailV);
            (tailK, tailV) = (k, v);
        }
        else if (rest > 0)
        {
            // the source and destination rows overlap when rest > g: copy through a temporary
            tailK.narrow(2, 0, rest).copy_(tailK.narrow(2, g, rest).clone());
            tailV.narrow(2, 0, rest).copy_(tailV.narrow(2, g, rest).clone());
        }
        tailLength = rest;
    }

    /// <summary>The tail rows in use, <c>[B, H, TailLength, D]</c> (a view of the buffer).</summary>
    private Tensor TailKeys => tailK!.narrow(2, 0, tailLength);

    private Tensor TailValues => tailV!.narrow(2, 0, tailLength);

    private (QuantizedKvBlock[] blocks, Tensor? tailK, Tensor? tailV, long tailLength, int evicted)? stepStart;

    /// <inheritdoc/>
    protected override void OnBeginStep()
    {
        base.OnBeginStep();
        stepStart = (blocks.ToArray(), tailK, tailV, tailLength, EvictedBlocks);
    }

    /// <inheritdoc/>
    protected override void OnCommitStep()
    {
        base.OnCommitStep();
        stepStart = null;
    }

    /// <inheritdoc/>
    /// <remarks>Blocks are immutable once packed and evicted ones are retired, not disposed, so restoring the list of
    /// the step's start restores the cache; the device pointer table is rewritten from the first block.</remarks>
    protected override void OnRollbackStep(HashSet<object> live)
    {
        base.OnRollbackStep(live);
        if (stepStart is not { } start) return;
        foreach (var b in blocks) if (Array.IndexOf(start.blocks, b) < 0) b.Dispose();
        blocks.Clear();
        blocks.AddRange(start.blocks);
        foreach (var b in start.blocks) live.Add(b);
        if (!ReferenceEquals(tailK, start.tailK)) tailK?.Dispose();
        if (!ReferenceEquals(tailV, start.tailV)) tailV?.Dispose();
        (tailK, tailV, tailLength) = (start.tailK, start.tailV, start.tailLength);
        // the spare pair is never written inside a step, but it may be the buffers just restored: forget it
        if (spareK is not null && !ReferenceEquals(spareK, tailK)) { spareK.Dispose(); spareV?.Dispose(); }
        spareK = spareV = null;
        if (tailK is not null) live.Add(tailK);
        if (tailV is not null) live.Add(tailV);
        EvictedBlocks = start.evicted;
        ptrRows = 0;
        stepStart = null;
    }

    /// <summary>
    /// The reference materialisation: every block dequantized (in the slot dtype) followed by the tail,
    /// <c>[batch, heads, T, headDim]</c> each (new tensors).
    /// </summary>
    public (Tensor keys, Tensor values) DequantizedKeysValues() => DequantizedKeysValues(dtype);

    /// <summary>The cache dequantized in <paramref name="as"/> (tests: float64 keeps the numbers the fused kernels
    /// compute with — float16 scales and minimums, codes, float32 products — where the slot dtype rounds them).</summary>
    /// <param name="as">Dtype of the result.</param>
    internal (Tensor keys, Tensor values) DequantizedKeysValues(ScalarType @as)
    {
        if (tailK is null || tailV is null) throw new InvalidOperationException("the slot is empty");
        int g = Quant.GroupSize;
        var ks = new List<Tensor>();
        var vs = new List<Tensor>();
        foreach (var b in blocks)
        {
            var (dk, dv) = KvQuantizer.Dequantize(b, Quant, g, HeadDim, @as);
            ks.Add(dk);
            vs.Add(dv);
        }
        ks.Add(@as == dtype ? TailKeys : TailKeys.to_type(@as));
        vs.Add(@as == dtype ? TailValues : TailValues.to_type(@as));
        return ks.Count == 1 ? (ks[0], vs[0]) : (torch.cat(ks, 2), torch.cat(vs, 2));
    }

    /// <summary>Whether <see cref="Attend"/> may use the fused CUDA kernel (default true; for tests and benchmarks).</summary>
    public static bool UseFusedKernels { get; set; } = true;

    /// <summary>
    /// On CUDA without autograd, for at most <see cref="QuantizedOps.MaxFusedQueries"/> new tokens: appends them and runs
    /// the split-K kernel (<see cref="QuantizedKvAttention"/>) directly on the packed blocks and the tail (nothing
    /// dequantized outside the kernel). Without a sliding window the step builds no mask: the kernel applies causality
    /// and the entries' validity itself, and the tail is written in place, so a step costs a few launches of host work
    /// (plus a block quantization every G tokens). Otherwise (or when a kernel is unavailable) the reference:
    /// dequantize every block and attend.
    /// </summary>
    /// <inheritdoc/>
    public override Tensor Attend(Tensor q, Tensor keys, Tensor values, Tensor? mask, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        // cleared first, so a step that takes neither kernel path cannot report the previous step's
        LastAttendPath = null;
        long gv = Math.Min(Quant.GroupSize, HeadDim);
        bool tryFused = UseFusedKernels && q.device_type == DeviceType.CUDA && q.dtype == dtype && q.dim() == 4
            && q.size(2) <= QuantizedOps.MaxFusedQueries && !QuantizedOpsNeedsGrad(q)
            && (QuantizedKvAttention.Supports(HeadDim, Quant.GroupSize, gv) || QuantizedOps.KvAttentionSupports(HeadDim, Quant.GroupSize, gv))
            && KernelRuntime.Shared.IsAvailable;
        if (!tryFused) return base.Attend(q, keys, values, mask, scale);
        if (Options.SlidingWindow is null)
        {
            // A decode step: every TorchSharp call is host time, so no dispose scope unless a mask brings temporaries
            // (the append creates no tensor otherwise; blocks and buffers it makes are detached).
            using (var appendScope = mask is null ? null : torch.NewDisposeScope()) AppendStep(keys, values, mask);
            var fast = SplitStep(q, gv, scale);
            if (fast is not null)
            {
                LastAttendPath = "split";
                return fast;
            }
            using var scope = torch.NewDisposeScope();
            return AttendFallback(q, AllowedForLast(q.size(2), q.device), scale).MoveToOuterDisposeScope();
        }
        using (var scope = torch.NewDisposeScope())
        {
            var (_, _, allowed) = UpdateCore(keys, values, mask, materialize: false);
            return AttendFallback(q, allowed, scale).MoveToOuterDisposeScope();
        }
    }

    /// <summary>The split kernel over the slot's own buffers after <see cref="AttentionCacheSlot.AppendStep"/>: causal
    /// over the last n entries with the entries' validity, passed by address (no checks of buffers the slot made);
    /// null when it does not apply.</summary>
    private Tensor? SplitStep(Tensor q, long gv, double scale)
    {
        if (!QuantizedKvAttention.Supports(HeadDim, Quant.GroupSize, gv) || tailK is null || tailV is null) return null;
        long B = q.size(0), Hq = q.size(1), n = q.size(2), D = q.size(3);
        long T = (long)blocks.Count * Quant.GroupSize + tailLength;
        int dev = FusedOps.DeviceIndex(q);
        if (D != HeadDim || B != Batch || Hq % NumHeads != 0 || B > 65535 || Hq > 65535 || n > T || T > int.MaxValue
            || tailK.device_type != DeviceType.CUDA || FusedOps.DeviceIndex(tailK) != dev) return null;
        var table = PointerTable(q);
        var valid = ValidEntries;
        var view = new QuantizedKvAttention.KvView(table is null ? 0 : (long)TensorPointers.Address(table), blocks.Count, Quant.GroupSize,
            (long)TensorPointers.Address(tailK), (long)TensorPointers.Address(tailV), tailK.size(2), tailLength,
            valid is null ? 0 : (long)TensorPointers.Address(valid), valid is null ? 0 : (int)valid.size(1), NumHeads, Outliers, gv);
        return QuantizedKvAttention.AttendView(q, FusedKernels.DtypeCode(dtype), dev, B, Hq, n, D, Quant.Mode, view, null, scale, ref workspace);
    }

    private Tensor AttendFallback(Tensor q, Tensor allowed, double scale)
    {
        long gv = Math.Min(Quant.GroupSize, HeadDim);
        var table = PointerTable(q);
        var o = QuantizedKvAttention.Attend(q, Quant.Mode, table, blocks.Count, Quant.GroupSize, tailK, tailV, tailLength, allowed, null,
            NumHeads, Outliers, gv, scale, ref workspace);
        LastAttendPath = "split";
        if (o is null)
        {
            o = FirstGenerationAttention(q, table, allowed, scale);
            LastAttendPath = "first-generation";
        }
        if (o is null)
        {
            var (k, v) = DequantizedKeysValues();
            o = CachedAttention.Attend(q, k, v, allowed, scale);
            LastAttendPath = "reference";
        }
        return o;
    }

    /// <summary>Which kernel the last <see cref="Attend"/> ran: "split", "first-generation" or "reference"; null when
    /// that step was not fused-eligible (tests).</summary>
    internal string? LastAttendPath { get; private set; }

    /// <summary>The split-K kernel alone over the current cache (tests): causal over the last <c>n</c> entries with the
    /// slot's validity when <paramref name="allowed"/> is null; null when it does not apply.</summary>
    /// <param name="q">Queries.</param>
    /// <param name="allowed">Optional explicit mask <c>[batch, 1, n, T]</c>.</param>
    /// <param name="scale">Score scale.</param>
    /// <param name="splits">Split count override.</param>
    /// <param name="staged">Kernel generation override for KIVI (see <see cref="QuantizedKvAttention.Attend"/>).</param>
    internal Tensor? TrySplitAttention(Tensor q, Tensor? allowed, double scale, int? splits = null, bool? staged = null) =>
        QuantizedKvAttention.Attend(q, Quant.Mode, PointerTable(q), blocks.Count, Quant.GroupSize, tailK, tailV, tailLength, allowed,
            allowed is null ? ValidEntries : null, NumHeads, Outliers, Math.Min(Quant.GroupSize, HeadDim), scale, ref workspace, splits, staged);

    private long Outliers => Quant.Mode == KvQuantMode.VidKv ? KvQuantizer.OutlierChannels(HeadDim, Quant.OutlierFraction) : 0;

    /// <summary>Appends keys and values (as <see cref="AttentionCacheSlot.Update"/>) without materialising the cache,
    /// e.g. after a prefill whose attention was computed elsewhere.</summary>
    /// <param name="keys">New keys <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="values">New values.</param>
    /// <param name="mask">Optional <c>[batch, n]</c> mask.</param>
    public void Prefill(Tensor keys, Tensor values, Tensor? mask = null)
    {
        using var scope = torch.NewDisposeScope();
        UpdateCore(keys, values, mask, materialize: false);
    }

    /// <summary>The fused attention of <paramref name="q"/> over the current cache without appending (benchmarks and
    /// tests): the split-K kernel, else the first-generation kernel (<see cref="QuantizedOps.KvAttention"/>); null when
    /// neither applies.</summary>
    /// <param name="q">Queries <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="allowed">Boolean <c>[batch, 1, n, T]</c> over the cached tokens.</param>
    /// <param name="scale">Score scale.</param>
    public Tensor? TryFusedAttention(Tensor q, Tensor allowed, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.device_type != DeviceType.CUDA || !FusedOps.IsAvailable(q.device)) return null;
        long gv = Math.Min(Quant.GroupSize, HeadDim);
        var table = PointerTable(q);
        return QuantizedKvAttention.Attend(q, Quant.Mode, table, blocks.Count, Quant.GroupSize, tailK, tailV, tailLength, allowed, null,
                NumHeads, Outliers, gv, scale, ref workspace)
            ?? FirstGenerationAttention(q, table, allowed, scale);
    }

    /// <summary>The split-K kernel over the current cache without appending, <paramref name="q"/> standing for the last
    /// <c>n</c> entries (causal; one query sees every entry) with the slot's validity (benchmarks); null when it does not
    /// apply.</summary>
    /// <param name="q">Queries <c>[batch, heads, n, headDim]</c>.</param>
    /// <param name="scale">Score scale.</param>
    public Tensor? TryFusedAttention(Tensor q, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.device_type != DeviceType.CUDA || !FusedOps.IsAvailable(q.device)) return null;
        return TrySplitAttention(q, null, scale);
    }

    /// <summary>The first-generation fused kernel (<see cref="QuantizedOps.KvAttention"/>) over the same cache (fallback
    /// and benchmarks); null when it does not apply.</summary>
    /// <param name="q">Queries.</param>
    /// <param name="allowed">Boolean <c>[batch, 1, n, T]</c>.</param>
    /// <param name="scale">Score scale.</param>
    public Tensor? TryFirstGenerationAttention(Tensor q, Tensor allowed, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.device_type != DeviceType.CUDA || !FusedOps.IsAvailable(q.device)) return null;
        return FirstGenerationAttention(q, PointerTable(q), allowed, scale);
    }

    private Tensor? FirstGenerationAttention(Tensor q, Tensor? table, Tensor allowed, double scale)
    {
        using var tk = tailK is null ? null : TailKeys;
        using var tv = tailV is null ? null : TailValues;
        return QuantizedOps.KvAttention(q, Quant.Mode, table, blocks.Count, Quant.GroupSize, tk, tv, allowed,
            NumHeads, Outliers, Math.Min(Quant.GroupSize, HeadDim), scale);
    }

    private static bool QuantizedOpsNeedsGrad(Tensor q) => torch.is_grad_enabled() && q.requires_grad;

    /// <summary>Device table of the blocks' tensor pointers (int64 [capacity, 8]), extended as blocks are added.</summary>
    private Tensor? PointerTable(Tensor like)
    {
        if (blocks.Count == 0) return null;
        int dev = like.device_index < 0 ? 0 : (int)like.device_index;
        if (ptrTable is null || ptrTable.size(0) < blocks.Count || ptrTable.device_index != like.device_index)
        {
            long cap = Math.Max(64, ptrTable is null ? 64 : ptrTable.size(0));
            while (cap < blocks.Count) cap *= 2;
            var t = torch.zeros(new[] { cap, 8L }, ScalarType.Int64, like.device);
            if (ptrTable is not null && ptrTable.device_index == like.device_index && ptrRows > 0)
                using (var dst = t.narrow(0, 0, ptrRows)) using (var src = ptrTable.narrow(0, 0, ptrRows)) dst.copy_(src);
            else ptrRows = 0;
            ptrTable?.Dispose();
            ptrTable = t.DetachFromDisposeScope();
        }
        if (ptrRows < blocks.Count)
        {
            var rows = new long[(blocks.Count - ptrRows) * 8];
            for (int i = ptrRows; i < blocks.Count; i++)
            {
                var b = blocks[i];
                if (b.KeyCodes.device_type != DeviceType.CUDA || b.KeyCodes.device_index != like.device_index)
                    throw new InvalidOperationException("quantized KV blocks are not on the query's device");
                MakeContiguous(b);
                int r = (i - ptrRows) * 8;
                rows[r] = (long)TensorPointers.Get(b.KeyCodes, ScalarType.Byte, dev, "key codes");
                rows[r + 1] = (long)TensorPointers.Get(b.KeyScale, ScalarType.Float16, dev, "key scale");
                rows[r + 2] = (long)TensorPointers.Get(b.KeyMin, ScalarType.Float16, dev, "key min");
                rows[r + 3] = b.KeyPlane1 is null ? 0 : (long)TensorPointers.Get(b.KeyPlane1, ScalarType.Byte, dev, "key plane");
                rows[r + 4] = b.OutlierIdx is null ? 0 : (long)TensorPointers.Get(b.OutlierIdx, ScalarType.Int16, dev, "outliers");
                rows[r + 5] = (long)TensorPointers.Get(b.ValueCodes, ScalarType.Byte, dev, "value codes");
                rows[r + 6] = (long)TensorPointers.Get(b.ValueScale, ScalarType.Float16, dev, "value scale");
                rows[r + 7] = (long)TensorPointers.Get(b.ValueMin, ScalarType.Float16, dev, "value min");
            }
            // a block or two per step (the common case) is written by a one-thread launch: a host-to-device copy from
            // pageable memory would wait for the queued kernels
            int added = blocks.Count - ptrRows;
            bool written = added <= 2 && UseFusedKernels;
            for (int i = 0; written && i < added; i++)
                written = QuantizedKvAttention.WriteTableRow(ptrTable, ptrRows + i, rows.AsSpan(i * 8, 8), Quant.Mode, HeadDim, dtype);
            if (!written)
            {
                using var cpu = torch.tensor(rows, new long[] { added, 8 });
                using var dst = ptrTable.narrow(0, ptrRows, added);
                dst.copy_(cpu);
            }
            ptrRows = blocks.Count;
        }
        return ptrTable;
    }

    private static void MakeContiguous(QuantizedKvBlock b)
    {
        // contiguous and 16-byte aligned: the staged kernel copies the codes and scales in 16-byte pieces
        static Tensor C(Tensor t)
        {
            if (t.is_contiguous() && ((long)TensorPointers.Address(t) & 15) == 0) return t;
            var c = (t.is_contiguous() ? t.clone() : t.contiguous()).DetachFromDisposeScope();   // a fresh allocation is aligned
            t.Dispose();
            return c;
        }
        b.KeyCodes = C(b.KeyCodes);
        b.KeyScale = C(b.KeyScale);
        b.KeyMin = C(b.KeyMin);
        if (b.KeyPlane1 is not null) b.KeyPlane1 = C(b.KeyPlane1);
        if (b.OutlierIdx is not null) b.OutlierIdx = C(b.OutlierIdx);
        b.ValueCodes = C(b.ValueCodes);
        b.ValueScale = C(b.ValueScale);
        b.ValueMin = C(b.ValueMin);
    }

    /// <summary>Blocks evicted by the sliding window since the last reset.</summary>
    public int EvictedBlocks { get; private set; }

    /// <summary>A packed block's scales and minimums cover all its G tokens, so a block stays whole while any of its
    /// tokens is needed (a sink, or inside the window); tail tokens go one by one.</summary>
    /// <inheritdoc/>
    protected override Tensor RetainedOnEviction(Tensor needed)
    {
        ArgumentNullException.ThrowIfNull(needed);
        if (blocks.Count == 0) return needed;
        long g = Quant.GroupSize, quantized = blocks.Count * g;
        var perBlock = needed.narrow(0, 0, quantized).view(blocks.Count, g).any(1, keepdim: true).expand(blocks.Count, g).reshape(quantized);
        return torch.cat(new[] { perBlock, needed.narrow(0, quantized, needed.shape[0] - quantized) }, 0);
    }

    /// <inheritdoc/>
    protected override void Compact(Tensor keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        using var scope = torch.NewDisposeScope();
        long g = Quant.GroupSize, quantized = blocks.Count * g;
        var kept = keep.cpu().data<long>().ToArray();
        var keptSet = new HashSet<long>(kept);
        var survivors = new List<QuantizedKvBlock>();
        for (int b = 0; b < blocks.Count; b++)
        {
            bool first = keptSet.Contains(b * g);
            for (long i = b * g + 1; i < (b + 1) * g; i++)
                if (keptSet.Contains(i) != first) throw new InvalidOperationException("a quantized KV block can only be evicted whole");
            if (first) survivors.Add(blocks[b]);
            else { Retire(blocks[b]); EvictedBlocks++; }
        }
        if (survivors.Count != blocks.Count)
        {
            blocks.Clear();
            blocks.AddRange(survivors);
            ptrRows = 0; // the device table of block pointers is rewritten from the first block
        }
        if (tailK is not null && tailV is not null)
        {
            var tailKeep = kept.Where(i => i >= quantized).Select(i => i - quantized).ToArray();
            if (tailKeep.Length != tailLength)
            {
                // out of place: the buffers of a step's start must keep their rows
                var idx = torch.tensor(tailKeep, device: tailK.device);
                var k = torch.zeros_like(tailK).DetachFromDisposeScope();
                var v = torch.zeros_like(tailV).DetachFromDisposeScope();
                using (torch.no_grad())
                {
                    k.narrow(2, 0, tailKeep.Length).copy_(tailK.index_select(2, idx));
                    v.narrow(2, 0, tailKeep.Length).copy_(tailV.index_select(2, idx));
                }
                Retire(tailK);
                Retire(tailV);
                (tailK, tailV, tailLength) = (k, v, tailKeep.Length);
            }
        }
    }

    /// <inheritdoc/>
    public override void Reset()
    {
        if (InStep) throw new InvalidOperationException($"the cache slot of layer {LayerIndex} cannot be reset inside a step");
        base.Reset();
        foreach (var b in blocks) b.Dispose();
        blocks.Clear();
        EvictedBlocks = 0;
        ptrTable?.Dispose(); ptrTable = null;
        ptrRows = 0;
        tailK?.Dispose(); tailK = null;
        tailV?.Dispose(); tailV = null;
        spareK?.Dispose(); spareK = null;
        spareV?.Dispose(); spareV = null;
        tailLength = 0;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (!disposing) return;
        foreach (var b in blocks) b.Dispose();
        tailK?.Dispose();
        tailV?.Dispose();
        spareK?.Dispose();
        spareV?.Dispose();
        ptrTable?.Dispose();
        workspace?.Dispose();
    }
}
