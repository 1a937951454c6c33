using System;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Mix.Runtime.Cuda;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The tensor-core weight-only linear (<see cref="QuantGemmKernelSources"/>) for up to <see cref="MaxRows"/> rows of
    /// float16/bfloat16 activations: the repacked weight layout it reads (made once per weight tensor and kept beside
    /// it), the launch plan (rows per m16 tile, split-K from the device's SM count) and the launch. Reached through
    /// <see cref="QuantizedOps.Linear"/>, which falls back to the GEMV kernel when this path does not apply.
    /// </summary>
    /// <remarks>
    /// Repacked layout (the checkpoint format does not change). N is padded to 128 channels and K to whole chunks
    /// (int4 128, int8 64). <c>codes</c> int32 <c>[N/8, K/chunk, 32, 4]</c>: for n8 tile <c>nt</c> and chunk <c>c</c>,
    /// lane <c>l = 4g + t</c> holds four words, each covering k16 steps of the mma's B fragment (column <c>8nt + g</c>,
    /// rows <c>2t, 2t+1, 2t+8, 2t+9</c> of the step). int4: word j holds steps 2j + h (h = 0, 1); the code of step row
    /// <c>8kh + 2t + e</c> sits in nibble <c>2h + kh + 4e</c>. int8: word j is step j, bytes <c>(kh, e)</c> at
    /// <c>2kh + e</c>, each stored as q + 128. int4 group data: <c>sz</c> int32 <c>[N/8, groups, 8]</c>, the scale
    /// rounded to the activation dtype in the high half and the zero point in the low byte (one copy per dtype in use);
    /// int8: the per-channel scales, padded. Plus a split-K counter per block column and a partial-sum buffer.
    /// </remarks>
    public static class QuantizedGemm
    {
        /// <summary>Rows up to which the tensor-core kernel is used (4 m16 tiles).</summary>
        public const int MaxRows = QuantGemmKernelSources.MaxRows;

        /// <summary>Whether <see cref="QuantizedOps.Linear"/> may use this kernel (default true; benchmarks compare).</summary>
        public static bool Enabled { get; set; } = true;

        /// <summary>
        /// Benchmark instrumentation, never for results: 0 (default) the kernel; 1 a probe that only streams the weights
        /// (no dequantization, no mma); 2 one that feeds the raw codes to the mma (no dequantization). Outputs of 1 and 2
        /// are wrong by design; they tell how much of the time is the weight stream, the mma and the dequantization.
        /// </summary>
        public static int Probe { get; set; }

        /// <summary>
        /// Opt-in variant for int4 with groups of 128 or more (one group per chunk): the mma takes the exact integers
        /// q − zero and the group's scale is applied in fp32 once per chunk and accumulator, instead of one packed FMA per
        /// weight pair in the activation dtype (more exact: no per-weight rounding). The value is the most m16 tiles it is
        /// used for (0, the default: off; 1: up to 16 rows; 2: up to 32 rows): the fp32 step costs 4 FMAs per m16 tile,
        /// so it saves issue slots only for few tiles. Off by default until a GPU run shows it is not slower.
        /// </summary>
        public static int Int4ScaleInAccumulator
        {
            get => s_fscale;
            set => s_fscale = value is 0 or 1 or 2 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "0, 1 or 2 m16 tiles");
        }
        private static int s_fscale;

        /// <summary>
        /// Opt-in plan for more than 32 rows (4 m16 tiles): split-K up to about two blocks per SM without the cap that keeps
        /// the fp32 partials under half the int4 weight bytes (they stay in L2 at these sizes), e.g. 4096→4096 at 64 rows
        /// runs 9 splits (288 blocks) instead of 4 (128 blocks: one per SM, one warp per scheduler). Off by default until a
        /// GPU run shows it is not slower.
        /// </summary>
        public static bool WideSplitsForManyRows { get; set; }

        /// <summary>
        /// Opt-in: chunks of weight loads per lane in the register ring for more than 16 rows (2, the default: one chunk
        /// ahead; 3: two ahead, 16 more registers per thread). Off by default until a GPU run shows it is not slower.
        /// </summary>
        public static int RingForManyRows
        {
            get => s_ring;
            set => s_ring = value is 2 or 3 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "2 or 3 chunks");
        }
        private static int s_ring = 2;

        /// <summary>The opt-in build an entry takes (<see cref="Int4ScaleInAccumulator"/>, <see cref="RingForManyRows"/>): the
        /// fp32 group-scale build only where it changes the entry (int4, one group per chunk, few enough tiles), the deeper
        /// ring only for more than one tile; probes always take the default build.</summary>
        private static (int fscale, int ring) Build(bool int4, int groupsPerChunk, int mTiles, int probe) =>
            (probe == 0 && int4 && groupsPerChunk == 1 && mTiles <= s_fscale ? s_fscale : 0, probe == 0 && mTiles > 1 ? s_ring : 2);

        /// <summary>Benchmark instrumentation: split-K count to force (0, the default: the plan's own).</summary>
        public static int ForcedSplits { get; set; }

        private static long s_launches;

        /// <summary>Launches of this kernel so far in this process: what benchmarks check to know it, not a fallback, ran.</summary>
        public static long Launches => System.Threading.Interlocked.Read(ref s_launches);

        private static readonly ConditionalWeakTable<Tensor, Packed> Cache = new();
        private static readonly ConcurrentDictionary<int, (int major, int sms)> Devices = new();
        private static readonly ConcurrentDictionary<(int dev, int dt, int variant, int mt, int gpc), CudaFunction> Functions = new();
        private static readonly ConcurrentDictionary<(int dev, int dt, int mode), bool> Broken = new();

        /// <summary>Whether the kernel takes this format: int8, or int4 with a group of 32, 64 or a multiple of 128.</summary>
        /// <param name="mode">Weight format.</param>
        /// <param name="groupSize">int4 group size.</param>
        public static bool Supports(WeightQuantMode mode, int groupSize) =>
            mode == WeightQuantMode.Int8PerChannel || (groupSize > 0 && groupSize % 32 == 0 && (128 % groupSize == 0 || groupSize % 128 == 0));

        /// <summary>
        /// Drops the repacked copy of a weight (call after changing its codes, scales or zeros in place: an in-place
        /// write keeps the tensors and their storage, which is all the cache can see).
        /// </summary>
        /// <param name="qweight">The layer's <c>qweight</c> tensor.</param>
        public static void Forget(Tensor qweight) => Cache.Remove(qweight);

        /// <summary>
        /// What a repack was made from: the format and the storage of the codes, scales and zeros. A layer whose
        /// tensors are replaced (a new scales tensor for the same codes, storage swapped under the same tensor object)
        /// no longer matches and is repacked; values written in place keep the storage and need <see cref="Forget"/>.
        /// </summary>
        internal readonly record struct Source(WeightQuantMode Mode, int Group, IntPtr Codes, IntPtr Scales, IntPtr Zeros)
        {
            public static Source Of(WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros) =>
                new(mode, mode == WeightQuantMode.Int4Grouped ? groupSize : 0, TensorPointers.Address(qweight), TensorPointers.Address(scales),
                    zeros is null ? IntPtr.Zero : TensorPointers.Address(zeros));
        }

        /// <summary>
        /// The repacked tensors of a weight: the cached ones while they were made from the same <see cref="Source"/>,
        /// else a new repack (kept beside <paramref name="qweight"/>); null where the kernel cannot take the values
        /// (int4 zero points above 15). Any device; device pointers are read for CUDA tensors only.
        /// </summary>
        internal static Packed? Repacked(WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros)
        {
            var src = Source.Of(mode, groupSize, qweight, scales, zeros);
            if (Cache.TryGetValue(qweight, out var p) && p.From == src) return p;
            p = Pack(src, mode, groupSize, qweight, scales, zeros);
            if (p is null) Cache.Remove(qweight);
            else Cache.AddOrUpdate(qweight, p);
            return p;
        }

        /// <summary>A launch: entry point, grid and split count.</summary>
        internal readonly record struct Plan(int MTiles, int GroupsPerChunk, int Splits, int BlockColumns)
        {
            public string Entry => $"qgemm_m{MTiles}_g{GroupsPerChunk}";
        }

        /// <summary>
        /// The launch for M rows: m16 tiles (1, 2 or 4), groups per chunk, and split-K so that about two blocks per SM
        /// run (each split keeps at least two chunks; at most 16 splits), fewer as M grows: every split writes and
        /// reads back an fp32 partial of M × N, which is kept to at most half the bytes of the int4 weight
        /// (S · M · 8 ≤ K / 2 bytes per channel, i.e. S ≤ K / (16 M)).
        /// </summary>
        internal static Plan MakePlan(bool int4, int groupSize, long M, long Np, long chunks, int sms, int? splits = null, bool wide = false)
        {
            int mt = M <= 16 ? 1 : M <= 32 ? 2 : 4;
            int gpc = int4 ? Math.Max(1, QuantGemmKernelSources.ChunkK(true) / groupSize) : 1;
            int cols = (int)(Np / QuantGemmKernelSources.ChannelsPerBlock);
            long k = chunks * QuantGemmKernelSources.ChunkK(int4);
            long partialCap = wide && mt == 4 ? 16 : Math.Max(1, k / (16 * Math.Max(1, M)));
            long cap = Math.Min(16, Math.Min(Math.Max(1, chunks / 2), partialCap));
            int s = splits ?? (int)Math.Clamp((2L * sms + cols - 1) / cols, 1, cap);
            s = (int)Math.Clamp(s, 1, chunks);
            return new Plan(mt, gpc, s, cols);
        }

        /// <summary>N padded to whole blocks.</summary>
        internal static long PadN(long n) => (n + QuantGemmKernelSources.ChannelsPerBlock - 1) / QuantGemmKernelSources.ChannelsPerBlock * QuantGemmKernelSources.ChannelsPerBlock;

        /// <summary>K padded to whole chunks.</summary>
        internal static long PadK(long k, bool int4) => (k + QuantGemmKernelSources.ChunkK(int4) - 1) / QuantGemmKernelSources.ChunkK(int4) * QuantGemmKernelSources.ChunkK(int4);

        private static Tensor ToInt32Bits(Tensor words64)
        {
            // values are 0 .. 2^32 − 1: wrap to the int32 with the same bits
            var wrapped = torch.where(words64.ge(1L << 31), words64 - (1L << 32), words64);
            return wrapped.to_type(ScalarType.Int32);
        }

        /// <summary>int4 codes <c>[N, K/2]</c> (uint8, even k in the low nibble) → the kernel's <c>codes</c> (any device).</summary>
        internal static Tensor RepackInt4(Tensor qweight, long N, long K)
        {
            using var scope = torch.NewDisposeScope();
            long np = PadN(N), kp = PadK(K, true), ch = kp / 128;
            var b = qweight.to_type(ScalarType.Int64);
            var codes = torch.stack(new[] { b.remainder(16), b.div(16, RoundingMode.floor) }, 2).reshape(N, K);
            var padded = torch.zeros(new[] { np, kp }, ScalarType.Int64, qweight.device);
            padded.narrow(0, 0, N).narrow(1, 0, K).copy_(codes);
            // n = 8nt + g; k = 128c + 16(2j + h) + 8kh + 2t + e  →  [nt, c, g, t, j, (e, h, kh)]
            var v = padded.reshape(np / 8, 8, ch, 4, 2, 2, 4, 2).permute(0, 2, 1, 6, 3, 7, 4, 5).reshape(np / 8, ch, 32, 4, 8);
            var shifts = torch.tensor(new long[] { 1, 1L << 4, 1L << 8, 1L << 12, 1L << 16, 1L << 20, 1L << 24, 1L << 28 }, device: qweight.device);
            return ToInt32Bits((v * shifts).sum(new long[] { 4 })).contiguous().MoveToOuterDisposeScope();
        }

        /// <summary>int8 codes <c>[N, K]</c> → the kernel's <c>codes</c> (stored as q + 128; any device).</summary>
        internal static Tensor RepackInt8(Tensor qweight, long N, long K)
        {
            using var scope = torch.NewDisposeScope();
            long np = PadN(N), kp = PadK(K, false), ch = kp / 64;
            var padded = torch.full(new[] { np, kp }, 128L, ScalarType.Int64, qweight.device);
            padded.narrow(0, 0, N).narrow(1, 0, K).copy_(qweight.to_type(ScalarType.Int64) + 128);
            // n = 8nt + g; k = 64c + 16j + 8kh + 2t + e  →  [nt, c, g, t, j, (kh, e)]
            var v = padded.reshape(np / 8, 8, ch, 4, 2, 4, 2).permute(0, 2, 1, 5, 3, 4, 6).reshape(np / 8, ch, 32, 4, 4);
            var shifts = torch.tensor(new long[] { 1, 1L << 8, 1L << 16, 1L << 24 }, device: qweight.device);
            return ToInt32Bits((v * shifts).sum(new long[] { 4 })).contiguous().MoveToOuterDisposeScope();
        }

        /// <summary>int4 scales <c>[N, K/g]</c> and zeros → the kernel's <c>sz</c> for one activation dtype (any device).</summary>
        internal static Tensor RepackGroups(Tensor scales, Tensor zeros, long N, long K, int groupSize, ScalarType dtype)
        {
            using var scope = torch.NewDisposeScope();
            long np = PadN(N), gp = (PadK(K, true) + groupSize - 1) / groupSize, gr = K / groupSize;
            // the dtype's 16 bits of each scale (read back through the host: a one-time repack)
            var raw = scales.to(dtype, torch.CPU).contiguous().bytes;
            var bits = new long[raw.Length / 2];
            for (int i = 0; i < bits.Length; i++) bits[i] = raw[2 * i] | (raw[2 * i + 1] << 8);
            var half = torch.tensor(bits, device: scales.device).reshape(scales.shape);
            var words = half * 65536 + zeros.to_type(ScalarType.Int64);
            var padded = torch.zeros(new[] { np, gp }, ScalarType.Int64, scales.device);
            padded.narrow(0, 0, N).narrow(1, 0, gr).copy_(words);
            return ToInt32Bits(padded.reshape(np / 8, 8, gp).permute(0, 2, 1)).contiguous().MoveToOuterDisposeScope();
        }

        /// <summary>int8 per-channel scales padded to whole blocks (float32, any device).</summary>
        internal static Tensor PadChannelScales(Tensor scales, long N)
        {
            var ch = torch.zeros(new[] { PadN(N) }, ScalarType.Float32, scales.device);
            using (var head = ch.narrow(0, 0, N)) head.copy_(scales.to_type(ScalarType.Float32).reshape(N));
            return ch;
        }

        /// <summary>The repacked tensors of one weight on its device, and the per-launch buffers.</summary>
        internal sealed class Packed
        {
            public required Source From { get; init; }
            public required bool Int4 { get; init; }
            public required int Group { get; init; }
            public required long N { get; init; }
            public required long K { get; init; }
            public required long Np { get; init; }
            public required long Chunks { get; init; }
            public required long Groups { get; init; }
            public required Tensor Codes { get; init; }
            public Tensor? ChannelScales { get; init; }
            public required Tensor Counters { get; init; }
            public Tensor? Scales { get; init; }
            public Tensor? Zeros { get; init; }
            public bool ScalesFitHalf { get; init; }
            public readonly ConcurrentDictionary<ScalarType, (Tensor t, IntPtr p)> Sz = new();
            public Tensor? Partial;
            private IntPtr _partial;
            private long _partialElements;

            // device pointers of the tensors above, read once (they live as long as this object)
            public IntPtr CodesPtr;
            public IntPtr CountersPtr;
            public IntPtr ChannelScalesPtr;

            public IntPtr SzFor(ScalarType dtype, int device) => Sz.GetOrAdd(dtype, d =>
            {
                var t = RepackGroups(Scales!, Zeros!, N, K, Group, d).DetachFromDisposeScope();
                return (t, TensorPointers.Get(t, ScalarType.Int32, device, "sz"));
            }).p;

            public IntPtr PartialFor(long elements, Device device, int index)
            {
                if (Partial is null || _partialElements < elements)
                {
                    Partial?.Dispose();
                    Partial = torch.empty(new[] { elements }, ScalarType.Float32, device).DetachFromDisposeScope();
                    _partialElements = elements;
                    _partial = TensorPointers.Get(Partial, ScalarType.Float32, index, "partial");
                }
                return _partial;
            }
        }

        private static Packed? Pack(Source src, WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros)
        {
            bool int4 = mode == WeightQuantMode.Int4Grouped;
            long N = qweight.shape[0], K = int4 ? qweight.shape[1] * 2 : qweight.shape[1];
            using var scope = torch.NewDisposeScope();
            var dev = qweight.device;
            var sc = scales.to(ScalarType.Float32, dev);
            Tensor? z = null;
            bool fitsHalf = true;
            if (int4)
            {
                z = zeros!.to(ScalarType.Byte, dev);
                // zero points above 15 would leave the exact integer range of the dequantization trick (never made by
                // the quantizer; refused rather than computed wrongly)
                if (z.numel() > 0 && z.max().item<byte>() > 15) return null;
                // float16 activations round the group scales to float16: normal range only, and 15·scale (the largest
                // weight) below float16's maximum
                var nz = sc.abs().masked_select(sc.ne(0));
                fitsHalf = nz.numel() == 0 || (nz.min().item<float>() >= 6.2e-5f && nz.max().item<float>() <= 4000f);
            }
            var codes = int4 ? RepackInt4(qweight, N, K) : RepackInt8(qweight, N, K);
            long np = PadN(N);
            var ch = int4 ? null : PadChannelScales(sc, N);
            var packed = new Packed
            {
                From = src,
                Int4 = int4,
                Group = int4 ? groupSize : 0,
                N = N,
                K = K,
                Np = np,
                Chunks = PadK(K, int4) / QuantGemmKernelSources.ChunkK(int4),
                Groups = int4 ? (PadK(K, true) + groupSize - 1) / groupSize : 0,
                Codes = codes.DetachFromDisposeScope(),
                ChannelScales = ch?.DetachFromDisposeScope(),
                Counters = torch.zeros(new[] { np / QuantGemmKernelSources.ChannelsPerBlock }, ScalarType.Int32, dev).DetachFromDisposeScope(),
                Scales = int4 ? sc.contiguous().DetachFromDisposeScope() : null,
                Zeros = z?.contiguous().DetachFromDisposeScope(),
                ScalesFitHalf = fitsHalf,
            };
            if (dev.type != DeviceType.CUDA) return packed;
            int index = FusedOps.DeviceIndex(qweight);
            packed.CodesPtr = TensorPointers.Get(packed.Codes, ScalarType.Int32, index, "codes");
            packed.CountersPtr = TensorPointers.Get(packed.Counters, ScalarType.Int32, index, "counters");
            packed.ChannelScalesPtr = packed.ChannelScales is null ? IntPtr.Zero : TensorPointers.Get(packed.ChannelScales, ScalarType.Float32, index, "channel_scales");
            return packed;
        }

        /// <summary>Whether a device has the kernel's instructions (bf16 mma and packed FMAs: compute capability 8.0+).</summary>
        /// <param name="device">CUDA device ordinal.</param>
        internal static bool HasTensorCores(int device) => DeviceShape(device).major >= 8;

        /// <summary>Registers and local (spill) bytes per thread of every tensor-core entry for one activation dtype, as
        /// compiled for <paramref name="device"/> (empty where the kernel does not apply), with the current
        /// <see cref="Int4ScaleInAccumulator"/> and <see cref="RingForManyRows"/>.</summary>
        /// <param name="device">CUDA device.</param>
        /// <param name="dtype">float16 or bfloat16.</param>
        public static System.Collections.Generic.IEnumerable<(string Kernel, int Registers, int LocalBytes)> KernelResources(Device device, ScalarType dtype)
        {
            int dt = FusedKernels.DtypeCode(dtype);
            int dev = device.index < 0 ? 0 : device.index;
            if (dt < 1 || !FusedOps.IsAvailable(device) || !HasTensorCores(dev)) yield break;
            foreach (var (mode, gpcs) in new[] { (1, new[] { 1, 2, 4 }), (0, new[] { 1 }) })
                foreach (var gpc in gpcs)
                    foreach (var mt in new[] { 1, 2, 4 })
                    {
                        var (fscale, ring) = Build(mode == 1, gpc, mt, 0);
                        var f = KernelRuntime.Shared.GetFunction(FusedKernels.QuantGemm(dt, mode, 0, fscale, ring), $"qgemm_m{mt}_g{gpc}", dev);
                        yield return ($"{(mode == 1 ? "int4" : "int8")} qgemm_m{mt}_g{gpc}", f.Registers, f.LocalBytes);
                    }
        }

        // a float32 vector the kernel can read in place (no conversion per call)
        private static bool Fits(Tensor p, Tensor x) =>
            p.dtype == ScalarType.Float32 && p.device_type == DeviceType.CUDA && p.device_index == x.device_index && p.is_contiguous();

        private static (int major, int sms) DeviceShape(int device) => Devices.GetOrAdd(device, d =>
        {
            var drv = KernelRuntime.Shared.Driver!;
            return (drv.ComputeCapability(d).major, drv.GetAttribute(d, CudaDriver.AttributeMultiprocessorCount));
        });

        /// <summary>
        /// <c>y = (x ⊙ inputScale) · dequant(W)ᵀ + bias</c> on tensor cores, or null when this path does not apply
        /// (float32 activations, more than <see cref="MaxRows"/> rows, a group size it does not take, a GPU older than
        /// sm_80, a kernel that failed once). Arguments as <see cref="QuantizedOps.Linear"/>; checked there.
        /// </summary>
        internal static Tensor? TryLinear(Tensor x, WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros,
            Tensor? bias, Tensor? inputScale, long M, long K, long N, int splits = 0)
        {
            if (!Enabled || M < 1 || M > MaxRows || !Supports(mode, groupSize)) return null;
            var dtype = x.dtype;
            if (dtype != ScalarType.Float16 && dtype != ScalarType.BFloat16 || x.device_type != DeviceType.CUDA) return null;
            int dev = FusedOps.DeviceIndex(x);
            var (major, sms) = DeviceShape(dev);
            if (major < 8) return null;
            bool int4 = mode == WeightQuantMode.Int4Grouped;
            int dt = FusedKernels.DtypeCode(dtype), qm = int4 ? 1 : 0;
            if (Broken.ContainsKey((dev, dt, qm))) return null;
            var p = Repacked(mode, groupSize, qweight, scales, zeros);
            if (p is null || p.N != N || p.K != K) return null;
            if (int4 && dtype == ScalarType.Float16 && !p.ScalesFitHalf) return null;
            int forced = splits > 0 ? splits : ForcedSplits;
            var plan = MakePlan(int4, groupSize, M, p.Np, p.Chunks, sms, forced > 0 ? forced : null, WideSplitsForManyRows);
            int probe = Probe;
            var (fscale, ring) = Build(int4, plan.GroupsPerChunk, plan.MTiles, probe);
            try
            {
                var key = (dev, dt, qm * 4 + probe + 16 * fscale + 64 * ring, plan.MTiles, plan.GroupsPerChunk);
                if (!Functions.TryGetValue(key, out var fn))
                    fn = Functions.GetOrAdd(key, KernelRuntime.Shared.GetFunction(FusedKernels.QuantGemm(dt, qm, probe, fscale, ring), plan.Entry, dev));
                var xc = x.is_contiguous() ? x : x.contiguous();
                var outShape = (long[])x.shape.Clone();
                outShape[^1] = N;
                var device = x.device;
                var y = torch.empty(outShape, dtype, device);
                Tensor? bc = bias is null ? null : Fits(bias, x) ? bias : FusedOps.Param(bias, x);
                Tensor? isc = inputScale is null ? null : Fits(inputScale, x) ? inputScale : FusedOps.Param(inputScale, x);
                long sz = int4 ? (long)p.SzFor(dtype, dev) : 0;
                long partial = plan.Splits > 1 ? (long)p.PartialFor(plan.Splits * M * p.Np, device, dev) : 0;
                using (var args = new KernelArguments(dev))
                {
                    // the packed tensors' pointers were checked when they were made; x (dtype, device, contiguity) above and
                    // in QuantizedOps.Linear, y is ours: their addresses are read without the checks' round trips to libtorch
                    args.Add((long)TensorPointers.Address(xc)).AddOptional(isc, ScalarType.Float32, "input_scale").Add((long)p.CodesPtr).Add(sz)
                        .Add((long)p.ChannelScalesPtr).AddOptional(bc, ScalarType.Float32, "bias").Add((long)TensorPointers.Address(y)).Add(partial)
                        .Add((long)p.CountersPtr)
                        .Add((int)M).Add((int)K).Add((int)N).Add((int)p.Np).Add((int)p.Chunks).Add((int)p.Groups).Add(int4 ? groupSize : 1).Add(plan.Splits);
                    fn.Launch(new Dim3((uint)plan.BlockColumns, (uint)plan.Splits), new Dim3(QuantGemmKernelSources.Threads), 0, args);
                }
                System.Threading.Interlocked.Increment(ref s_launches);
                if (!ReferenceEquals(xc, x)) xc.Dispose();
                if (bc is not null && !ReferenceEquals(bc, bias)) bc.Dispose();
                if (isc is not null && !ReferenceEquals(isc, inputScale)) isc.Dispose();
                return y;
            }
            catch (CudaKernelUnavailableException e)
            {
                if (probe != 0) throw;   // a probe's failure says nothing about the kernel
                Broken.TryAdd((dev, dt, qm), true);
                KernelLog.WarnOnce($"qgemm:{dev}:{dt}:{qm}", $"the tensor-core quantized linear (dtype code {dt}, {(int4 ? "int4" : "int8")}, {plan.Entry}) failed on cuda:{dev} ({e.Message}); using the GEMV kernel");
                return null;
            }
        }
    }
}
