using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// A fused region of a generated forward bound to one module instance's numbers (<c>options.Eps</c> and the like).
    /// Generated code calls <c>Run(inputs..., reference)</c>: the region's kernel where it applies (CUDA, fusion on, no
    /// input needing a gradient, float32/float16/bfloat16 inputs, no <c>@fused(false)</c> around the call), otherwise the
    /// reference lambda, which is exactly the .mix expression.
    /// </summary>
    public sealed class FusedRegion
    {
        private readonly FusedRegionKernel _kernel;
        private readonly float[] _scalars;

        private readonly bool _referenceOnly;

        internal FusedRegion(FusedRegionKernel kernel, double[] scalars)
        {
            _kernel = kernel;
            _scalars = Array.ConvertAll(scalars, s => (float)s);
            // A NaN number is an activation layer the kernels do not compute (ActivationCode): this instance keeps its reference.
            _referenceOnly = Array.Exists(scalars, double.IsNaN);
        }

        /// <summary>
        /// The number a region's <c>mix_act</c> computes an activation layer by (bound once, in the constructor): 0
        /// identity, 1 ReLU, 2 exact GELU, 3 SiLU, 4 sigmoid, 5 tanh, 6 squared ReLU; NaN for any other module (a
        /// tanh-approximated GELU, StarReLU with its weights, a user's module), which keeps the region on its reference.
        /// </summary>
        public static double ActivationCode(nn.Module<Tensor, Tensor> act) => act switch
        {
            TorchSharp.Modules.Identity => 0,
            TorchSharp.Modules.ReLU => 1,
            TorchSharp.Modules.GELU { approximate: TorchSharp.Modules.GELU.Approximate.none } => 2,
            TorchSharp.Modules.SiLU => 3,
            TorchSharp.Modules.Sigmoid => 4,
            TorchSharp.Modules.Tanh => 5,
            SquaredReLU => 6,
            _ => double.NaN,
        };

        /// <summary>The region's kernel (name, kind, source).</summary>
        public FusedRegionKernel Kernel => _kernel;

        /// <summary>Tests only, this thread only: runs a region's kernel on CPU tensors (its C++ with the CUDA built-ins emulated).</summary>
        internal static Func<FusedRegionKernel, Tensor[], float[], Tensor?>? Emulator { get => s_emulator; set => s_emulator = value; }

        [ThreadStatic] private static Func<FusedRegionKernel, Tensor[], float[], Tensor?>? s_emulator;

        /// <summary>How many times the fused path ran (all instances of this region), for tests and benchmarks.</summary>
        public static long FusedRuns => System.Threading.Interlocked.Read(ref s_fusedRuns);
        private static long s_fusedRuns;

        /// <summary>The fused result, or null when the fused path does not apply (then run the reference).</summary>
        /// <param name="inputs">The region's tensors, in the order of its kernel's inputs.</param>
        public Tensor? TryRun(params Tensor[] inputs)
        {
            if (_referenceOnly) return null;
            if (Emulator is { } emulate && inputs.All(t => t.device_type == DeviceType.CPU))
            {
                var emulated = emulate(_kernel, inputs, _scalars);
                if (emulated is not null) Cuda.ForwardCost.RecordLaunch();
                return emulated;
            }
            if (!MixDispatchGate(inputs)) return null;
            var y = _kernel.Launch(inputs, _scalars);
            if (y is not null) System.Threading.Interlocked.Increment(ref s_fusedRuns);
            return y;
        }

        /// <summary>
        /// Switch for the planner's regions alone (on by default; <see cref="Builtins.MixDispatch.FusedEnabled"/> turns
        /// every fused path off): with it off the hand-written fused paths still run, so the two can be measured apart.
        /// </summary>
        public static bool Enabled { get; set; } = true;

        private static bool MixDispatchGate(Tensor[] inputs)
        {
            if (!Enabled || !Builtins.MixDispatch.FusedEnabled || SelectiveScan.KernelSuppressed) return false;
            foreach (var t in inputs) if (t.device_type != DeviceType.CUDA) return false;
            return !FusedOps.NeedsGrad(inputs);
        }

        /// <summary>Runs the region on one tensor.</summary>
        public Tensor Run(Tensor a, Func<Tensor, Tensor> reference) => TryRun(a) ?? reference(a);

        /// <summary>Runs the region on two tensors.</summary>
        public Tensor Run(Tensor a, Tensor b, Func<Tensor, Tensor, Tensor> reference) => TryRun(a, b) ?? reference(a, b);

        /// <summary>Runs the region on three tensors.</summary>
        public Tensor Run(Tensor a, Tensor b, Tensor c, Func<Tensor, Tensor, Tensor, Tensor> reference) =>
            TryRun(a, b, c) ?? reference(a, b, c);

        /// <summary>Runs the region on four tensors.</summary>
        public Tensor Run(Tensor a, Tensor b, Tensor c, Tensor d, Func<Tensor, Tensor, Tensor, Tensor, Tensor> reference) =>
            TryRun(a, b, c, d) ?? reference(a, b, c, d);

        /// <summary>Runs the region on five tensors.</summary>
        public Tensor Run(Tensor a, Tensor b, Tensor c, Tensor d, Tensor e, Func<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> reference) =>
            TryRun(a, b, c, d, e) ?? reference(a, b, c, d, e);

        /// <summary>Runs the region on six tensors.</summary>
        public Tensor Run(Tensor a, Tensor b, Tensor c, Tensor d, Tensor e, Tensor f, Func<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> reference) =>
            TryRun(a, b, c, d, e, f) ?? reference(a, b, c, d, e, f);
    }
}
