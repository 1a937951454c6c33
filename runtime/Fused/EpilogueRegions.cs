using System;
using System.Collections.Generic;
using System.Linq;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The pointwise tails of residual sub-blocks as fusion-planner regions: the MLP's and the separable convolution's
    /// bias + activation after their first projection, the residual epilogue <c>x * rs + (o + b) * ls</c> after the
    /// last one, and PoolFormer's <c>x * rs + (pool(n) - n) * ls</c> after the pooling window. Their sources
    /// (EpilogueRegions.Sources.cs) are what <c>FusionPlanner</c> and <c>CudaRegionEmitter</c> make of each
    /// expression written in tensor math: Mix.Generator.Tests' <c>EpilogueRegionTests</c> writes that file
    /// (MIX_UPDATE_SNAPSHOTS=1) and fails while it differs. <see cref="SubBlockPlanner"/> runs them.
    /// </summary>
    internal static partial class EpilogueRegions
    {
        /// <summary>A region and the names of its inputs, in the kernel's order.</summary>
        internal sealed record Region(string Name, string[] Inputs, FusedRegionKernel Kernel, FusedRegion Bound)
        {
            /// <summary>Where each of the kernel's inputs is in <paramref name="names"/> (the caller's argument order).</summary>
            public int[] Order(params string[] names) => Inputs.Select(i =>
            {
                int k = Array.IndexOf(names, i);
                return k >= 0 ? k : throw new ArgumentException($"{Name} reads {i}, not given");
            }).ToArray();
        }

        private static readonly Dictionary<string, Region> s_regions = Sources.ToDictionary(s => s.Name, s =>
        {
            var kernel = FusedRegionKernel.Pointwise(s.Name, s.Inputs.Length, 0, s.Source);
            return new Region(s.Name, s.Inputs, kernel, kernel.Bind());
        });

        /// <summary>Every region by name (tests).</summary>
        internal static IReadOnlyDictionary<string, Region> All => s_regions;

        /// <summary><c>x * rs + (o + b) * ls</c> with the parts present, or null for a plain <c>x + o</c> (one op: no region).</summary>
        public static Region? Residual(bool bias, bool layerScale, bool resScale) =>
            s_regions.GetValueOrDefault("residual" + (bias ? "_b" : "") + (layerScale ? "_ls" : "") + (resScale ? "_rs" : ""));

        /// <summary><c>x * rs + (p - n) * ls</c>: PoolFormer's tail after the pooling window (p) of the normed input (n).</summary>
        public static Region PoolTail(bool layerScale, bool resScale) =>
            s_regions["pool_tail" + (layerScale ? "_ls" : "") + (resScale ? "_rs" : "")];

        /// <summary><c>act(h + b)</c> (StarReLU: <c>s * squared_relu(h + b) + t</c>), or null where it is a single op.</summary>
        public static Region? BiasActivation(FusedActivation act, bool bias) => act switch
        {
            FusedActivation.Gelu when bias => s_regions["bias_gelu"],
            FusedActivation.SquaredReLU when bias => s_regions["bias_squared_relu"],
            FusedActivation.StarReLU => s_regions[bias ? "bias_starrelu" : "starrelu"],
            _ => null,
        };
    }
}
