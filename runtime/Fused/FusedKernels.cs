using System.Collections.Concurrent;
using System.Collections.Generic;
using Mix.Runtime.Cuda;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>The kernel specs (source + defines) of every fused kernel, one per variant, created once.</summary>
    internal static class FusedKernels
    {
        private static readonly ConcurrentDictionary<string, CudaKernelSpec> Specs = new();

        /// <summary>dtype code for <c>-DMIX_T</c>, or -1 when unsupported.</summary>
        public static int DtypeCode(ScalarType t) => t switch
        {
            ScalarType.Float32 => 0,
            ScalarType.Float16 => 1,
            ScalarType.BFloat16 => 2,
            _ => -1,
        };

        private static CudaKernelSpec Get(string name, string body, params string[] options) =>
            Specs.GetOrAdd(name + "|" + string.Join(" ", options),
                _ => new CudaKernelSpec(name, FusedKernelSources.Prelude + body, options));

        public static CudaKernelSpec Epilogue(int dtype, FusedActivation act) =>
            Get("mix_epilogue", FusedKernelSources.Epilogue, $"-DMIX_T={dtype}", $"-DMIX_ACT={(int)act}");

        public static CudaKernelSpec Pooling(int dtype) => Get("mix_pooling", FusedKernelSources.Pooling, $"-DMIX_T={dtype}");

        public static CudaKernelSpec LayerNorm(int dtype) => Get("mix_layer_norm", FusedKernelSources.LayerNorm, $"-DMIX_T={dtype}");

        public static CudaKernelSpec Spectral() => Get("mix_spectral", FusedKernelSources.Spectral);

        public static CudaKernelSpec Scan(int dtype) => Get("mix_selective_scan", FusedKernelSources.Scan, $"-DMIX_T={dtype}");

        public static CudaKernelSpec QuantGemv(int dtype, int mode) =>
            Get("mix_qgemv", QuantKernelSources.Gemv, $"-DMIX_T={dtype}", $"-DMIX_QMODE={mode}");

        /// <summary>The tensor-core weight-only linear; only float16 (1) and bfloat16 (2) activations. <paramref name="probe"/>
        /// &gt; 0 builds a timing probe (see <see cref="QuantizedGemm.Probe"/>), never used for results.</summary>
        /// <param name="dtype">1 float16, 2 bfloat16.</param>
        /// <param name="mode">0 int8 per channel, 1 int4 group-wise.</param>
        /// <param name="probe">A timing probe (<see cref="QuantizedGemm.Probe"/>), 0 for the kernel.</param>
        /// <param name="fscale">int4 group scale in fp32 for up to this many m16 tiles (<see cref="QuantizedGemm.Int4ScaleInAccumulator"/>), 0 off.</param>
        /// <param name="ring">Chunks in the weight ring for more than 16 rows (<see cref="QuantizedGemm.RingForManyRows"/>; 2 the default).</param>
        public static CudaKernelSpec QuantGemm(int dtype, int mode, int probe = 0, int fscale = 0, int ring = 2)
        {
            var options = new List<string> { $"-DMIX_T={dtype}", $"-DMIX_QMODE={mode}" };
            // the default build's options stay as they were (its kernel cache key with them)
            if (probe != 0) options.Add($"-DMIX_QM_PROBE={probe}");
            if (fscale != 0) options.Add($"-DMIX_QM_FSCALE={fscale}");
            if (ring != 2) options.Add($"-DMIX_QM_RING={ring}");
            return Get("mix_qgemm", QuantGemmKernelSources.Source, options.ToArray());
        }

        public static CudaKernelSpec KvAttention(int dtype, int kvMode) =>
            Get("mix_kv_attention", QuantKernelSources.KvAttention, $"-DMIX_T={dtype}", $"-DMIX_KV={kvMode}");

        /// <summary>Every quantized-kernel variant for the given dtype codes (the mma ones only where the GPU has them: sm_80+).</summary>
        public static IEnumerable<CudaKernelSpec> AllQuantized(IEnumerable<int> dtypes, bool tensorCores = true)
        {
            foreach (var d in dtypes)
            {
                for (int m = 0; m < 2; m++) yield return QuantGemv(d, m);
                if (d != 0 && tensorCores) for (int m = 0; m < 2; m++) yield return QuantGemm(d, m);
                for (int k = 0; k < 3; k++) yield return KvAttention(d, k);
            }
        }

        /// <summary>Every variant for the given dtype codes.</summary>
        public static IEnumerable<CudaKernelSpec> All(IEnumerable<int> dtypes)
        {
            yield return Spectral();
            foreach (var d in dtypes)
            {
                yield return Scan(d);
                yield return Pooling(d);
                yield return LayerNorm(d);
                for (int a = 0; a <= 3; a++) yield return Epilogue(d, (FusedActivation)a);
            }
        }
    }
}
