using System.Runtime.CompilerServices;
using System.Threading;
using Mix.Runtime.Builtins;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// Connects the fused kernels to the mixer call sites of generated code (<see cref="MixDispatch.TokenMixer"/>):
    /// registered when the runtime loads, used only on CUDA inputs when no gradient is needed (training keeps the
    /// reference path, which has autograd), and declining — so the reference module runs — whenever a kernel
    /// does not apply or cannot be compiled.
    /// </summary>
    public static class FusedMixers
    {
        private static int s_scanInstalled;

#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register() => MixDispatch.FusedMixer ??= TryForward;
#pragma warning restore CA2255

        /// <summary>The fused forward of <paramref name="mixer"/> on <paramref name="x"/>, or null to use the reference.</summary>
        public static Tensor? TryForward(nn.Module<Tensor, Tensor> mixer, Tensor x)
        {
            if (!x.is_cuda || torch.is_grad_enabled()) return null;
            // Built-in modules by type, standard-library modules by the kernel they declare (KernelModules).
            // The global filter's spectrum multiply is a hand kernel with no region equivalent (complex values).
            if (SubBlockPlanner.HandKernels && KernelModules.GlobalFilterWeight(mixer) is { } filter) return FusedOps.GlobalFilter(x, filter);
            // A separable convolution: the planner's steps (bias + activation between the convolutions).
            if (SubBlockPlanner.ForMixer(mixer) is { } plan) return plan.TryRun(x);
            if (KernelModules.IsMamba(mixer))
            {
                // Mamba's scan calls its kernel slot itself: install the CUDA scan once, then run the module.
                if (Interlocked.CompareExchange(ref s_scanInstalled, 1, 0) == 0 && SelectiveScan.Kernel is null)
                    CudaSelectiveScanKernel.Install();
            }
            return null;
        }
    }
}
