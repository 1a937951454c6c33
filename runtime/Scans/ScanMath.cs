using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Scans
{
    /// <summary>Helpers shared by the scan primitives' reference paths (compute dtype, shape checks, padding, masks).</summary>
    internal static class ScanMath
    {
        /// <summary>Elements one chunk's <c>T²</c>-sized intermediates may take (64 Mi, 256 MiB in fp32).</summary>
        public const long ChunkElementBudget = 64L * 1024 * 1024;

        /// <summary>
        /// float32, or float64 when the input is float64: half-precision inputs are scanned in float32, as the fused
        /// kernels do, so that long recurrences do not accumulate rounding.
        /// </summary>
        public static ScalarType ComputeType(Tensor t) => t.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

        /// <summary>
        /// The requested chunk length, shortened (not below 4 unless requested) so that <paramref name="elementsPerStep"/>·T²
        /// stays within <see cref="ChunkElementBudget"/>: a CPU training batch would otherwise ask for gigabytes per chunk.
        /// </summary>
        public static int BoundedChunk(int requested, long elementsPerStep)
        {
            if (requested < 1) throw new ArgumentOutOfRangeException(nameof(requested), requested, "chunk size must be at least 1");
            if (elementsPerStep <= 0) return requested;
            long fit = (long)Math.Floor(Math.Sqrt((double)ChunkElementBudget / elementsPerStep));
            return (int)Math.Max(Math.Min(requested, Math.Max(fit, 4)), 1);
        }

        /// <summary>Zero-pads axis <paramref name="dim"/> of <paramref name="t"/> at its end to <paramref name="length"/>.</summary>
        public static Tensor PadTo(Tensor t, long dim, long length)
        {
            long d = dim < 0 ? dim + t.dim() : dim;
            long have = t.shape[d];
            if (have == length) return t;
            var shape = (long[])t.shape.Clone();
            shape[d] = length - have;
            return torch.cat(new[] { t, torch.zeros(shape, dtype: t.dtype, device: t.device) }, d);
        }

        /// <summary>
        /// Mamba-2's stable segment sum: <c>[..., T] -&gt; [..., T, T]</c> with <c>out[i, j] = Σ_{k=j+1..i} x_k</c> for
        /// <c>j ≤ i</c> and −∞ above the diagonal. Built from a masked cumulative sum, never from differences of long
        /// prefix sums, so every finite entry is as exact as the inputs.
        /// </summary>
        public static Tensor SegmentSum(Tensor x)
        {
            long T = x.shape[^1];
            using var ones = torch.ones(T, T, dtype: ScalarType.Bool, device: x.device);
            using var strictlyLower = torch.tril(ones, -1);
            using var lower = torch.tril(ones, 0);
            using Scalar zero = 0.0, minusInfinity = double.NegativeInfinity;
            var rep = x.unsqueeze(-1).expand(CatShape(x.shape, T)).masked_fill(strictlyLower.logical_not(), zero);
            return rep.cumsum(-2).masked_fill(lower.logical_not(), minusInfinity);
        }

        private static long[] CatShape(long[] shape, long last)
        {
            var s = new long[shape.Length + 1];
            Array.Copy(shape, s, shape.Length);
            s[^1] = last;
            return s;
        }

        /// <summary>Whether autograd will need a backward through any of the tensors.</summary>
        public static bool NeedsGrad(params Tensor?[] tensors)
        {
            if (!torch.is_grad_enabled()) return false;
            foreach (var t in tensors)
                if (t is not null && t.requires_grad) return true;
            return false;
        }

        public static string Dims(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

        public static void Require(Tensor? t, string name, string pattern, params long[] shape)
        {
            if (t is null) return;
            bool ok = t.dim() == shape.Length;
            for (int i = 0; ok && i < shape.Length; i++) ok = shape[i] < 0 || t.shape[i] == shape[i];
            if (!ok) throw new ArgumentException($"{name} must be {pattern}, got {Dims(t)}", name);
        }

        public static void RequireRank(Tensor t, string name, string pattern, int rank)
        {
            if (t.dim() != rank) throw new ArgumentException($"{name} must be {pattern}, got {Dims(t)}", name);
        }
    }
}
