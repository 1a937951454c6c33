using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>A loaded kernel on one device, from <see cref="KernelRuntime.GetFunction"/>.</summary>
    public sealed unsafe class CudaFunction
    {
        private readonly CudaDriver _driver;
        private readonly IntPtr _handle;

        internal CudaFunction(CudaDriver driver, IntPtr handle, string name, int device)
        {
            _driver = driver;
            _handle = handle;
            Name = name;
            Device = device;
        }

        internal IntPtr Handle => _handle;
        internal CudaDriver Driver => _driver;

        /// <summary>Kernel name.</summary>
        public string Name { get; }

        /// <summary>CUDA device ordinal the kernel is loaded on.</summary>
        public int Device { get; }

        /// <summary>Registers per thread, as compiled (<c>CU_FUNC_ATTRIBUTE_NUM_REGS</c>).</summary>
        public int Registers => _driver.GetFunctionAttribute(_handle, 4);

        /// <summary>Local memory per thread in bytes (spills and local arrays; <c>CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES</c>).</summary>
        public int LocalBytes => _driver.GetFunctionAttribute(_handle, 3);

        /// <summary>Queues the kernel on the null stream (asynchronous; ordered with TorchSharp's work).</summary>
        /// <param name="grid">Grid size (no dimension may be 0).</param>
        /// <param name="block">Block size.</param>
        /// <param name="sharedBytes">Dynamic shared memory in bytes.</param>
        /// <param name="args">Arguments, built for this device.</param>
        public void Launch(Dim3 grid, Dim3 block, uint sharedBytes, KernelArguments args)
        {
            ArgumentNullException.ThrowIfNull(args);
            if (args.Device != Device) throw new ArgumentException($"arguments were built for cuda:{args.Device}, kernel is on cuda:{Device}", nameof(args));
            if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
            _driver.Launch(Device, _handle, grid, block, sharedBytes, args.Pointers);
            ForwardCost.RecordLaunch();
        }

        /// <summary>Queues the kernel with every block resident at once (<see cref="CudaDriver.LaunchCooperative"/>).</summary>
        /// <param name="grid">Grid size (no dimension may be 0).</param>
        /// <param name="block">Block size.</param>
        /// <param name="sharedBytes">Dynamic shared memory in bytes.</param>
        /// <param name="args">Arguments, built for this device.</param>
        public void LaunchCooperative(Dim3 grid, Dim3 block, uint sharedBytes, KernelArguments args)
        {
            ArgumentNullException.ThrowIfNull(args);
            if (args.Device != Device) throw new ArgumentException($"arguments were built for cuda:{args.Device}, kernel is on cuda:{Device}", nameof(args));
            if (grid.X == 0 || grid.Y == 0 || grid.Z == 0) return;
            _driver.LaunchCooperative(Device, _handle, grid, block, sharedBytes, args.Pointers);
            ForwardCost.RecordLaunch();
        }

        /// <summary>Blocks of this kernel one multiprocessor holds at once (<see cref="CudaDriver.MaxActiveBlocksPerMultiprocessor"/>).</summary>
        /// <param name="blockSize">Threads per block.</param>
        /// <param name="sharedBytes">Dynamic shared memory per block.</param>
        public int MaxActiveBlocksPerMultiprocessor(int blockSize, uint sharedBytes) =>
            _driver.MaxActiveBlocksPerMultiprocessor(Device, _handle, blockSize, sharedBytes);
    }
}
