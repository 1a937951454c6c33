using System;
using System.Linq;
using System.Runtime.CompilerServices;
using Mix.Runtime.Builtins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>The layers of a separable convolution as the fused path reads them (built-in or library module).</summary>
    /// <param name="Module">The mixer itself (its training flag decides whether the fused path may run).</param>
    /// <param name="Pwconv1">Pointwise expansion (1x1 conv).</param>
    /// <param name="Act1">First activation.</param>
    /// <param name="Dwconv">Depthwise convolution.</param>
    /// <param name="Act2">Second activation.</param>
    /// <param name="Pwconv2">Pointwise projection (1x1 conv).</param>
    public sealed record SepConvParts(nn.Module Module, Conv2d Pwconv1, nn.Module<Tensor, Tensor> Act1, Conv2d Dwconv,
        nn.Module<Tensor, Tensor> Act2, Conv2d Pwconv2);

    /// <summary>
    /// Which fused kernel a mixer module computes: the runtime's reference modules by type (<see cref="Pooling"/>,
    /// <see cref="SepConv"/>, <see cref="GlobalFilter"/>, <see cref="MambaMixer"/>), and modules generated from the
    /// standard library's <c>.mix</c> mixers by the kernel they declare (<see cref="IKernelEquivalent"/>), whose children
    /// carry the built-in's names. What is read from a generated module is cached per instance (the fused call's host
    /// cost stays that of a type test).
    /// </summary>
    public static class KernelModules
    {
        static readonly ConditionalWeakTable<nn.Module, SepConvParts?> s_sepconv = new();

        /// <summary>The kernel the fused dispatch runs for <paramref name="module"/>, or null (then the module runs).</summary>
        /// <param name="module">A mixer module.</param>
        public static string? KernelOf(nn.Module module) => module switch
        {
            Pooling => "pooling",
            SepConv => "sepconv",
            GlobalFilter => "global_filter",
            MambaMixer => "mamba",
            IKernelEquivalent k when Usable(k, module) => k.Kernel,
            _ => null,
        };

        static bool Usable(IKernelEquivalent k, nn.Module module) => k.Kernel switch
        {
            "pooling" => PoolSize(module) is not null,
            "sepconv" => SepConvOf(module) is not null,
            "global_filter" => GlobalFilterWeight(module) is not null,
            "mamba" => true,
            _ => false,
        };

        /// <summary>The pooling window of a PoolFormer pooling mixer, or null for any other module.</summary>
        /// <param name="module">A mixer module.</param>
        public static long? PoolSize(nn.Module module) => module switch
        {
            Pooling p => p.PoolSize,
            IKernelEquivalent { Kernel: "pooling" } k => k.Argument("pool_size") as long?,
            _ => null,
        };

        /// <summary>The layers of a separable-convolution mixer, or null for any other module.</summary>
        /// <param name="module">A mixer module.</param>
        public static SepConvParts? SepConvOf(nn.Module module) => module switch
        {
            SepConv s => s_sepconv.GetValue(s, _ => new SepConvParts(s, s.pwconv1, s.act1, s.dwconv, s.act2, s.pwconv2)),
            IKernelEquivalent { Kernel: "sepconv" } => s_sepconv.GetValue(module, ReadSepConv),
            _ => null,
        };

        static SepConvParts? ReadSepConv(nn.Module module)
        {
            var children = module.named_children().ToDictionary(c => c.name, c => c.module);
            return children.TryGetValue("pwconv1", out var pw1) && pw1 is Conv2d pwconv1
                && children.TryGetValue("act1", out var a1) && a1 is nn.Module<Tensor, Tensor> act1
                && children.TryGetValue("dwconv", out var dw) && dw is Conv2d dwconv
                && children.TryGetValue("act2", out var a2) && a2 is nn.Module<Tensor, Tensor> act2
                && children.TryGetValue("pwconv2", out var pw2) && pw2 is Conv2d pwconv2
                    ? new SepConvParts(module, pwconv1, act1, dwconv, act2, pwconv2)
                    : null;
        }

        /// <summary>The learned filter <c>[h, w/2+1, dim, 2]</c> of a GFNet global filter, or null for any other module.</summary>
        /// <param name="module">A mixer module.</param>
        public static Tensor? GlobalFilterWeight(nn.Module module) => module switch
        {
            GlobalFilter g => g.ComplexWeight,
            // The fused path reads [B, N, C] as a square grid, as the built-in does: a library filter of another grid declines.
            IKernelEquivalent { Kernel: "global_filter" } k when k.Argument("h") is long h && k.Argument("w") is long w && h == w
                => module.named_parameters(recurse: false)
                .Where(p => p.name == "complex_weight").Select(p => (Tensor)p.parameter).FirstOrDefault(),
            _ => null,
        };

        /// <summary>Whether <paramref name="module"/> is a Mamba mixer (its scan reaches the CUDA kernel from inside).</summary>
        /// <param name="module">A mixer module.</param>
        public static bool IsMamba(nn.Module module) => module is MambaMixer or IKernelEquivalent { Kernel: "mamba" };
    }
}
