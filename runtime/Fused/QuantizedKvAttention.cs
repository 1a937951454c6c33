using System;
using System.Collections.Concurrent;
using Mix.Runtime.Cuda;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Launcher of the split-K attention over a quantized KV cache (<see cref="KvAttentionKernelSources"/>): packed blocks
    /// read through a device table of per-block tensor pointers, then the full-precision tail, in one launch, merged by a
    /// combine kernel. The split count comes from the device's SM count and the context length. Returns null when the
    /// kernel does not apply (the caller falls back to <see cref="QuantizedOps.KvAttention"/> or the reference path).
    /// </summary>
    public static class QuantizedKvAttention
    {
        /// <summary>Queries per launch (more are processed in launches of this many).</summary>
        public const int QueriesPerLaunch = 4;

        private const int Warps = 4;
        private const int MaxSplits = 512;   // KVA_MAX_SPLITS: the combine keeps one weight per split in shared memory
        private const int WarpsPerSm = 32;   // resident warps aimed at per SM (memory parallelism)

        private static readonly ConcurrentDictionary<(int dtype, int mode, long d, bool rolled, bool tritAlu), CudaKernelSpec> Specs = new();
        private static readonly ConcurrentDictionary<int, int> SmCount = new();

        internal static CudaKernelSpec Spec(int dtype, KvQuantMode mode, long headDim) => Spec(dtype, mode, headDim, RolledTransposeSum);

        private static CudaKernelSpec Spec(int dtype, KvQuantMode mode, long headDim, bool rolled) =>
            Specs.GetOrAdd((dtype, QuantizedOps.KvCode(mode), headDim, rolled, false), k => new CudaKernelSpec("mix_kv_attention_split",
                string.Join("\n", FusedKernelSources.Prelude, KvAttentionKernelSources.Source), Options(k)));

        private static readonly ConcurrentDictionary<(int dtype, int mode, long d, bool rolled, bool tritAlu), CudaKernelSpec> StagedSpecs = new();

        internal static CudaKernelSpec StagedSpec(int dtype, KvQuantMode mode, long headDim) =>
            StagedSpec(dtype, mode, headDim, RolledTransposeSum, VidKvTritArithmetic);

        /// <summary>The staged module with the code-generation switches given rather than read (tests).</summary>
        internal static CudaKernelSpec StagedSpec(int dtype, KvQuantMode mode, long headDim, bool rolled, bool tritAlu) =>
            StagedSpecs.GetOrAdd((dtype, QuantizedOps.KvCode(mode), headDim, rolled, mode == KvQuantMode.VidKv && tritAlu),
                k => new CudaKernelSpec("mix_kv_attention_staged",
                    // joined by newlines: the raw-string parts end without one, and "}#if" does not compile
                    string.Join("\n", FusedKernelSources.Prelude, KvAttentionKernelSources.Source, KvAttentionKernelSources.Staged), Options(k)));

        private static string[] Options((int dtype, int mode, long d, bool rolled, bool tritAlu) k)
        {
            var o = new System.Collections.Generic.List<string> { $"-DMIX_T={k.dtype}", $"-DMIX_KV={k.mode}", $"-DKVA_D={k.d}" };
            if (k.rolled) o.Add("-DKVA_ROLLED_SUM=1");
            if (k.tritAlu) o.Add("-DKVA_TRIT_ALU=1");
            return o.ToArray();
        }

        /// <summary>Whether the staged VidKV kernel decodes its trit bytes with integer arithmetic (two bytes per
        /// multiply, <c>kva_trits2</c>) rather than through a 256-entry table in shared memory (four lookups per lane and
        /// token, whose random addresses conflict across banks). Default false (the table, as in the second generation);
        /// the KV bench times both.</summary>
        public static bool VidKvTritArithmetic { get; set; }

        /// <summary>Whether the launches from now on use the transposing score sum as written before (two nested
        /// loops, which NVRTC 11.8 left partly rolled: the 32 partial scores in local memory) rather than one unrolled
        /// step per template instance (the same additions in registers). Default false; true lets benchmarks time the
        /// old code generation. Both generations of every cache are affected.</summary>
        public static bool RolledTransposeSum { get; set; }

        [ThreadStatic] private static string? lastKernel;

        /// <summary>The kernel the last <see cref="Attend"/> on this thread launched: "staged" (third generation) or
        /// "split" (second), null before any (tests).</summary>
        internal static string? LastKernel => lastKernel;

        /// <summary>Whether the kernel supports these sizes: D % 32 == 0, D ≤ 256, G % 32 == 0, the value group a multiple
        /// of 32 that divides D.</summary>
        /// <param name="headDim">D.</param>
        /// <param name="groupSize">G (tokens per block).</param>
        /// <param name="valueGroup">Channels per value group.</param>
        public static bool Supports(long headDim, int groupSize, long valueGroup) =>
            headDim > 0 && headDim % 32 == 0 && headDim <= 256 && groupSize > 0 && groupSize % 32 == 0
            && valueGroup > 0 && valueGroup % 32 == 0 && headDim % valueGroup == 0;

        /// <summary>Splits of the context per (batch, head): enough warps to fill the SMs, at least one 32-token chunk
        /// each, at most 512; returns (splits, chunks per split).</summary>
        /// <param name="chunks">32-token chunks of the context.</param>
        /// <param name="heads">batch × query heads.</param>
        /// <param name="sms">Multiprocessors of the device.</param>
        public static (int splits, int chunksPerSplit) Splits(long chunks, long heads, int sms)
        {
            if (chunks <= 0) return (1, 1);
            long target = Math.Max(1L, (long)sms * WarpsPerSm / Math.Max(1, heads));
            long s = Math.Clamp(target, 1, Math.Min(chunks, MaxSplits));
            long cps = (chunks + s - 1) / s;
            return ((int)((chunks + cps - 1) / cps), (int)cps);
        }

        /// <summary>Whether KIVI caches take the third-generation kernel (<c>kva_fast_q*</c>: cp.async-staged chunks, one
        /// split per block, the merge in the last block) rather than the second (<c>kva_split_q*</c> + <c>kva_combine</c>).
        /// Default true; false lets benchmarks time the second generation.</summary>
        public static bool StagedKivi { get; set; } = true;

        /// <summary>Whether VidKV caches take the third-generation kernel (the same <c>kva_fast_q*</c> family, its bit
        /// planes, outlier plane and trit bytes staged with the scales) rather than the second. Off by default until a
        /// GPU run has checked and timed it (written in session 17: emulated, and compiled by NVRTC 11.8 without local
        /// memory, but no device was lent after it landed); `--quant --only kv` times both generations for every cache.</summary>
        public static bool StagedVidKv { get; set; }

        /// <summary>The kernel generation a cache of <paramref name="mode"/> takes by default: the staged (third) one when
        /// true.</summary>
        /// <param name="mode">KV scheme.</param>
        public static bool StagedByDefault(KvQuantMode mode) => mode == KvQuantMode.VidKv ? StagedVidKv : StagedKivi;

        /// <summary>Resident blocks aimed at per SM by the staged kernel (its shared memory allows about five at D = 128).</summary>
        private const int StagedBlocksPerSm = 4;

        /// <summary>Warps per block of the staged kernel: KVA_FW in the source (its two stage buffers per warp stay within
        /// 48 KB of static shared memory).</summary>
        /// <param name="headDim">D.</param>
        internal static int StagedWarps(long headDim) => headDim <= 128 ? 4 : 2;

        /// <summary>Splits of the staged kernel (one block each): about <see cref="StagedBlocksPerSm"/> blocks per SM over
        /// all (batch, head) pairs, but at least two chunks per warp (its staging pipeline) and at most 512 splits; returns
        /// (splits, chunks per block).</summary>
        /// <param name="chunks">32-token chunks of the context.</param>
        /// <param name="heads">batch × query heads.</param>
        /// <param name="sms">Multiprocessors of the device.</param>
        /// <param name="warps">Warps per block.</param>
        public static (int splits, int chunksPerBlock) StagedSplits(long chunks, long heads, int sms, int warps)
        {
            if (chunks <= 0) return (1, 1);
            long target = Math.Max(1L, ((long)sms * StagedBlocksPerSm + heads - 1) / Math.Max(1, heads));
            long most = Math.Clamp(chunks / (2L * Math.Max(1, warps)), 1, MaxSplits);
            long s = Math.Clamp(target, 1, most);
            long cpb = (chunks + s - 1) / s;
            return ((int)((chunks + cpb - 1) / cpb), (int)cpb);
        }

        private static readonly ConcurrentDictionary<int, Tensor> CounterBuffers = new();
        private static readonly object CounterLock = new();

        /// <summary>Zeroed uint32 arrival counters, one per (batch, head), for the staged kernel's last-block merge (each
        /// launch leaves them zero again). One buffer per device: our launches share the device's stream, so calls never
        /// overlap.</summary>
        private static long Counters(int dev, long heads, Device device)
        {
            lock (CounterLock)
            {
                if (!CounterBuffers.TryGetValue(dev, out var t) || t.numel() < heads)
                {
                    long cap = Math.Max(1024, heads);
                    var grown = torch.zeros(new[] { cap }, ScalarType.Int32, device).DetachFromDisposeScope();
                    if (t is not null) t.Dispose();
                    CounterBuffers[dev] = t = grown;
                }
                return (long)TensorPointers.Get(t, ScalarType.Int32, dev, "counters");
            }
        }

        /// <summary>Registers and local memory per thread of the one-query entries (<c>kva_fast_q1</c>, <c>kva_split_q1</c>)
        /// for every cache at head dimension <paramref name="headDim"/>, with the transposing sum's current and old code
        /// generation (and VidKV's arithmetic trit decoding), as the device's driver loaded them (benchmarks print them:
        /// the host's NVRTC may differ from the tests'); empty without CUDA kernels. Reads no switch.</summary>
        /// <param name="device">CUDA device.</param>
        /// <param name="dtype">I/O dtype.</param>
        /// <param name="headDim">D.</param>
        public static System.Collections.Generic.IEnumerable<(string Kernel, int Registers, int LocalBytes)> KernelResources(Device device, ScalarType dtype,
            long headDim = 128)
        {
            int dt = FusedKernels.DtypeCode(dtype);
            int dev = device.index < 0 ? 0 : device.index;
            if (dt < 0 || !FusedOps.IsAvailable(device)) yield break;
            foreach (var mode in new[] { KvQuantMode.Kivi4, KvQuantMode.Kivi2, KvQuantMode.VidKv })
                foreach (bool rolled in new[] { false, true })
                {
                    var staged = KernelRuntime.Shared.TryGetFunction(StagedSpec(dt, mode, headDim, rolled, false), "kva_fast_q1", dev);
                    var split = KernelRuntime.Shared.TryGetFunction(Spec(dt, mode, headDim, rolled), "kva_split_q1", dev);
                    string suffix = rolled ? ", rolled sum" : "";
                    if (staged is not null) yield return ($"{mode} kva_fast_q1{suffix}", staged.Registers, staged.LocalBytes);
                    if (split is not null) yield return ($"{mode} kva_split_q1{suffix}", split.Registers, split.LocalBytes);
                    if (mode == KvQuantMode.VidKv && !rolled
                        && KernelRuntime.Shared.TryGetFunction(StagedSpec(dt, mode, headDim, false, true), "kva_fast_q1", dev) is { } alu)
                        yield return ($"{mode} kva_fast_q1, trits by arithmetic", alu.Registers, alu.LocalBytes);
                }
        }

        private static int Sms(int dev) =>
            SmCount.GetOrAdd(dev, d => KernelRuntime.Shared.Driver!.GetAttribute(d, CudaDriver.AttributeMultiprocessorCount));

        /// <summary>
        /// Writes the step's keys and values <c>[B, Hkv, n, D]</c> (the buffers' dtype, unit stride along D, any other
        /// strides) into the tail buffers <c>[B, Hkv, capacity, D]</c> at rows <paramref name="position"/> onwards in one
        /// launch; false when the kernel does not apply (the caller copies with TorchSharp).
        /// </summary>
        /// <param name="keys">New keys.</param>
        /// <param name="values">New values.</param>
        /// <param name="bufK">Tail key buffer (contiguous).</param>
        /// <param name="bufV">Tail value buffer.</param>
        /// <param name="position">First row written.</param>
        /// <param name="mode">KV scheme (selects the compiled module).</param>
        public static bool AppendTail(Tensor keys, Tensor values, Tensor bufK, Tensor bufV, long position, KvQuantMode mode)
        {
            ArgumentNullException.ThrowIfNull(keys);
            ArgumentNullException.ThrowIfNull(values);
            ArgumentNullException.ThrowIfNull(bufK);
            ArgumentNullException.ThrowIfNull(bufV);
            if (bufK.dtype != keys.dtype || bufV.dtype != keys.dtype || bufK.dim() != 4 || bufV.dim() != 4 || bufK.device_type != DeviceType.CUDA
                || !bufK.is_contiguous() || !bufV.is_contiguous() || bufV.numel() != bufK.numel() || keys.dim() != 4
                || bufK.size(0) != keys.size(0) || bufK.size(1) != keys.size(1) || bufK.size(3) != keys.size(3)
                || FusedOps.DeviceIndex(bufK) != FusedOps.DeviceIndex(keys) || FusedOps.DeviceIndex(bufV) != FusedOps.DeviceIndex(keys)) return false;
            return AppendTail(keys, values, TensorPointers.Address(bufK), TensorPointers.Address(bufV), bufK.size(2), position, mode);
        }

        /// <summary><see cref="AppendTail(Tensor, Tensor, Tensor, Tensor, long, KvQuantMode)"/> into tail buffers given by
        /// address (contiguous <c>[B, H, capacity, D]</c> of the keys' dtype on their device: the caller owns and has
        /// checked them).</summary>
        internal static bool AppendTail(Tensor keys, Tensor values, IntPtr bufK, IntPtr bufV, long capacity, long position, KvQuantMode mode)
        {
            var dtype = keys.dtype;
            int dt = FusedKernels.DtypeCode(dtype);
            if (dt < 0 || keys.device_type != DeviceType.CUDA || values.dtype != dtype || keys.dim() != 4 || values.dim() != 4
                || keys.stride(3) != 1 || values.stride(3) != 1 || FusedOps.NeedsGrad(keys, values)) return false;
            long B = keys.size(0), H = keys.size(1), n = keys.size(2), D = keys.size(3);
            if (values.size(0) != B || values.size(1) != H || values.size(2) != n || values.size(3) != D || position + n > capacity || D % 32 != 0
                || D > 256 || B > 65535 || H > 65535 || n * D > int.MaxValue) return false;
            int dev = FusedOps.DeviceIndex(keys);
            if (FusedOps.DeviceIndex(values) != dev) return false;
            try
            {
                var fn = KernelRuntime.Shared.GetFunction(Spec(dt, mode, D), "kva_append", dev);
                using var args = new KernelArguments(dev);
                args.Add((long)TensorPointers.Address(keys)).Add((long)TensorPointers.Address(values))
                    .Add(keys.stride(0)).Add(keys.stride(1)).Add(keys.stride(2)).Add(values.stride(0)).Add(values.stride(1)).Add(values.stride(2))
                    .Add((long)bufK).Add((long)bufV).Add(capacity).Add((int)position).Add((int)n);
                fn.Launch(new Dim3((uint)((n * D + 127) / 128), (uint)H, (uint)B), new Dim3(128), 0, args);
                return true;
            }
            catch (CudaKernelUnavailableException)
            {
                return false;
            }
        }

        /// <summary>
        /// KIVI-quantizes the first G rows of the tail buffers into a new block (tensors allocated here) in
        /// one launch, with the numerics of <see cref="KvQuantizer.Quantize"/> on CUDA, and moves rows [G, length) to the
        /// front of <paramref name="dstK"/>/<paramref name="dstV"/> (another pair of buffers of the same shape); null when
        /// the kernel does not apply (VidKV, other dtypes or sizes).
        /// </summary>
        /// <param name="srcK">Tail key buffer <c>[B, H, capacity, D]</c>.</param>
        /// <param name="srcV">Tail value buffer.</param>
        /// <param name="dstK">Destination key buffer (same shape).</param>
        /// <param name="dstV">Destination value buffer.</param>
        /// <param name="length">Rows in use (≥ G).</param>
        /// <param name="options">Quantization options (KIVI).</param>
        public static QuantizedKvBlock? QuantizeBlock(Tensor srcK, Tensor srcV, Tensor dstK, Tensor dstV, long length, KvQuantizationOptions options)
        {
            ArgumentNullException.ThrowIfNull(srcK);
            ArgumentNullException.ThrowIfNull(srcV);
            ArgumentNullException.ThrowIfNull(dstK);
            ArgumentNullException.ThrowIfNull(dstV);
            ArgumentNullException.ThrowIfNull(options);
            int dt = FusedKernels.DtypeCode(srcK.dtype);
            if (dt < 0 || options.Mode == KvQuantMode.VidKv || srcK.device_type != DeviceType.CUDA || srcK.dim() != 4) return null;
            long B = srcK.shape[0], H = srcK.shape[1], cap = srcK.shape[2], D = srcK.shape[3];
            int G = options.GroupSize;
            long gv = Math.Min(G, D);
            int bits = options.Mode == KvQuantMode.Kivi4 ? 4 : 2;
            if (D % 32 != 0 || D > 256 || G % 8 != 0 || G <= 0 || length < G || length > cap || gv % 8 != 0 || D % gv != 0 || B * H > 65535
                || dstK.numel() != srcK.numel() || dstV.numel() != srcK.numel() || srcV.numel() != srcK.numel()) return null;
            int dev = FusedOps.DeviceIndex(srcK);
            var blk = new QuantizedKvBlock();
            try
            {
                var fn = KernelRuntime.Shared.GetFunction(Spec(dt, options.Mode, D), "kva_quantize", dev);
                var dev0 = srcK.device;
                blk.KeyCodes = torch.empty(new[] { B, H, D, G * bits / 8 }, ScalarType.Byte, dev0).DetachFromDisposeScope();
                blk.KeyScale = torch.empty(new[] { B, H, D }, ScalarType.Float16, dev0).DetachFromDisposeScope();
                blk.KeyMin = torch.empty(new[] { B, H, D }, ScalarType.Float16, dev0).DetachFromDisposeScope();
                blk.ValueCodes = torch.empty(new[] { B, H, G, D * bits / 8 }, ScalarType.Byte, dev0).DetachFromDisposeScope();
                blk.ValueScale = torch.empty(new[] { B, H, G, D / gv }, ScalarType.Float16, dev0).DetachFromDisposeScope();
                blk.ValueMin = torch.empty(new[] { B, H, G, D / gv }, ScalarType.Float16, dev0).DetachFromDisposeScope();
                using var args = new KernelArguments(dev);
                args.Add(srcK, srcK.dtype, "tail keys").Add(srcV, srcK.dtype, "tail values").Add(dstK, srcK.dtype, "shifted keys")
                    .Add(dstV, srcK.dtype, "shifted values").Add(cap).Add((int)length).Add(G).Add((int)gv)
                    .Add(blk.KeyCodes, ScalarType.Byte, "key codes").Add(blk.KeyScale, ScalarType.Float16, "key scale")
                    .Add(blk.KeyMin, ScalarType.Float16, "key min").Add(blk.ValueCodes, ScalarType.Byte, "value codes")
                    .Add(blk.ValueScale, ScalarType.Float16, "value scale").Add(blk.ValueMin, ScalarType.Float16, "value min");
                fn.Launch(new Dim3((uint)(B * H)), new Dim3(128), 0, args);
                return blk;
            }
            catch (CudaKernelUnavailableException)
            {
                blk.Dispose();
                return null;
            }
        }

        /// <summary>Writes one row of a block pointer table (int64 <c>[rows, 8]</c> on the device) with a one-thread launch
        /// (no host-to-device copy, so nothing waits for queued work); false when the kernel is unavailable.</summary>
        /// <param name="table">The table.</param>
        /// <param name="row">Row index.</param>
        /// <param name="pointers">Eight device pointers (0 for none).</param>
        /// <param name="mode">KV scheme (selects the compiled module).</param>
        /// <param name="headDim">D (selects the compiled module).</param>
        /// <param name="dtype">I/O dtype (selects the compiled module).</param>
        public static bool WriteTableRow(Tensor table, int row, ReadOnlySpan<long> pointers, KvQuantMode mode, long headDim, ScalarType dtype)
        {
            ArgumentNullException.ThrowIfNull(table);
            int dt = FusedKernels.DtypeCode(dtype);
            if (dt < 0 || pointers.Length != 8 || table.device_type != DeviceType.CUDA || table.dtype != ScalarType.Int64 || row < 0
                || row >= table.shape[0] || headDim % 32 != 0 || headDim > 256 || headDim <= 0) return false;
            int dev = FusedOps.DeviceIndex(table);
            try
            {
                var fn = KernelRuntime.Shared.GetFunction(Spec(dt, mode, headDim), "kva_table_row", dev);
                using var args = new KernelArguments(dev);
                args.Add(table, ScalarType.Int64, "table").Add(row);
                foreach (var p in pointers) args.Add(p);
                fn.Launch(new Dim3(1), new Dim3(1), 0, args);
                return true;
            }
            catch (CudaKernelUnavailableException)
            {
                return false;
            }
        }

        /// <summary>
        /// softmax(q kᵀ·scale) v of <paramref name="q"/> over <paramref name="blockCount"/> packed blocks (pointers in
        /// <paramref name="table"/>, int64 <c>[≥ blocks, 8]</c> on the device, rows as in
        /// <see cref="QuantKernelSources.KvAttention"/>) followed by the first <paramref name="tailLength"/> tokens of the
        /// tail buffers. Visibility: <paramref name="allowed"/> (boolean <c>[B, 1, n, T]</c>) when given, else causal —
        /// query i is entry T − n + i — over the entries marked in <paramref name="valid"/> (uint8 or bool <c>[B, ≥ T]</c>, null =
        /// all valid); a query always sees itself.
        /// </summary>
        /// <param name="q">Queries <c>[B, Hq, n, D]</c> (contiguous is cheapest).</param>
        /// <param name="mode">KV scheme.</param>
        /// <param name="table">Pointer table (null when there are no blocks).</param>
        /// <param name="blockCount">Blocks.</param>
        /// <param name="groupSize">G.</param>
        /// <param name="tailK">Tail key buffer <c>[B, Hkv, capacity, D]</c> (contiguous, q's dtype) or null.</param>
        /// <param name="tailV">Tail value buffer.</param>
        /// <param name="tailLength">Tail tokens in use.</param>
        /// <param name="allowed">Optional explicit mask.</param>
        /// <param name="valid">Optional validity of the entries.</param>
        /// <param name="kvHeads">Hkv (divides Hq).</param>
        /// <param name="outliers">VidKV outlier channels.</param>
        /// <param name="valueGroup">Channels per value group.</param>
        /// <param name="scale">Score scale.</param>
        /// <param name="workspace">Optional float32 scratch reused across calls (grown when too small; the caller owns it).</param>
        /// <param name="splits">Split count override (tests).</param>
        /// <param name="staged">Kernel generation: the staged (third) one when true, the second when false, null =
        /// <see cref="StagedByDefault"/> (tests).</param>
        public static Tensor? Attend(Tensor q, KvQuantMode mode, Tensor? table, int blockCount, int groupSize, Tensor? tailK,
            Tensor? tailV, long tailLength, Tensor? allowed, Tensor? valid, long kvHeads, long outliers, long valueGroup, double scale,
            ref Tensor? workspace, int? splits = null, bool? staged = null)
        {
            ArgumentNullException.ThrowIfNull(q);
            int dt = FusedKernels.DtypeCode(q.dtype);
            if (dt < 0 || q.dim() != 4 || q.device_type != DeviceType.CUDA || !KernelRuntime.Shared.IsAvailable || FusedOps.NeedsGrad(q)) return null;
            long B = q.size(0), Hq = q.size(1), n = q.size(2), D = q.size(3);
            long Tt = tailLength;
            long T = (long)blockCount * groupSize + Tt;
            if (n < 1 || kvHeads <= 0 || Hq % kvHeads != 0 || !Supports(D, groupSize, valueGroup) || B > 65535 || Hq > 65535) return null;
            if (blockCount > 0 && (table is null || table.device_type != DeviceType.CUDA || table.dtype != ScalarType.Int64 || !table.is_contiguous()
                || table.dim() != 2 || table.size(0) < blockCount || table.size(1) != 8)) return null;
            if (Tt > 0 && (tailK is null || tailV is null || tailK.dtype != q.dtype || tailV.dtype != q.dtype || tailK.dim() != 4 || tailV.dim() != 4
                || tailK.size(0) != B || tailK.size(1) != kvHeads || tailK.size(2) < Tt || tailK.size(3) != D || !tailK.is_contiguous() || !tailV.is_contiguous()
                || tailV.size(0) != B || tailV.size(1) != kvHeads || tailV.size(2) != tailK.size(2) || tailV.size(3) != D)) return null;
            if (T == 0 || T > int.MaxValue || n > T) return null;
            if (allowed is not null && allowed.size(-1) != T) return null;
            if (valid is not null && ((valid.dtype != ScalarType.Byte && valid.dtype != ScalarType.Bool) || valid.dim() != 2 || valid.size(0) != B
                || valid.size(1) < T || !valid.is_contiguous())) return null;
            if (mode == KvQuantMode.VidKv && (outliers < 0 || outliers > D)) return null;
            int dev = FusedOps.DeviceIndex(q);
            foreach (var t in new[] { blockCount > 0 ? table : null, Tt > 0 ? tailK : null, Tt > 0 ? tailV : null, valid })
                if (t is not null && (t.device_type != DeviceType.CUDA || FusedOps.DeviceIndex(t) != dev)) return null;
            var view = new KvView(blockCount > 0 ? (long)TensorPointers.Address(table!) : 0, blockCount, groupSize,
                Tt > 0 ? (long)TensorPointers.Address(tailK!) : 0, Tt > 0 ? (long)TensorPointers.Address(tailV!) : 0, Tt > 0 ? tailK!.size(2) : 0, Tt,
                valid is null ? 0 : (long)TensorPointers.Address(valid), valid is null ? 0 : (int)valid.size(1), kvHeads, outliers, valueGroup);
            Tensor? mask = null;
            try
            {
                if (allowed is not null)
                {
                    mask = allowed.to(ScalarType.Byte, q.device).expand(B, 1, n, T).reshape(B, n, T);
                    if (!mask.is_contiguous()) { var m2 = mask.contiguous(); mask.Dispose(); mask = m2; }
                }
                return AttendView(q, dt, dev, B, Hq, n, D, mode, view, mask, scale, ref workspace, splits, staged);
            }
            finally
            {
                mask?.Dispose();
            }
        }

        /// <summary>The cache as the kernels read it: device addresses and sizes (checked by the caller).</summary>
        /// <param name="Table">Block pointer table (int64 [≥ Blocks, 8]), 0 without blocks.</param>
        /// <param name="Blocks">Packed blocks.</param>
        /// <param name="GroupSize">G.</param>
        /// <param name="TailK">Tail key buffer [B, Hkv, TailCapacity, D] (contiguous, the queries' dtype), 0 without a tail.</param>
        /// <param name="TailV">Tail value buffer.</param>
        /// <param name="TailCapacity">Rows of the tail buffers.</param>
        /// <param name="TailLength">Tail rows in use.</param>
        /// <param name="Valid">Validity bytes [B, ValidStride], 0 = all valid.</param>
        /// <param name="ValidStride">Row stride of <paramref name="Valid"/>.</param>
        /// <param name="KvHeads">Hkv.</param>
        /// <param name="Outliers">VidKV outlier channels.</param>
        /// <param name="ValueGroup">Channels per value group.</param>
        internal readonly record struct KvView(long Table, int Blocks, int GroupSize, long TailK, long TailV, long TailCapacity, long TailLength,
            long Valid, int ValidStride, long KvHeads, long Outliers, long ValueGroup);

        private static readonly string[] StagedEntries = { "kva_fast_q1", "kva_fast_q2", "", "kva_fast_q4" };
        private static readonly string[] SplitEntries = { "kva_split_q1", "kva_split_q2", "", "kva_split_q4" };

        /// <summary>
        /// The launches of <see cref="Attend"/> over a checked <paramref name="kv"/> (a decode step of
        /// <c>QuantizedKvCacheSlot</c> comes here directly: its buffers need no checks, and every TorchSharp call costs host
        /// time). <paramref name="q"/> is a CUDA tensor <c>[B, Hq, n, D]</c> of the cache's dtype (code
        /// <paramref name="dt"/>) on device <paramref name="dev"/>; <paramref name="mask"/> is null or contiguous bytes
        /// <c>[B, n, T]</c>. Null when a kernel is unavailable.
        /// </summary>
        internal static Tensor? AttendView(Tensor q, int dt, int dev, long B, long Hq, long n, long D, KvQuantMode mode, in KvView kv,
            Tensor? mask, double scale, ref Tensor? workspace, int? splits = null, bool? staged = null)
        {
            long Tt = kv.TailLength;
            int blockCount = kv.Blocks, groupSize = kv.GroupSize;
            long T = (long)blockCount * groupSize + Tt;
            try
            {
                long chunks = (long)blockCount * (groupSize / 32) + (Tt + 31) / 32;
                // the staged module is compiled on its own: if it cannot be built, the second generation runs
                bool useStaged = (staged ?? StagedByDefault(mode))
                    && KernelRuntime.Shared.TryGetFunction(StagedSpec(dt, mode, D), StagedEntries[0], dev) is not null;
                int warps = useStaged ? StagedWarps(D) : Warps;
                var (S, cps) = splits is int forced ? (Math.Max(1, (int)Math.Min(Math.Min(forced, useStaged ? (chunks + warps - 1) / warps : chunks), MaxSplits)), 0)
                    : useStaged ? StagedSplits(chunks, B * Hq, Sms(dev), warps) : Splits(chunks, B * Hq, Sms(dev));
                if (cps == 0) { cps = (int)((chunks + S - 1) / S); S = (int)((chunks + cps - 1) / cps); }
                long nqMax = Math.Min(n, QueriesPerLaunch);
                long need = B * Hq * S * nqMax * (D + 2);
                if (workspace is null || workspace.numel() < need || FusedOps.DeviceIndex(workspace) != dev)
                {
                    workspace?.Dispose();
                    workspace = torch.empty(new[] { Math.Max(need, 1L << 16) }, ScalarType.Float32, q.device).DetachFromDisposeScope();
                }
                var spec = useStaged ? StagedSpec(dt, mode, D) : Spec(dt, mode, D);
                var combine = useStaged ? null : KernelRuntime.Shared.GetFunction(spec, "kva_combine", dev);
                long ws = (long)TensorPointers.Address(workspace);
                long counters = useStaged && S > 1 ? Counters(dev, B * Hq, q.device) : 0;
                Tensor? qc = null;
                var o = torch.empty(new[] { B, Hq, n, D }, q.dtype, q.device);
                try
                {
                    qc = q.is_contiguous() ? null : q.contiguous();
                    var qq = qc ?? q;
                    long qPtr = (long)TensorPointers.Address(qq);
                    long oPtr = (long)TensorPointers.Address(o);
                    long maskPtr = mask is null ? 0 : (long)TensorPointers.Address(mask);
                    long tailStride = Tt > 0 ? kv.TailCapacity * D : 0L;
                    float scaleLog2 = (float)(scale * 1.4426950408889634);
                    for (long i0 = 0; i0 < n; i0 += QueriesPerLaunch)
                    {
                        long nq = Math.Min(QueriesPerLaunch, n - i0);
                        int nqT = nq <= 1 ? 1 : nq <= 2 ? 2 : 4;
                        var fn = KernelRuntime.Shared.GetFunction(spec, (useStaged ? StagedEntries : SplitEntries)[nqT - 1], dev);
                        long pml = ws + 4 * B * Hq * S * nq * D;
                        // queries of this launch: rows i0 .. i0+nq of every (b, h) — contiguous only when n == nq, so copy otherwise
                        Tensor? qSlice = null, mSlice = null, oSlice = null;
                        try
                        {
                            long qp = qPtr, mp = maskPtr, op = oPtr;
                            if (n != nq)
                            {
                                qSlice = qq.narrow(2, i0, nq).contiguous();
                                qp = (long)TensorPointers.Address(qSlice);
                                if (mask is not null)
                                {
                                    mSlice = mask.narrow(1, i0, nq).contiguous();
                                    mp = (long)TensorPointers.Address(mSlice);
                                }
                                oSlice = torch.empty(new[] { B, Hq, nq, D }, q.dtype, q.device);
                                op = (long)TensorPointers.Address(oSlice);
                            }
                            using (var args = new KernelArguments(dev))
                            {
                                args.Add(qp).Add(kv.Table).Add(kv.TailK).Add(kv.TailV).Add(tailStride).Add(mp).Add(kv.Valid).Add(kv.ValidStride).Add(ws).Add(pml);
                                if (useStaged) args.Add(counters).Add(op);
                                args.Add((int)Hq).Add((int)kv.KvHeads).Add((int)nq).Add((int)(T - n + i0)).Add(groupSize).Add(blockCount).Add((int)Tt)
                                    .Add((int)kv.Outliers).Add((int)kv.ValueGroup).Add(cps).Add(S).Add(scaleLog2);
                                fn.Launch(new Dim3(useStaged ? (uint)S : (uint)((S + Warps - 1) / Warps), (uint)Hq, (uint)B), new Dim3((uint)(warps * 32)), 0, args);
                            }
                            if (combine is not null)
                            {
                                using var args = new KernelArguments(dev);
                                args.Add(ws).Add(pml).Add(op).Add((int)Hq).Add((int)nq).Add(S);
                                combine.Launch(new Dim3((uint)nq, (uint)Hq, (uint)B), new Dim3(128), 0, args);
                            }
                            if (oSlice is not null)
                            {
                                using var dst = o.narrow(2, i0, nq);
                                dst.copy_(oSlice);
                            }
                        }
                        finally
                        {
                            qSlice?.Dispose();
                            mSlice?.Dispose();
                            oSlice?.Dispose();
                        }
                    }
                    lastKernel = useStaged ? "staged" : "split";
                    var r = o;
                    o = null!;
                    return r;
                }
                finally
                {
                    o?.Dispose();
                    qc?.Dispose();
                }
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }
    }
}
