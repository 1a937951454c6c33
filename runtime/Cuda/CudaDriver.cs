using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// The CUDA driver API (<c>libcuda.so.1</c>), loaded at run time. Works in the device's primary context, the one
    /// libtorch's runtime API uses, so modules loaded here run on TorchSharp's memory; launches go to the legacy
    /// default (null) stream, which is ordered with TorchSharp's own work, except on a thread that is capturing a graph
    /// (<see cref="CapturedGraph"/>): there they go to the capturing stream (<see cref="LaunchStream"/>).
    /// </summary>
    public sealed unsafe class CudaDriver
    {
        /// <summary><c>CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT</c>.</summary>
        public const int AttributeMultiprocessorCount = 16;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE</c>.</summary>
        public const int AttributeL2CacheSize = 38;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR</c>.</summary>
        public const int AttributeMaxThreadsPerMultiprocessor = 39;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR</c>.</summary>
        public const int AttributeMaxSharedMemoryPerMultiprocessor = 81;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR</c>.</summary>
        public const int AttributeComputeCapabilityMajor = 75;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR</c>.</summary>
        public const int AttributeComputeCapabilityMinor = 76;
        /// <summary><c>CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH</c>: whether <see cref="LaunchCooperative"/> is supported.</summary>
        public const int AttributeCooperativeLaunch = 95;

        private readonly delegate* unmanaged<uint, int> _init;
        private readonly delegate* unmanaged<int*, int> _driverVersion;
        private readonly delegate* unmanaged<int*, int, int> _deviceGet;
        private readonly delegate* unmanaged<int*, int, int, int> _deviceGetAttribute;
        private readonly delegate* unmanaged<IntPtr*, int, int> _primaryCtxRetain;
        private readonly delegate* unmanaged<IntPtr, int> _ctxSetCurrent;
        private readonly delegate* unmanaged<IntPtr*, byte*, int> _moduleLoadData;
        private readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, int> _moduleGetFunction;
        private readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> _launchKernel;
        private readonly delegate* unmanaged<int, byte**, int> _getErrorString;
        private readonly delegate* unmanaged<int*, int, IntPtr, int> _funcGetAttribute;
        private readonly delegate* unmanaged<IntPtr*, uint, int> _eventCreate;
        private readonly delegate* unmanaged<IntPtr, IntPtr, int> _eventRecord;
        private readonly delegate* unmanaged<IntPtr, int> _eventSynchronize;
        private readonly delegate* unmanaged<float*, IntPtr, IntPtr, int> _eventElapsedTime;
        private readonly delegate* unmanaged<IntPtr, int> _eventDestroy;
        // Graphs (explicitly built, never captured: our launches go to the legacy null stream, which cannot be captured).
        private readonly delegate* unmanaged<IntPtr*, uint, int> _graphCreate;
        private readonly delegate* unmanaged<IntPtr*, IntPtr, IntPtr*, nuint, void*, int> _graphAddKernelNode;
        private readonly bool _kernelNodeV2;
        private readonly delegate* unmanaged<IntPtr*, IntPtr, ulong, int> _graphInstantiate;
        private readonly delegate* unmanaged<IntPtr, IntPtr, int> _graphLaunch;
        private readonly delegate* unmanaged<IntPtr, int> _graphExecDestroy;
        private readonly delegate* unmanaged<IntPtr, int> _graphDestroy;
        private readonly delegate* unmanaged<ulong, ulong, nuint, IntPtr, int> _memcpyDtoDAsync;
        private readonly delegate* unmanaged<int> _profilerStart, _profilerStop;
        // Optional: grids whose blocks wait for each other (a persistent kernel's grid barrier) need them all resident.
        private readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, int> _launchCooperative;
        private readonly delegate* unmanaged<int*, IntPtr, int, nuint, int> _occupancy;
        private readonly ConcurrentDictionary<int, IntPtr> _contexts = new();
        // Optional: stream capture (a whole decoding step, TorchSharp's kernels and ours, recorded as one graph).
        private readonly delegate* unmanaged<IntPtr*, uint, int> _streamCreate;
        private readonly delegate* unmanaged<IntPtr, int> _streamDestroy;
        private readonly delegate* unmanaged<IntPtr, int> _streamSynchronize;
        private readonly delegate* unmanaged<IntPtr, int, int> _streamBeginCapture;
        private readonly delegate* unmanaged<IntPtr, IntPtr*, int> _streamEndCapture;
        private readonly delegate* unmanaged<IntPtr, IntPtr*, nuint*, int> _graphGetNodes;
        [ThreadStatic] private static IntPtr t_launchStream;

        /// <summary>The stream this thread's launches, copies and graph launches go to: the null stream (zero) except
        /// while <see cref="CapturedGraph"/> records on this thread.</summary>
        public static IntPtr LaunchStream
        {
            get => t_launchStream;
            internal set => t_launchStream = value;
        }

        /// <summary>Driver version as reported by <c>cuDriverGetVersion</c> (e.g. 13000).</summary>
        public int DriverVersion { get; }

        private CudaDriver(IntPtr lib)
        {
            _init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(lib, "cuInit");
            _driverVersion = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuDriverGetVersion");
            _deviceGet = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGet");
            _deviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGetAttribute");
            _primaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)NativeLibrary.GetExport(lib, "cuDevicePrimaryCtxRetain");
            _ctxSetCurrent = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cuCtxSetCurrent");
            _moduleLoadData = (delegate* unmanaged<IntPtr*, byte*, int>)NativeLibrary.GetExport(lib, "cuModuleLoadData");
            _moduleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "cuModuleGetFunction");
            _launchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)NativeLibrary.GetExport(lib, "cuLaunchKernel");
            _getErrorString = (delegate* unmanaged<int, byte**, int>)NativeLibrary.GetExport(lib, "cuGetErrorString");
            _funcGetAttribute = (delegate* unmanaged<int*, int, IntPtr, int>)NativeLibrary.GetExport(lib, "cuFuncGetAttribute");
            _eventCreate = (delegate* unmanaged<IntPtr*, uint, int>)NativeLibrary.GetExport(lib, "cuEventCreate");
            _eventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "cuEventRecord");
            _eventSynchronize = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cuEventSynchronize");
            _eventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)(NativeLibrary.TryGetExport(lib, "cuEventElapsedTime_v2", out var et)
                ? et : NativeLibrary.GetExport(lib, "cuEventElapsedTime"));
            _eventDestroy = (delegate* unmanaged<IntPtr, int>)(NativeLibrary.TryGetExport(lib, "cuEventDestroy_v2", out var ed)
                ? ed : NativeLibrary.GetExport(lib, "cuEventDestroy"));
            // Optional: a driver without them (before CUDA 11.4) runs every launch on its own.
            if (NativeLibrary.TryGetExport(lib, "cuGraphCreate", out var gc)
                && NativeLibrary.TryGetExport(lib, "cuGraphInstantiateWithFlags", out var gi)
                && NativeLibrary.TryGetExport(lib, "cuGraphLaunch", out var gl)
                && NativeLibrary.TryGetExport(lib, "cuGraphExecDestroy", out var ged)
                && NativeLibrary.TryGetExport(lib, "cuGraphDestroy", out var gd)
                && NativeLibrary.TryGetExport(lib, "cuMemcpyDtoDAsync_v2", out var mc)
                && (NativeLibrary.TryGetExport(lib, "cuGraphAddKernelNode_v2", out var gk) && (_kernelNodeV2 = true)
                    || NativeLibrary.TryGetExport(lib, "cuGraphAddKernelNode", out gk)))
            {
                _graphCreate = (delegate* unmanaged<IntPtr*, uint, int>)gc;
                _graphAddKernelNode = (delegate* unmanaged<IntPtr*, IntPtr, IntPtr*, nuint, void*, int>)gk;
                _graphInstantiate = (delegate* unmanaged<IntPtr*, IntPtr, ulong, int>)gi;
                _graphLaunch = (delegate* unmanaged<IntPtr, IntPtr, int>)gl;
                _graphExecDestroy = (delegate* unmanaged<IntPtr, int>)ged;
                _graphDestroy = (delegate* unmanaged<IntPtr, int>)gd;
                _memcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, IntPtr, int>)mc;
            }
            // Optional: brackets the launches a profiler started with --profile-from-start off records (benchmarks only).
            if (NativeLibrary.TryGetExport(lib, "cuProfilerStart", out var ps) && NativeLibrary.TryGetExport(lib, "cuProfilerStop", out var pe))
            {
                _profilerStart = (delegate* unmanaged<int>)ps;
                _profilerStop = (delegate* unmanaged<int>)pe;
            }
            if (NativeLibrary.TryGetExport(lib, "cuLaunchCooperativeKernel", out var lc)
                && NativeLibrary.TryGetExport(lib, "cuOccupancyMaxActiveBlocksPerMultiprocessor", out var oc))
            {
                _launchCooperative = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, int>)lc;
                _occupancy = (delegate* unmanaged<int*, IntPtr, int, nuint, int>)oc;
            }
            if (NativeLibrary.TryGetExport(lib, "cuStreamCreate", out var sc)
                && NativeLibrary.TryGetExport(lib, "cuStreamDestroy_v2", out var sd)
                && NativeLibrary.TryGetExport(lib, "cuStreamSynchronize", out var ss)
                && NativeLibrary.TryGetExport(lib, "cuStreamBeginCapture_v2", out var bc)
                && NativeLibrary.TryGetExport(lib, "cuStreamEndCapture", out var ec)
                && NativeLibrary.TryGetExport(lib, "cuGraphGetNodes", out var gn))
            {
                _streamCreate = (delegate* unmanaged<IntPtr*, uint, int>)sc;
                _streamDestroy = (delegate* unmanaged<IntPtr, int>)sd;
                _streamSynchronize = (delegate* unmanaged<IntPtr, int>)ss;
                _streamBeginCapture = (delegate* unmanaged<IntPtr, int, int>)bc;
                _streamEndCapture = (delegate* unmanaged<IntPtr, IntPtr*, int>)ec;
                _graphGetNodes = (delegate* unmanaged<IntPtr, IntPtr*, nuint*, int>)gn;
            }
            Check(_init(0), "cuInit");
            int v;
            Check(_driverVersion(&v), "cuDriverGetVersion");
            DriverVersion = v;
        }

        /// <summary>Loads <c>libcuda.so.1</c> (or <c>libcuda.so</c>, <c>nvcuda.dll</c>) and initialises it; null with a reason when it cannot.</summary>
        /// <param name="error">Why the driver is unavailable.</param>
        public static CudaDriver? TryLoad(out string? error)
        {
            var names = OperatingSystem.IsWindows() ? new[] { "nvcuda.dll" } : new[] { "libcuda.so.1", "libcuda.so" };
            foreach (var n in names)
            {
                if (!NativeLibrary.TryLoad(n, out var lib)) continue;
                try
                {
                    error = null;
                    return new CudaDriver(lib);
                }
                catch (Exception e) when (e is EntryPointNotFoundException or CudaKernelUnavailableException)
                {
                    error = $"the CUDA driver ({n}) loaded but did not initialise: {e.Message}";
                    return null;
                }
            }
            error = "the CUDA driver library (libcuda.so.1) was not found";
            return null;
        }

        /// <summary>Reads a device attribute (<c>cuDeviceGetAttribute</c>).</summary>
        /// <param name="device">Device ordinal.</param>
        /// <param name="attribute">A <c>CU_DEVICE_ATTRIBUTE_*</c> value.</param>
        public int GetAttribute(int device, int attribute)
        {
            int dev, value;
            Check(_deviceGet(&dev, device), "cuDeviceGet");
            Check(_deviceGetAttribute(&value, attribute, dev), "cuDeviceGetAttribute");
            return value;
        }

        /// <summary>Compute capability (major, minor) of a device.</summary>
        /// <param name="device">Device ordinal.</param>
        public (int major, int minor) ComputeCapability(int device) =>
            (GetAttribute(device, AttributeComputeCapabilityMajor), GetAttribute(device, AttributeComputeCapabilityMinor));

        /// <summary>Makes the device's primary context current on the calling thread (retained once per process).</summary>
        /// <param name="device">Device ordinal.</param>
        public void MakeCurrent(int device)
        {
            // Every launch passes here: look up first, so the retaining delegate is made only for a new device.
            if (!_contexts.TryGetValue(device, out var ctx)) ctx = _contexts.GetOrAdd(device, RetainPrimaryContext);
            Check(_ctxSetCurrent(ctx), "cuCtxSetCurrent");
        }

        private IntPtr RetainPrimaryContext(int device)
        {
            int dev;
            Check(_deviceGet(&dev, device), "cuDeviceGet");
            IntPtr c;
            Check(_primaryCtxRetain(&c, dev), "cuDevicePrimaryCtxRetain");
            return c;
        }

        /// <summary>Loads a cubin into the device's primary context and returns the module handle.</summary>
        /// <param name="device">Device ordinal.</param>
        /// <param name="image">Cubin bytes.</param>
        public IntPtr LoadModule(int device, byte[] image)
        {
            MakeCurrent(device);
            IntPtr module;
            fixed (byte* p = image) Check(_moduleLoadData(&module, p), "cuModuleLoadData");
            return module;
        }

        /// <summary>Looks up an <c>extern "C"</c> kernel in a module.</summary>
        /// <param name="module">Module handle from <see cref="LoadModule"/>.</param>
        /// <param name="name">Kernel name.</param>
        public IntPtr GetFunction(IntPtr module, string name)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(name + "\0");
            IntPtr f;
            fixed (byte* p = bytes) Check(_moduleGetFunction(&f, module, p), $"cuModuleGetFunction({name})");
            return f;
        }

        /// <summary>Launches a kernel on the null stream (asynchronous).</summary>
        /// <param name="device">Device ordinal whose context is made current.</param>
        /// <param name="function">Kernel handle.</param>
        /// <param name="grid">Grid size.</param>
        /// <param name="block">Block size.</param>
        /// <param name="sharedBytes">Dynamic shared memory in bytes.</param>
        /// <param name="parameters">Array of pointers to the argument values.</param>
        public void Launch(int device, IntPtr function, Dim3 grid, Dim3 block, uint sharedBytes, void** parameters)
        {
            MakeCurrent(device);
            Check(_launchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, t_launchStream, parameters, null),
                "cuLaunchKernel");
        }

        /// <summary>Whether this driver has cooperative launches and the occupancy query (<see cref="LaunchCooperative"/>).</summary>
        public bool SupportsCooperativeLaunch => _launchCooperative != null;

        /// <summary>How many blocks of <paramref name="function"/> one multiprocessor holds at once with <paramref name="blockSize"/>
        /// threads and <paramref name="sharedBytes"/> of dynamic shared memory (<c>cuOccupancyMaxActiveBlocksPerMultiprocessor</c>).</summary>
        /// <param name="device">Device ordinal whose context is made current.</param>
        /// <param name="function">Kernel handle.</param>
        /// <param name="blockSize">Threads per block.</param>
        /// <param name="sharedBytes">Dynamic shared memory per block.</param>
        public int MaxActiveBlocksPerMultiprocessor(int device, IntPtr function, int blockSize, uint sharedBytes)
        {
            if (_occupancy == null) throw new CudaKernelUnavailableException("this CUDA driver has no cuOccupancyMaxActiveBlocksPerMultiprocessor");
            MakeCurrent(device);
            int n;
            Check(_occupancy(&n, function, blockSize, sharedBytes), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
            return n;
        }

        /// <summary>Launches a kernel whose blocks are all resident at once (<c>cuLaunchCooperativeKernel</c>, null stream):
        /// the driver refuses a grid larger than the device holds, so a grid barrier inside cannot wait forever on a block
        /// that never starts.</summary>
        /// <param name="device">Device ordinal whose context is made current.</param>
        /// <param name="function">Kernel handle.</param>
        /// <param name="grid">Grid size.</param>
        /// <param name="block">Block size.</param>
        /// <param name="sharedBytes">Dynamic shared memory in bytes.</param>
        /// <param name="parameters">Array of pointers to the argument values.</param>
        public void LaunchCooperative(int device, IntPtr function, Dim3 grid, Dim3 block, uint sharedBytes, void** parameters)
        {
            if (_launchCooperative == null) throw new CudaKernelUnavailableException("this CUDA driver has no cuLaunchCooperativeKernel");
            MakeCurrent(device);
            Check(_launchCooperative(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, t_launchStream, parameters),
                "cuLaunchCooperativeKernel");
        }

        /// <summary>Reads a kernel attribute (<c>cuFuncGetAttribute</c>, e.g. 4 = registers per thread, 3 = local bytes per thread).</summary>
        /// <param name="function">Kernel handle.</param>
        /// <param name="attribute">A <c>CU_FUNC_ATTRIBUTE_*</c> value.</param>
        public int GetFunctionAttribute(IntPtr function, int attribute)
        {
            int value;
            Check(_funcGetAttribute(&value, attribute, function), "cuFuncGetAttribute");
            return value;
        }

        /// <summary>Creates an event (<c>cuEventCreate</c>, default flags) in the device's primary context.</summary>
        /// <param name="device">Device ordinal.</param>
        public IntPtr CreateEvent(int device)
        {
            MakeCurrent(device);
            IntPtr e;
            Check(_eventCreate(&e, 0), "cuEventCreate");
            return e;
        }

        /// <summary>Records an event on the null stream (ordered with TorchSharp's work).</summary>
        /// <param name="device">Device ordinal.</param>
        /// <param name="e">Event from <see cref="CreateEvent"/>.</param>
        public void RecordEvent(int device, IntPtr e)
        {
            MakeCurrent(device);
            Check(_eventRecord(e, IntPtr.Zero), "cuEventRecord");
        }

        /// <summary>Milliseconds between two recorded events, after waiting for the second.</summary>
        /// <param name="start">Earlier event.</param>
        /// <param name="end">Later event.</param>
        public float ElapsedMilliseconds(IntPtr start, IntPtr end)
        {
            Check(_eventSynchronize(end), "cuEventSynchronize");
            float ms;
            Check(_eventElapsedTime(&ms, start, end), "cuEventElapsedTime");
            return ms;
        }

        /// <summary>Destroys an event.</summary>
        /// <param name="e">Event from <see cref="CreateEvent"/>.</param>
        public void DestroyEvent(IntPtr e) => _eventDestroy(e);

        /// <summary>Whether this driver builds and launches graphs (<see cref="KernelGraph"/>).</summary>
        public bool SupportsGraphs => _graphCreate != null;

        /// <summary>Starts (true) or stops (false) the recording of an attached profiler (Nsight Compute or Systems with
        /// capture by the profiler API); nothing without one or on a driver that lacks the calls.</summary>
        /// <param name="on">Start or stop.</param>
        public void Profile(bool on)
        {
            if (_profilerStart == null) return;
            Check(on ? _profilerStart() : _profilerStop(), on ? "cuProfilerStart" : "cuProfilerStop");
        }

        // CUDA_KERNEL_NODE_PARAMS (v2 appends a CUkernel and a CUcontext, both left null: the function's own context).
        [StructLayout(LayoutKind.Sequential)]
        private struct KernelNodeParams
        {
            public IntPtr Func;
            public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
            public void** Params;
            public void** Extra;
            public IntPtr Kernel;
            public IntPtr Context;
        }

        internal IntPtr CreateGraph(int device)
        {
            if (!SupportsGraphs) throw new CudaKernelUnavailableException("this CUDA driver has no graph API");
            MakeCurrent(device);
            IntPtr g;
            Check(_graphCreate(&g, 0), "cuGraphCreate");
            return g;
        }

        // The node depends on `after` (or on nothing when it is zero); the argument values are copied into the node.
        internal IntPtr AddKernelNode(IntPtr graph, IntPtr after, IntPtr function, Dim3 grid, Dim3 block, uint sharedBytes, void** parameters)
        {
            var p = new KernelNodeParams
            {
                Func = function, GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block.X, BlockY = block.Y, BlockZ = block.Z,
                SharedBytes = sharedBytes, Params = parameters,
            };
            IntPtr node;
            Check(_graphAddKernelNode(&node, graph, after == IntPtr.Zero ? null : &after, after == IntPtr.Zero ? 0u : 1u, &p),
                _kernelNodeV2 ? "cuGraphAddKernelNode_v2" : "cuGraphAddKernelNode");
            return node;
        }

        internal IntPtr InstantiateGraph(IntPtr graph)
        {
            var exec = TryInstantiateGraph(graph, out var error);
            return exec != IntPtr.Zero ? exec : throw new CudaKernelUnavailableException($"cuGraphInstantiateWithFlags failed: {error}");
        }

        internal void LaunchGraph(int device, IntPtr exec)
        {
            MakeCurrent(device);
            Check(_graphLaunch(exec, t_launchStream), "cuGraphLaunch");
        }

        internal void DestroyGraph(IntPtr graph, IntPtr exec)
        {
            if (exec != IntPtr.Zero) _graphExecDestroy(exec);
            if (graph != IntPtr.Zero) _graphDestroy(graph);
        }

        /// <summary>Queues a device-to-device copy on the null stream (ordered with TorchSharp's work).</summary>
        /// <param name="device">Device ordinal.</param>
        /// <param name="destination">Destination address.</param>
        /// <param name="source">Source address.</param>
        /// <param name="bytes">Bytes to copy.</param>
        public void CopyAsync(int device, IntPtr destination, IntPtr source, long bytes)
        {
            if (_memcpyDtoDAsync == null) throw new CudaKernelUnavailableException("this CUDA driver has no cuMemcpyDtoDAsync_v2");
            MakeCurrent(device);
            Check(_memcpyDtoDAsync((ulong)destination, (ulong)source, (nuint)bytes, t_launchStream), "cuMemcpyDtoDAsync");
        }

        /// <summary>Whether this driver can record a stream into a graph (<see cref="CapturedGraph"/>).</summary>
        public bool SupportsStreamCapture => _streamCreate != null && SupportsGraphs;

        // CU_STREAM_NON_BLOCKING: the capturing stream must not synchronise implicitly with the legacy null stream
        // (a capture that would is invalidated).
        internal IntPtr CreateStream(int device)
        {
            if (!SupportsStreamCapture) throw new CudaKernelUnavailableException("this CUDA driver has no stream capture");
            MakeCurrent(device);
            IntPtr s;
            Check(_streamCreate(&s, 1), "cuStreamCreate");
            return s;
        }

        internal void DestroyStream(IntPtr stream)
        {
            if (stream != IntPtr.Zero) _streamDestroy(stream);
        }

        internal void SynchronizeStream(IntPtr stream) => Check(_streamSynchronize(stream), "cuStreamSynchronize");

        // CU_STREAM_CAPTURE_MODE_RELAXED: libtorch's caching allocator may still cudaMalloc while a step is recorded.
        internal void BeginCapture(IntPtr stream) => Check(_streamBeginCapture(stream, 2), "cuStreamBeginCapture");

        /// <summary>Ends a capture; returns the graph, or zero with <paramref name="error"/> when the capture was invalidated.</summary>
        internal IntPtr EndCapture(IntPtr stream, out string? error)
        {
            IntPtr g;
            int rc = _streamEndCapture(stream, &g);
            error = rc == 0 ? null : ErrorString(rc);
            if (rc != 0 && g != IntPtr.Zero) { _graphDestroy(g); g = IntPtr.Zero; }
            return g;
        }

        internal int GraphNodeCount(IntPtr graph)
        {
            nuint n = 0;
            Check(_graphGetNodes(graph, null, &n), "cuGraphGetNodes");
            return (int)n;
        }

        /// <summary>Instantiates a captured graph; zero with <paramref name="error"/> when the driver refuses it.</summary>
        internal IntPtr TryInstantiateGraph(IntPtr graph, out string? error)
        {
            IntPtr exec;
            int rc = _graphInstantiate(&exec, graph, 0);
            error = rc == 0 ? null : ErrorString(rc);
            return rc == 0 ? exec : IntPtr.Zero;
        }

        private string ErrorString(int rc)
        {
            byte* s = null;
            if (_getErrorString(rc, &s) != 0 || s == null) return $"CUDA error {rc}";
            return Marshal.PtrToStringUTF8((IntPtr)s) + $" ({rc})";
        }

        private void Check(int rc, string what)
        {
            if (rc != 0) throw new CudaKernelUnavailableException($"{what} failed: {ErrorString(rc)}");
        }
    }
}
