using System;
using System.Threading;
using TorchSharp;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// What a piece of host code dispatched: launches of the project's own kernels (everything that goes through
    /// <see cref="CudaFunction.Launch"/>: fused regions, the hand-written fused ops, the scan kernels; a
    /// <see cref="KernelGraph"/> replay counts as one launch, the host's one call) and TorchSharp
    /// operations, counted as the tensors TorchSharp created on the calling thread (each op that returns a tensor
    /// creates one; views and allocations count too, in-place ops returning their input do not). The second is a proxy
    /// for libtorch's launches — one op can launch several kernels or none — that costs nothing to read.
    /// </summary>
    /// <param name="Launches">Kernel launches through the project's kernel runtime (all threads).</param>
    /// <param name="TorchOps">Tensors TorchSharp created on this thread.</param>
    public readonly record struct ForwardCost(long Launches, long TorchOps)
    {
        private static long s_launches;

        /// <summary>Launches of the project's kernels so far in this process.</summary>
        public static long TotalLaunches => Interlocked.Read(ref s_launches);

        /// <summary>The counters now (launches: process-wide; TorchSharp tensors: this thread's).</summary>
        public static ForwardCost Now
        {
            get
            {
                var stats = DisposeScopeManager.Statistics;
                return new ForwardCost(TotalLaunches, stats.CreatedInScopeCount + stats.CreatedOutsideScopeCount);
            }
        }

        /// <summary>What <paramref name="action"/> dispatched.</summary>
        /// <param name="action">The work to count, e.g. one forward.</param>
        public static ForwardCost Measure(Action action)
        {
            ArgumentNullException.ThrowIfNull(action);
            var before = Now;
            action();
            return Now - before;
        }

        /// <summary>The counts between two readings.</summary>
        public static ForwardCost operator -(ForwardCost after, ForwardCost before) =>
            new(after.Launches - before.Launches, after.TorchOps - before.TorchOps);

        /// <summary>Counts one launch of a project kernel (the kernel runtime, and the test emulator of fused regions).</summary>
        internal static void RecordLaunch() => Interlocked.Increment(ref s_launches);
    }
}
