using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Device-side time of work queued on the null stream (where TorchSharp's operations run): two CUDA events around a
    /// region. Unlike a host clock it excludes the time the host spends issuing work, so it separates kernel time from
    /// launch overhead.
    /// </summary>
    public sealed class CudaTimer : IDisposable
    {
        private readonly CudaDriver _driver;
        private readonly int _device;
        private readonly IntPtr _start, _end;

        /// <summary>Creates the two events on <paramref name="device"/>.</summary>
        /// <param name="device">CUDA device ordinal.</param>
        /// <exception cref="CudaKernelUnavailableException">No CUDA driver.</exception>
        public CudaTimer(int device = 0)
        {
            _driver = KernelRuntime.Shared.Driver ?? throw new CudaKernelUnavailableException(KernelRuntime.Shared.UnavailableReason ?? "no CUDA driver");
            _device = device;
            _start = _driver.CreateEvent(device);
            _end = _driver.CreateEvent(device);
        }

        /// <summary>Marks the start of the region (queued after the work issued so far).</summary>
        public void Start() => _driver.RecordEvent(_device, _start);

        /// <summary>Marks the end of the region, waits for it and returns the device time since <see cref="Start"/> in milliseconds.</summary>
        public double StopMilliseconds()
        {
            _driver.RecordEvent(_device, _end);
            return _driver.ElapsedMilliseconds(_start, _end);
        }

        /// <inheritdoc />
        public void Dispose()
        {
            _driver.DestroyEvent(_start);
            _driver.DestroyEvent(_end);
        }
    }
}
