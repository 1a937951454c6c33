using System;
using System.Collections.Concurrent;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    public static partial class FusedOps
    {
        private static readonly ConcurrentDictionary<int, (int sms, long l2)> DeviceShape = new();
        private static int s_poolingTile = 8192;

        /// <summary>
        /// Elements of x each block of the pooling pass stages in shared memory (whole rows plus a halo row on each side;
        /// at most 48 KB of float32). Larger tiles keep more loads in flight; smaller ones balance better on small inputs.
        /// </summary>
        public static int PoolingTileElements
        {
            get => s_poolingTile;
            set => s_poolingTile = value is >= 256 and <= 10240 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "256 to 10240 elements");
        }

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
            if (!new Layout(x).BatchOutermost || x.shape[0] > 65535 || x.shape[0] == 0) return null;
            try
            {
                using var scope = torch.NewDisposeScope();
                long B = x.shape[0];
                var stats = torch.empty(B, 2, dtype: ScalarType.Float32, device: x.device);
                var runner = new StatsRunner(x, dt, DeviceIndex(x), B, x.numel() / B, eps, B);
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
            var layout = new Layout(x);
            long C = layout.Shape[1];
            if ((weight is not null && weight.numel() != C) || (bias is not null && bias.numel() != C))
                throw new ArgumentException($"weight and bias must have {C} elements");
            if (!layout.BatchOutermost || layout.Shape[0] > 65535 || C > int.MaxValue) return null;
            var (_, inner) = layout.Channel(1);
            if (x.numel() == 0) return x.clone();
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                long B = layout.Shape[0], M = x.numel() / B;
                var stats = torch.empty(B, 2, dtype: ScalarType.Float32, device: x.device);
                new StatsRunner(x, dt, dev, B, M, eps, B).Launch(stats, 0, B);
                var y = layout.Empty(x.dtype, x.device);
                var (ps, pt) = Params(x, weight, bias);
                long n = x.numel();
                int V = 16 / (int)x.ElementSize;
                bool vec = n % V == 0 && M % V == 0 && Aligned16(x, dev, x.dtype, "x") && Aligned16(y, dev, y.dtype, "y");
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.Pooling(dt), vec ? "gn_apply_vec" : "gn_apply_scalar", dev);
                long work = vec ? n / V : n;
                using var args = new KernelArguments(dev);
                args.AddDense(x, x.dtype, "x").Add(stats, ScalarType.Float32, "stats")
                    .AddOptional(ps[0], ps[0]?.dtype ?? x.dtype, "weight").AddOptional(ps[1], ps[1]?.dtype ?? x.dtype, "bias")
                    .AddDense(y, y.dtype, "y").Add(work).Add(inner).Add((int)C).Add(M).Add(ChannelMode(inner, C, vec ? V : 1, ps, pt, dev)).Add(pt);
                fn.Launch(new Dim3(Blocks(work)), new Dim3(Threads), 0, args);
                return y.MoveToOuterDisposeScope();
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        /// <summary>
        /// LayerNorm over the channel dimension when the channels are innermost in memory (channels-last
        /// <c>[B, C, H, W]</c> as LayerNorm2d sees it, or <c>[..., C]</c>): <c>(x − mean) · rstd · weight[c] + bias[c]</c>
        /// per position, one read and one write, statistics in float32 from registers.
        /// </summary>
        /// <param name="x">Input; its channels must be the innermost dimension in memory.</param>
        /// <param name="weight">Optional weight <c>[C]</c>.</param>
        /// <param name="bias">Optional bias <c>[C]</c>.</param>
        /// <param name="eps">Added to the variance.</param>
        /// <param name="channelDim">Channel dimension (1 for LayerNorm2d, -1 for a token-wise LayerNorm).</param>
        /// <returns>A new tensor with the layout of <paramref name="x"/>, or null when the fused path does not apply
        /// (including channels that are not innermost, or more than 8 vectors per lane).</returns>
        public static Tensor? LayerNorm(Tensor x, Tensor? weight, Tensor? bias, double eps, int channelDim = -1)
        {
            ArgumentNullException.ThrowIfNull(x);
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || x.dim() < 1 || !IsAvailable(x.device) || NeedsGrad(x, weight, bias)) return null;
            var layout = new Layout(x);
            if (!layout.Dense) return null;
            var (C, inner) = layout.Channel(channelDim);
            if ((weight is not null && weight.numel() != C) || (bias is not null && bias.numel() != C))
                throw new ArgumentException($"weight and bias must have {C} elements");
            int V = 16 / (int)x.ElementSize;
            if (inner != 1 || C % V != 0 || C > int.MaxValue || x.numel() == 0) return null;
            long nvec = C / V;
            int G = (int)Math.Min(32, 1L << (int)Math.Ceiling(Math.Log2(nvec)));
            long perLane = (nvec + G - 1) / G;
            int NV = perLane <= 1 ? 1 : perLane <= 2 ? 2 : perLane <= 4 ? 4 : perLane <= 8 ? 8 : 0;
            if (NV == 0) return null;
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var y = layout.Empty(x.dtype, x.device);
                if (!Aligned16(x, dev, x.dtype, "x") || !Aligned16(y, dev, y.dtype, "y")) return null;
                var (ps, pt) = Params(x, weight, bias);
                if (pt == 0 && ps.Any(p => p is not null && !Aligned16(p, dev, p.dtype, "weight"))) return null;
                long rows = x.numel() / C;
                int rowsPerBlock = Threads / G;
                var fn = KernelRuntime.Shared.GetFunction(FusedKernels.LayerNorm(dt), "layer_norm_rows", dev);
                using var args = new KernelArguments(dev);
                args.AddDense(x, x.dtype, "x").AddOptional(ps[0], ps[0]?.dtype ?? x.dtype, "weight").AddOptional(ps[1], ps[1]?.dtype ?? x.dtype, "bias")
                    .AddDense(y, y.dtype, "y").Add(rows).Add((int)C).Add(G).Add(NV).Add((float)eps).Add(pt);
                fn.Launch(new Dim3((uint)((rows + rowsPerBlock - 1) / rowsPerBlock)), new Dim3(Threads), 0, args);
                return y.MoveToOuterDisposeScope();
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
        /// small enough for the L2 cache (half of it): the statistics pass reads a group from memory and the
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
            var shape = x.shape;
            if (shape.Length != 4) throw new ArgumentException($"x must be [B, C, H, W], got [{string.Join(", ", shape)}]", nameof(x));
            long B = shape[0], C = shape[1], H = shape[2], W = shape[3];
            if (gnWeight.numel() != C || gnBias.numel() != C || layerScale.numel() != C)
                throw new ArgumentException($"gnWeight, gnBias and layerScale must have {C} elements");
            if (statistics is not null && (statistics.numel() != 2 * B || statistics.dtype != ScalarType.Float32))
                throw new ArgumentException($"statistics must be float32 [{B}, 2]", nameof(statistics));
            int dt = FusedKernels.DtypeCode(x.dtype);
            if (dt < 0 || !IsAvailable(x.device) || NeedsGrad(x, gnWeight, gnBias, layerScale)) return null;
            if (B == 0 || C * H * W == 0) return x.clone();
            int V = 16 / (int)x.ElementSize;
            int RB = (int)Math.Max(1, PoolingTileElements / W);
            long smem = ((RB + 2) * W + 2 * V) * sizeof(float);
            if (B > 65535 || C > int.MaxValue || H > int.MaxValue || smem > 48 * 1024) return null;
            int cpt = W % 4 == 0 ? 4 : W % 2 == 0 ? 2 : 1; // columns per thread, as the kernel chooses
            int cols = (int)Math.Min(W / cpt, Threads);
            int R = (RB + Threads / cols - 1) / (Threads / cols);
            int dev = DeviceIndex(x);
            try
            {
                using var scope = torch.NewDisposeScope();
                var spec = FusedKernels.Pooling(dt);
                var fApply = KernelRuntime.Shared.GetFunction(spec, "pool_tile", dev);
                var xc = x.contiguous();
                var y = torch.empty_like(xc);
                if (!Aligned16(xc, dev, xc.dtype, "x") || !Aligned16(y, dev, y.dtype, "y")) return null;
                var (ps, pt) = Params(x, gnWeight, layerScale);
                long M = C * H * W, rowsPerSample = C * H, totalRows = B * rowsPerSample;
                long sampleBytes = M * x.ElementSize;
                long group = statistics is null ? Math.Clamp(ShapeOf(dev).l2 / 2 / Math.Max(sampleBytes, 1), 1, B) : B;
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
        /// Per-device scratch of the statistics kernel: the per-block partial sums and the per-sample counters (left at
        /// zero by every launch, so they are zeroed once). Kernels run in stream order on the null stream, so launches
        /// from later calls reuse them safely; they grow when a call needs more.
        /// </summary>
        private sealed class StatsScratch
        {
            public Tensor? Partial, Counter;
        }

        private static readonly ConcurrentDictionary<int, StatsScratch> Scratch = new();

        /// <summary>
        /// Launches <c>gn_stats</c> over groups of samples of a contiguous <c>[B, M]</c> view: P blocks per sample (about
        /// four waves of blocks over the group, at least 8192 elements each); the last block of each sample writes its
        /// (mean, rstd).
        /// </summary>
        private sealed class StatsRunner
        {
            private readonly Tensor _x, _partial, _counter;
            private readonly CudaFunction _fn;
            private readonly int _dev, _p;
            private readonly long _m;
            private readonly float _eps;
            private readonly bool _vec;

            /// <param name="xContiguous">Input, dense with the batch dimension outermost (each sample one block of m elements).</param>
            /// <param name="dtype">The kernel's element type code.</param>
            /// <param name="device">CUDA device index.</param>
            /// <param name="batch">Samples.</param>
            /// <param name="m">Elements per sample.</param>
            /// <param name="eps">Added to the variance.</param>
            /// <param name="maxGroup">Most samples per launch.</param>
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
                var scratch = Scratch.GetOrAdd(device, _ => new StatsScratch());
                lock (scratch)
                {
                    if (scratch.Partial is null || scratch.Partial.numel() < maxGroup * _p * 2)
                    {
                        scratch.Partial?.Dispose();
                        scratch.Partial = torch.empty(maxGroup * _p * 2, dtype: ScalarType.Float64, device: xContiguous.device).DetachFromDisposeScope();
                    }
                    if (scratch.Counter is null || scratch.Counter.numel() < maxGroup)
                    {
                        scratch.Counter?.Dispose();
                        scratch.Counter = torch.zeros(Math.Max(maxGroup, 256), dtype: ScalarType.Int32, device: xContiguous.device).DetachFromDisposeScope();
                    }
                    _partial = scratch.Partial;
                    _counter = scratch.Counter;
                }
            }

            public void Launch(Tensor stats, long b0, long nb)
            {
                using var a = new KernelArguments(_dev);
                a.AddDense(_x, _x.dtype, "x").Add(_partial, ScalarType.Float64, "partial").Add(_counter, ScalarType.Int32, "counter")
                    .Add(stats, ScalarType.Float32, "stats").Add(_m).Add(_p).Add((int)b0).Add(_eps).Add(_vec ? 1 : 0);
                _fn.Launch(new Dim3((uint)_p, (uint)nb), new Dim3(Threads), 0, a);
            }
        }
    }
}
