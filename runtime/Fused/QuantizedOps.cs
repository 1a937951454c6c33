using System;
using System.Linq;
using Mix.Runtime.Cuda;
using Mix.Runtime.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Fused CUDA kernels for quantized inference: dequantize + GEMV/GEMM of <see cref="QuantizedLinear"/> (int8 per
    /// channel, int4 group-wise) for a few rows, and decode attention over a quantized KV cache (KIVI 4/2-bit, VidKV)
    /// that dequantizes inside the kernel. Like <see cref="FusedOps"/>, every method returns <c>null</c> when the fused
    /// path does not apply (CPU tensor, unsupported dtype or shape, autograd needed, kernels unavailable), so callers
    /// write <c>QuantizedOps.X(...) ?? reference(...)</c>.
    /// </summary>
    public static class QuantizedOps
    {
        /// <summary>Rows of x up to which <see cref="QuantizedLinear"/> uses the fused kernel (decode sizes).</summary>
        public const int MaxFusedRows = 16;

        /// <summary>Queries per attention launch (more are processed in chunks, up to <see cref="MaxFusedQueries"/>).</summary>
        public const int QueriesPerLaunch = 8;

        /// <summary>New tokens per call up to which the quantized-cache attention uses the fused kernel.</summary>
        public const int MaxFusedQueries = 16;

        private const int GemvWarps = 8;
        private const int KvWarps = 4;
        private const int KvTargetWarps = 4096;

        /// <summary>Compiles (or loads from the disk cache) every quantized kernel for the dtypes given (all three when none).</summary>
        /// <param name="device">CUDA device.</param>
        /// <param name="dtypes">I/O dtypes.</param>
        /// <returns>Modules ready.</returns>
        public static int WarmUp(Device device, params ScalarType[] dtypes)
        {
            if (!FusedOps.IsAvailable(device)) return 0;
            var codes = (dtypes.Length == 0 ? new[] { ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16 } : dtypes)
                .Select(FusedKernels.DtypeCode).Where(c => c >= 0).Distinct();
            int dev = device.index < 0 ? 0 : device.index;
            return KernelRuntime.Shared.WarmUp(FusedKernels.AllQuantized(codes, QuantizedGemm.HasTensorCores(dev)), dev);
        }

        /// <summary>
        /// <c>y = (x ⊙ inputScale) · dequant(W)ᵀ + bias</c> with the weight dequantized in registers (fp32 accumulation);
        /// the result has x's dtype. float16/bfloat16 x of up to <see cref="QuantizedGemm.MaxRows"/> rows takes the
        /// tensor-core kernel (<see cref="QuantizedGemm"/>) where it applies; otherwise the GEMV kernel, for x
        /// <c>[..., K]</c> of at most <paramref name="maxRows"/> rows.
        /// </summary>
        /// <param name="x">Activations (float32/float16/bfloat16, CUDA).</param>
        /// <param name="mode">Weight format.</param>
        /// <param name="groupSize">int4 group size.</param>
        /// <param name="qweight">int8 <c>[N, K]</c> or packed uint8 <c>[N, K/2]</c>.</param>
        /// <param name="scales">float32 <c>[N]</c> or <c>[N, K/group]</c>.</param>
        /// <param name="zeros">uint8 <c>[N, K/group]</c> (int4).</param>
        /// <param name="bias">Optional bias <c>[N]</c>.</param>
        /// <param name="inputScale">Optional input scale <c>[K]</c>.</param>
        /// <param name="maxRows">Largest row count the GEMV kernel handles (default <see cref="MaxFusedRows"/>; benchmarks pass more).</param>
        public static Tensor? Linear(Tensor x, WeightQuantMode mode, int groupSize, Tensor qweight, Tensor scales, Tensor? zeros,
            Tensor? bias, Tensor? inputScale, int maxRows = MaxFusedRows)
        {
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(qweight);
            ArgumentNullException.ThrowIfNull(scales);
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || x.dim() < 1 || !FusedOps.IsAvailable(x.device) || FusedOps.NeedsGrad(x, bias, inputScale)) return null;
            if (qweight.device_type != DeviceType.CUDA || qweight.device_index != x.device_index) return null;
            long K = x.shape[^1];
            long N = qweight.shape[0];
            bool int4 = mode == WeightQuantMode.Int4Grouped;
            if (int4 ? (qweight.dtype != ScalarType.Byte || zeros is null || groupSize <= 0 || K % groupSize != 0 || qweight.shape[1] * 2 != K)
                     : (qweight.dtype != ScalarType.Int8 || qweight.shape[1] != K)) return null;
            long M = K == 0 ? 0 : x.numel() / K;
            if (M < 1 || K > int.MaxValue || N > int.MaxValue || M > int.MaxValue) return null;
            if (QuantizedGemm.TryLinear(x, mode, groupSize, qweight, scales, zeros, bias, inputScale, M, K, N) is { } viaMma) return viaMma;
            if (M > maxRows) return null;
            int dev = FusedOps.DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var xc = x.contiguous();
                var qw = qweight.contiguous();
                var sc = FusedOps.Param(scales, x);
                var zc = int4 ? zeros!.to(ScalarType.Byte, x.device).contiguous() : null;
                var bc = bias is null ? null : FusedOps.Param(bias, x);
                var isc = inputScale is null ? null : FusedOps.Param(inputScale, x);
                var outShape = x.shape.ToArray();
                outShape[^1] = N;
                var y = torch.empty(outShape, x.dtype, x.device);
                bool vec = K % 8 == 0 && (!int4 || groupSize % 8 == 0)
                    && ((long)TensorPointers.Get(qw, qw.dtype, dev, "qweight") & 7) == 0;
                int mt = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 16;
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.QuantGemv(dt, int4 ? 1 : 0), $"qgemv_m{mt}", dev);
                using var args = new KernelArguments(dev);
                args.Add(xc, xc.dtype, "x").AddOptional(isc, ScalarType.Float32, "input_scale").Add(qw, qw.dtype, "qweight")
                    .Add(sc, ScalarType.Float32, "scales").AddOptional(zc, ScalarType.Byte, "zeros").AddOptional(bc, ScalarType.Float32, "bias")
                    .Add(y, y.dtype, "y").Add((int)M).Add((int)K).Add((int)N).Add(int4 ? groupSize : 0).Add(vec ? 1 : 0);
                var grid = new Dim3((uint)((N + GemvWarps - 1) / GemvWarps), (uint)((M + mt - 1) / mt));
                fn.Launch(grid, new Dim3(GemvWarps * 32), 0, args);
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>Kernel variant code of a KV quantization mode.</summary>
        internal static int KvCode(KvQuantMode mode) => mode switch
        {
            KvQuantMode.Kivi4 => 0,
            KvQuantMode.Kivi2 => 1,
            _ => 2,
        };

        /// <summary>Whether the fused quantized-cache attention supports these sizes.</summary>
        /// <param name="headDim">D.</param>
        /// <param name="groupSize">G (tokens per block).</param>
        /// <param name="valueGroup">Channels per value group.</param>
        public static bool KvAttentionSupports(long headDim, int groupSize, long valueGroup) =>
            headDim % 32 == 0 && headDim <= 256 && groupSize % 32 == 0 && valueGroup > 0 && headDim % valueGroup == 0;

        /// <summary>
        /// softmax(q kᵀ·scale | allowed) v over a quantized cache: <paramref name="blockCount"/> blocks of
        /// <paramref name="groupSize"/> tokens whose tensors are listed in <paramref name="table"/> (int64 <c>[≥ blocks, 8]</c>
        /// device pointers, see <see cref="QuantKernelSources.KvAttention"/>), followed by the full-precision tail.
        /// Nothing is dequantized outside the kernel.
        /// </summary>
        /// <param name="q">Queries <c>[B, Hq, n, D]</c> (n ≤ <see cref="MaxFusedQueries"/>).</param>
        /// <param name="mode">KV scheme.</param>
        /// <param name="table">Pointer table on the device.</param>
        /// <param name="blockCount">Blocks.</param>
        /// <param name="groupSize">Tokens per block.</param>
        /// <param name="tailK">Tail keys <c>[B, Hkv, Tt, D]</c> (q's dtype) or null.</param>
        /// <param name="tailV">Tail values.</param>
        /// <param name="allowed">Boolean <c>[B, 1, n, T]</c>, T = blocks·G + Tt.</param>
        /// <param name="kvHeads">Hkv (divides Hq).</param>
        /// <param name="outliers">VidKV outlier channels per block.</param>
        /// <param name="valueGroup">Channels per value group.</param>
        /// <param name="scale">Score scale.</param>
        public static Tensor? KvAttention(Tensor q, KvQuantMode mode, Tensor? table, int blockCount, int groupSize, Tensor? tailK,
            Tensor? tailV, Tensor allowed, long kvHeads, long outliers, long valueGroup, double scale)
        {
            ArgumentNullException.ThrowIfNull(q);
            ArgumentNullException.ThrowIfNull(allowed);
            int dt = FusedKernels.DtypeCode(q.dtype);
            if (dt < 0 || q.dim() != 4 || !FusedOps.IsAvailable(q.device) || FusedOps.NeedsGrad(q)) return null;
            long B = q.shape[0], Hq = q.shape[1], n = q.shape[2], D = q.shape[3];
            long Tt = tailK is null ? 0 : tailK.shape[2];
            long T = (long)blockCount * groupSize + Tt;
            if (n < 1 || n > MaxFusedQueries || kvHeads <= 0 || Hq % kvHeads != 0 || !KvAttentionSupports(D, groupSize, valueGroup)) return null;
            if (blockCount > 0 && table is null) return null;
            if (tailK is not null && (tailK.dtype != q.dtype || tailV is null || tailV.dtype != q.dtype)) return null;
            if (T == 0 || T > int.MaxValue || allowed.shape[^1] != T) return null;
            int dev = FusedOps.DeviceIndex(q);
            try
            {
                using var scope = torch.NewDisposeScope();
                var mask = allowed.to(ScalarType.Byte, q.device).expand(B, 1, n, T).reshape(B, n, T);
                var tk = tailK?.contiguous();
                var tv = tailV?.contiguous();
                var outs = new System.Collections.Generic.List<Tensor>();
                long totalTiles = (long)blockCount * (groupSize / 32) + (Tt + 31) / 32;
                long tpw = Math.Max(1, (totalTiles * B * Hq + KvTargetWarps - 1) / KvTargetWarps);
                long S = (totalTiles + tpw - 1) / tpw;
                for (long i0 = 0; i0 < n; i0 += QueriesPerLaunch)
                {
                    long nq = Math.Min(QueriesPerLaunch, n - i0);
                    int nqT = nq <= 1 ? 1 : nq <= 2 ? 2 : nq <= 4 ? 4 : 8;
                    var qc = q.narrow(2, i0, nq).contiguous();
                    var mc = mask.narrow(1, i0, nq).contiguous();
                    var po = torch.empty(new[] { B * Hq * S * nq * D }, ScalarType.Float32, q.device);
                    var pml = torch.empty(new[] { B * Hq * S * nq * 2 }, ScalarType.Float32, q.device);
                    var o = torch.empty(new[] { B, Hq, nq, D }, q.dtype, q.device);
                    var spec = FusedKernels.KvAttention(dt, KvCode(mode));
                    var fn = KernelRuntime.Shared.GetFunction(spec, $"kv_partial_q{nqT}", dev);
                    using (var args = new KernelArguments(dev))
                    {
                        args.Add(qc, qc.dtype, "q").AddOptional(blockCount > 0 ? table : null, ScalarType.Int64, "table")
                            .AddOptional(tk, q.dtype, "tailK").AddOptional(tv, q.dtype, "tailV").Add(mc, ScalarType.Byte, "allowed")
                            .Add(po, ScalarType.Float32, "part_o").Add(pml, ScalarType.Float32, "part_ml")
                            .Add((int)Hq).Add((int)kvHeads).Add((int)nq).Add((int)D).Add(groupSize).Add(blockCount).Add((int)Tt)
                            .Add((int)outliers).Add((int)valueGroup).Add((int)tpw).Add((int)S).Add((float)(scale * 1.4426950408889634));
                        fn.Launch(new Dim3((uint)((S + KvWarps - 1) / KvWarps), (uint)Hq, (uint)B), new Dim3(KvWarps * 32), 0, args);
                    }
                    var comb = KernelRuntime.Shared.GetFunction(spec, "kv_combine", dev);
                    using (var args = new KernelArguments(dev))
                    {
                        args.Add(po, ScalarType.Float32, "part_o").Add(pml, ScalarType.Float32, "part_ml").Add(o, o.dtype, "out")
                            .Add((int)Hq).Add((int)nq).Add((int)D).Add((int)S);
                        comb.Launch(new Dim3((uint)nq, (uint)Hq, (uint)B), new Dim3(128), 0, args);
                    }
                    outs.Add(o);
                }
                var r = outs.Count == 1 ? outs[0] : torch.cat(outs, 2);
                return r.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }
    }
}
