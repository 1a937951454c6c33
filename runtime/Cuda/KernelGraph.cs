using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// A chain of kernel launches recorded once and replayed with one <c>cuGraphLaunch</c>: what a decoding step that
    /// would otherwise queue dozens of small kernels per token uses to pay the host's launch cost once. The graph is
    /// built node by node (our launches go to the legacy null stream, which stream capture cannot record); each node
    /// runs after the previous one, and the argument values (tensor addresses included) are copied in when the node is
    /// added, so a replay touches exactly the memory the recording named: the owner keeps those tensors alive and
    /// unmoved for as long as it replays.
    /// </summary>
    public sealed unsafe class KernelGraph : IDisposable
    {
        private readonly CudaDriver driver;
        private IntPtr graph, exec, last;

        /// <summary>Starts an empty graph on device <paramref name="device"/>.</summary>
        /// <param name="device">CUDA device ordinal.</param>
        /// <exception cref="CudaKernelUnavailableException">No CUDA driver, or one without the graph API.</exception>
        public KernelGraph(int device)
        {
            driver = KernelRuntime.Shared.Driver ?? throw new CudaKernelUnavailableException("the CUDA driver is not loaded");
            Device = device;
            graph = driver.CreateGraph(device);
        }

        /// <summary>The device the graph runs on.</summary>
        public int Device { get; }

        /// <summary>Kernels recorded.</summary>
        public int Nodes { get; private set; }

        /// <summary>Whether <see cref="Instantiate"/> has run (no more nodes can be added).</summary>
        public bool IsReady => exec != IntPtr.Zero;

        /// <summary>Appends a launch of <paramref name="function"/> after the previous one, with the values in <paramref name="args"/> as they are now.</summary>
        /// <param name="function">The kernel (on this graph's device).</param>
        /// <param name="grid">Grid size; a launch with an empty grid is left out, as <see cref="CudaFunction.Launch"/> does.</param>
        /// <param name="block">Block size.</param>
        /// <param name="sharedBytes">Dynamic shared memory in bytes.</param>
        /// <param name="args">Arguments built for this device (they may be disposed once this returns).</param>
        public void Add(CudaFunction function, Dim3 grid, Dim3 block, uint sharedBytes, KernelArguments args)
        {
            ArgumentNullException.ThrowIfNull(function);
            ArgumentNullException.ThrowIfNull(args);
            if (IsReady) throw new InvalidOperationException("the graph is already instantiated");
            if (function.Device != Device || args.Device != Device)
                throw new ArgumentException($"kernel on cuda:{function.Device}, arguments for cuda:{args.Device}, graph on cuda:{Device}");
            if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
            last = driver.AddKernelNode(graph, last, function.Handle, grid, block, sharedBytes, args.Pointers);
            Nodes++;
        }

        /// <summary>Makes the recorded chain launchable (once, after the last <see cref="Add"/>).</summary>
        public void Instantiate()
        {
            if (IsReady) return;
            exec = driver.InstantiateGraph(graph);
        }

        /// <summary>Queues the whole chain on the null stream (asynchronous; ordered with TorchSharp's work).</summary>
        public void Launch()
        {
            if (!IsReady) throw new InvalidOperationException("instantiate the graph before launching it");
            driver.LaunchGraph(Device, exec);
            ForwardCost.RecordLaunch(); // one host call, whatever the graph holds
        }

        /// <inheritdoc />
        public void Dispose()
        {
            Release();
            GC.SuppressFinalize(this);
        }

        /// <summary>Releases the graph of an owner that was dropped without disposing it.</summary>
        ~KernelGraph() => Release();

        private void Release()
        {
            if (graph == IntPtr.Zero && exec == IntPtr.Zero) return;
            driver.DestroyGraph(graph, exec);
            graph = exec = last = IntPtr.Zero;
        }
    }
}
