using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

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
    public static partial class EpilogueRegions
    {
        /// <summary>A region and the names of its inputs, in the kernel's order.</summary>
        /// <param name="Name">The region's name (<c>residual_b_ls</c>, <c>bias_starrelu</c>, ...).</param>
        /// <param name="Inputs">The names of the tensors it reads, in the kernel's order.</param>
        /// <param name="Kernel">Its kernel.</param>
        /// <param name="Bound">The kernel bound (no per-instance numbers): what runs it.</param>
        public sealed record Region(string Name, string[] Inputs, FusedRegionKernel Kernel, FusedRegion Bound)
        {
            /// <summary>The tensors named in <paramref name="named"/>, in the kernel's order.</summary>
            /// <param name="named">Every input by name.</param>
            public Tensor[] Arguments(params (string Name, Tensor Value)[] named) =>
                Inputs.Select(i => named.First(n => n.Name == i).Value).ToArray();

        }

        private static readonly Dictionary<string, Region> s_regions = Sources.ToDictionary(s => s.Name, s =>
        {
            var kernel = FusedRegionKernel.Pointwise(s.Name, s.Inputs.Length, 0, s.Source);
            return new Region(s.Name, s.Inputs, kernel, kernel.Bind());
        });

        /// <summary>Every region by name.</summary>
        public static IReadOnlyDictionary<string, Region> All => s_regions;

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
