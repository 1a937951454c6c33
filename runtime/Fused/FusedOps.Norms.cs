using System;
using System.Collections.Concurrent;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    public static partial class FusedOps
    {
        private static readonly ConcurrentDictionary<int, (int sms, long l2)> DeviceShape = new();

        /// <summary>Multiprocessor count and L2 size of a device (asked of the driver once).</summary>
        private static (int sms, long l2) ShapeOf(int device) => DeviceShape.GetOrAdd(device, d =>
        {
            var drv = KernelRuntime.Shared.Driver!;
            return (drv.GetAttribute(d, CudaDriver.AttributeMultiprocessorCount), drv.GetAttribute(d, CudaDriver.AttributeL2CacheSize));
        });

        /// <summary>
        /// Per-sample mean and reciprocal standard deviation of <paramref name="x"/> over all but its first dimension, as
        /// GroupNorm with one group computes them (biased variance, <paramref name="eps"/> added): a float32 tensor
        /// <c>[B, 2]</c> of (mean, rstd), from one pass over <paramref name="x"/>.
        /// </summary>
        /// <param name="x">Input <c>[B, ...]</c>, dense with the batch dimension outermost in memory.</param>
        /// <param name="eps">Added to the variance.</param>
        /// <returns>The statistics, or null when the fused path does not apply.</returns>
        public static Tensor? GroupNormStatistics(Tensor x, double eps)
        {
            ArgumentNullException.ThrowIfNull(x);
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || x.dim() < 2 || !IsAvailable(x.device) || NeedsGrad(x)) return null;
            var perm = MemoryOrder(x);
            if (perm is null || perm[0] != 0 || x.shape[0] > 65535 || x.shape[0] == 0) return null;
            try
            {
                using var scope = torch.NewDisposeScope();
                var xf = x.permute(perm);
                long B = x.shape[0];
                var stats = torch.empty(B, 2, dtype: ScalarType.Float32, device: x.device);
                var runner = new StatsRunner(xf, dt, DeviceIndex(x), B, xf.numel() / B, eps, B);
                runner.Launch(stats, 0, B);
                return stats.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// GroupNorm with one group (timm <c>GroupNorm1</c>): per-sample statistics in one pass, then
        /// <c>(x − mean) · rstd · weight[c] + bias[c]</c> in a second; two reads and one write of <paramref name="x"/>,
        /// with many blocks per sample (PyTorch's kernel reduces each sample in one block).
        /// </summary>
        /// <param name="x">Input <c>[B, C, ...]</c> (NCHW or channels-last).</param>
        /// <param name="weight">Optional weight <c>[C]</c>.</param>
        /// <param name="bias">Optional bias <c>[C]</c>.</param>
        /// <param name="eps">Added to the variance.</param>
        /// <returns>A new tensor with the layout of <paramref name="x"/>, or null when the fused path does not apply.</returns>
        public static Tensor? GroupNorm1(Tensor x, Tensor? weight, Tensor? bias, double eps)
        {
            ArgumentNullException.ThrowIfNull(x);
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || x.dim() < 2 || !IsAvailable(x.device) || NeedsGrad(x, weight, bias)) return null;
            long C = x.shape[1];
            if ((weight is not null && weight.numel() != C) || (bias is not null && bias.numel() != C))
                throw new ArgumentException($"weight and bias must have {C} elements");
            var perm = MemoryOrder(x);
            if (perm is null || perm[0] != 0 || x.shape[0] > 65535 || C > int.MaxValue) return null;
            if (x.numel() == 0) return x.clone();
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var xf = x.permute(perm);
                long B = x.shape[0], M = xf.numel() / B;
                var stats = torch.empty(B, 2, dtype: ScalarType.Float32, device: x.device);
                new StatsRunner(xf, dt, dev, B, M, eps, B).Launch(stats, 0, B);
                var (_, inner) = ChannelStride(x, perm, 1);
                var yf = torch.empty(xf.shape, dtype: xf.dtype, device: xf.device);
                var (ps, pt) = Params(x, weight, bias);
                long n = xf.numel();
                int V = 16 / (int)xf.ElementSize;
                bool vec = n % V == 0 && M % V == 0 && Aligned16(xf, dev, xf.dtype, "x") && Aligned16(yf, dev, yf.dtype, "y");
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Pooling(dt), vec ? "gn_apply_vec" : "gn_apply_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.Add(xf, xf.dtype, "x").Add(stats, ScalarType.Float32, "stats")
                    .AddOptional(ps[0], ps[0]?.dtype ?? x.dtype, "weight").AddOptional(ps[1], ps[1]?.dtype ?? x.dtype, "bias")
                    .Add(yf, yf.dtype, "y").Add(work).Add(inner).Add((int)C).Add(M).Add(ChannelMode(inner, C, vec ? V : 1)).Add(pt);
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return Unpermute(yf, perm).MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// MetaFormer pooling sub-block <c>x + layerScale ⊙ (avgpool3x3(n) − n)</c> with <c>n = GroupNorm(1 group)(x)</c>
        /// (avg pool stride 1, pad 1, count_include_pad=false), on NCHW <c>[B, C, H, W]</c>. The norm's shift and bias
        /// cancel in <c>pool(n) − n</c>, so <paramref name="gnBias"/> does not enter. Samples are processed in groups
        /// small enough for the L2 cache (a third of it): the statistics pass reads a group from memory and the
        /// pooling pass finds it in L2, so memory sees about one read and one write.
        /// </summary>
        /// <param name="x">Input <c>[B, C, H, W]</c>.</param>
        /// <param name="gnWeight">GroupNorm weight <c>[C]</c>.</param>
        /// <param name="gnBias">GroupNorm bias <c>[C]</c> (checked for shape; it cancels).</param>
        /// <param name="eps">GroupNorm epsilon.</param>
        /// <param name="layerScale">Layer scale <c>[C]</c>.</param>
        /// <param name="statistics">Optional <c>[B, 2]</c> (mean, rstd) of <paramref name="x"/> from
        /// <see cref="GroupNormStatistics"/>; when given only the pooling pass runs.</param>
        /// <returns>A new tensor, or null when the fused path does not apply.</returns>
        public static Tensor? PoolingSubBlock(Tensor x, Tensor gnWeight, Tensor gnBias, double eps, Tensor layerScale, Tensor? statistics = null)
        {
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(gnWeight);
            ArgumentNullException.ThrowIfNull(gnBias);
            ArgumentNullException.ThrowIfNull(layerScale);
            if (x.dim() != 4) throw new ArgumentException($"x must be [B, C, H, W], got [{string.Join(", ", x.shape)}]", nameof(x));
            long B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
            if (gnWeight.numel() != C || gnBias.numel() != C || layerScale.numel() != C)
                throw new ArgumentException($"gnWeight, gnBias and layerScale must have {C} elements");
            if (statistics is not null && (statistics.numel() != 2 * B || statistics.dtype != ScalarType.Float32))
                throw new ArgumentException($"statistics must be float32 [{B}, 2]", nameof(statistics));
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || !IsAvailable(x.device) || NeedsGrad(x, gnWeight, gnBias, layerScale)) return null;
            if (B == 0 || C * H * W == 0) return x.clone();
            int V = 16 / (int)x.ElementSize;
            int RB = (int)Math.Max(1, 4096 / W);
            long smem = ((RB + 2) * W + 2 * V) * sizeof(float);
            if (B > 65535 || C > int.MaxValue || H > int.MaxValue || smem > 48 * 1024) return null;
            int cols = (int)Math.Min(W, Threads);
            int R = (RB + Threads / cols - 1) / (Threads / cols);
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var spec = FusedKernels.Pooling(dt);
                var fApply = KernelRuntime.Shared.GetFunction(spec, "pool_tile", dev);
                var xc = x.contiguous();
                if (!Aligned16(xc, dev, xc.dtype, "x")) return null;
                var y = torch.empty_like(xc);
                var (ps, pt) = Params(x, gnWeight, layerScale);
                long M = C * H * W, rowsPerSample = C * H, totalRows = B * rowsPerSample;
                long sampleBytes = M * x.ElementSize;
                long group = statistics is null ? Math.Clamp(ShapeOf(dev).l2 / 3 / Math.Max(sampleBytes, 1), 1, B) : B;
                var stats = statistics?.contiguous() ?? torch.empty(B, 2, dtype: ScalarType.Float32, device: x.device);
                var runner = statistics is null ? new StatsRunner(xc, dt, dev, B, M, eps, group) : null;
                for (long b0 = 0; b0 < B; b0 += group)
                {
                    long nb = Math.Min(group, B - b0);
                    runner?.Launch(stats, b0, nb);
                    long rows = nb * rowsPerSample;
                    using var a = new KernelArguments(dev);
                    a.Add(xc, xc.dtype, "x").Add(stats, ScalarType.Float32, "stats")
                        .Add(ps[0]!, ps[0]!.dtype, "gnWeight").Add(ps[1]!, ps[1]!.dtype, "layerScale").Add(y, y.dtype, "y")
                        .Add(b0 * rowsPerSample).Add(rows).Add(totalRows).Add((int)C).Add((int)H).Add((int)W).Add(RB).Add(R).Add(pt);
                    fApply.Launch(new Dim3((uint)((rows + RB - 1) / RB)), new Dim3(Threads), (uint)smem, a);
                }
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// Launches <c>gn_stats</c> over groups of samples of a contiguous <c>[B, M]</c> view: P blocks per sample (about
        /// four waves of blocks over the group, at least 8192 elements each); the last block of each sample writes its
        /// (mean, rstd). The partials and the per-sample counters are shared by the groups, which run in stream order.
        /// </summary>
        private sealed class StatsRunner
        {
            private readonly Tensor _x, _partial, _counter;
            private readonly CudaFunction _fn;
            private readonly int _dev, _p;
            private readonly long _m;
            private readonly float _eps;
            private readonly bool _vec;

            public StatsRunner(Tensor xContiguous, int dtype, int device, long batch, long m, double eps, long maxGroup)
            {
                _x = xContiguous;
                _dev = device;
                _m = m;
                _eps = (float)eps;
                int V = 16 / (int)xContiguous.ElementSize;
                _vec = m % V == 0 && Aligned16(xContiguous, device, xContiguous.dtype, "x");
                long perSample = Math.Max(1, m / 8192);
                long wanted = (4L * ShapeOf(device).sms + maxGroup - 1) / maxGroup;
                _p = (int)Math.Clamp(Math.Min(wanted, perSample), 1, 1024);
                _fn = KernelRuntime.Shared.GetFunction(FusedKernels.Pooling(dtype), "gn_stats", device);
                _partial = torch.empty(maxGroup * _p * 2, dtype: ScalarType.Float64, device: xContiguous.device);
                _counter = torch.zeros(maxGroup, dtype: ScalarType.Int32, device: xContiguous.device);
            }

            public void Launch(Tensor stats, long b0, long nb)
            {
                using var a = new KernelArguments(_dev);
                a.Add(_x, _x.dtype, "x").Add(_partial, ScalarType.Float64, "partial").Add(_counter, ScalarType.Int32, "counter")
                    .Add(stats, ScalarType.Float32, "stats").Add(_m).Add(_p).Add((int)b0).Add(_eps).Add(_vec ? 1 : 0);
                _fn.Launch(new Dim3((uint)_p, (uint)nb), new Dim3(Threads), 0, a);
            }
        }
    }
}
