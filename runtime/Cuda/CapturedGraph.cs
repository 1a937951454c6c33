using System;
using TorchSharp;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Any TorchSharp code (libtorch's kernels, cuBLAS, and this project's own kernels) recorded once by stream capture
    /// and replayed with one <c>cuGraphLaunch</c>: what <c>torch.cuda.CUDAGraph</c> is to PyTorch, for the code paths
    /// whose host cost dominates (a decoding step of a few thousand small kernels).
    /// <para>
    /// The graph owns a stream. While <see cref="RunEager"/> or <see cref="TryCapture"/> runs the body, libtorch's current
    /// stream (<see cref="TorchStreams"/>) and this project's launches (<see cref="CudaDriver.LaunchStream"/>) both point
    /// at it. libtorch's caching allocator keeps the blocks freed on a stream for that stream alone, so the temporaries
    /// the recorded body allocated and freed stay reserved for the graph's replays: nothing else allocates on this stream.
    /// The owner keeps every tensor the body reads or writes from outside (inputs, outputs, states) alive and unmoved,
    /// and writes inputs / reads outputs around <see cref="Replay"/>, which runs on the null stream, ordered with
    /// TorchSharp's other work.
    /// </para>
    /// </summary>
    public sealed class CapturedGraph : IDisposable
    {
        private readonly CudaDriver driver;
        private readonly TorchStreams streams;
        private IntPtr stream, graph, exec;

        private CapturedGraph(CudaDriver driver, TorchStreams streams, int device)
        {
            this.driver = driver;
            this.streams = streams;
            Device = device;
            stream = driver.CreateStream(device);
        }

        /// <summary>A graph on <paramref name="device"/>, or null with the reason (no CUDA driver, no stream capture, or
        /// libtorch's stream functions not found).</summary>
        /// <param name="device">CUDA device ordinal.</param>
        /// <param name="error">Why none can be made.</param>
        public static CapturedGraph? TryCreate(int device, out string? error)
        {
            var driver = KernelRuntime.Shared.Driver;
            if (driver is null) { error = "the CUDA driver is not loaded"; return null; }
            if (!driver.SupportsStreamCapture) { error = "this CUDA driver has no stream capture"; return null; }
            var streams = TorchStreams.TryLoad(out error);
            if (streams is null) return null;
            try
            {
                return new CapturedGraph(driver, streams, device);
            }
            catch (CudaKernelUnavailableException e)
            {
                error = e.Message;
                return null;
            }
        }

        /// <summary>The device.</summary>
        public int Device { get; }

        /// <summary>Whether a recording succeeded (<see cref="Replay"/> may run).</summary>
        public bool IsReady => exec != IntPtr.Zero;

        /// <summary>Graph nodes recorded (kernels, copies, memsets).</summary>
        public int Nodes { get; private set; }

        /// <summary>
        /// Runs <paramref name="body"/> now, on the graph's stream, and waits for it: the warm-up before a recording, so
        /// that lazily made things (cuBLAS's workspace for this stream, compiled kernels, allocator blocks) exist before
        /// the capture, where making them is not allowed.
        /// </summary>
        /// <param name="body">The code to run.</param>
        public void RunEager(Action body)
        {
            ArgumentNullException.ThrowIfNull(body);
            ThrowIfDisposed();
            // The body reads what the null stream wrote; our stream does not wait for it implicitly (non-blocking).
            torch.cuda.synchronize();
            var previous = streams.Use(stream, Device);
            var launches = CudaDriver.LaunchStream;
            CudaDriver.LaunchStream = stream;
            try
            {
                body();
            }
            finally
            {
                CudaDriver.LaunchStream = launches;
                streams.Restore(previous);
                driver.SynchronizeStream(stream);
            }
        }

        /// <summary>
        /// Records <paramref name="body"/> (nothing runs) and makes it replayable. False, with the reason, when the body
        /// did something a capture cannot hold (a host synchronisation, a copy from pageable host memory, an exception):
        /// the capture is then closed, nothing was executed, and this graph stays unusable.
        /// </summary>
        /// <param name="body">The code to record.</param>
        /// <param name="error">Why the recording failed.</param>
        public bool TryCapture(Action body, out string? error)
        {
            ArgumentNullException.ThrowIfNull(body);
            ThrowIfDisposed();
            if (IsReady) throw new InvalidOperationException("this graph is already recorded");
            torch.cuda.synchronize();
            var previous = streams.Use(stream, Device);
            var launches = CudaDriver.LaunchStream;
            Exception? thrown = null;
            try
            {
                driver.BeginCapture(stream);
            }
            catch (CudaKernelUnavailableException e)
            {
                streams.Restore(previous);
                error = e.Message;
                return false;
            }
            CudaDriver.LaunchStream = stream;
            try
            {
                body();
            }
            catch (Exception e)
            {
                thrown = e;
            }
            finally
            {
                CudaDriver.LaunchStream = launches;
                streams.Restore(previous);
            }
            var g = driver.EndCapture(stream, out var endError);
            if (thrown is not null || g == IntPtr.Zero)
            {
                if (g != IntPtr.Zero) driver.DestroyGraph(g, IntPtr.Zero);
                error = thrown is not null ? $"{thrown.GetType().Name}: {thrown.Message}" : $"the capture was invalidated ({endError})";
                return false;
            }
            var e2 = driver.TryInstantiateGraph(g, out error);
            if (e2 == IntPtr.Zero)
            {
                driver.DestroyGraph(g, IntPtr.Zero);
                return false;
            }
            graph = g;
            exec = e2;
            Nodes = driver.GraphNodeCount(g);
            return true;
        }

        /// <summary>Replays the recording on the null stream (asynchronous, ordered with TorchSharp's work).</summary>
        public void Replay()
        {
            ThrowIfDisposed();
            if (!IsReady) throw new InvalidOperationException("nothing was recorded");
            driver.LaunchGraph(Device, exec);
        }

        private void ThrowIfDisposed()
        {
            if (stream == IntPtr.Zero) throw new ObjectDisposedException(nameof(CapturedGraph));
        }

        /// <summary>Releases the graph and its stream (after the device finished its replays).</summary>
        public void Dispose()
        {
            if (stream == IntPtr.Zero) return;
            torch.cuda.synchronize();
            driver.DestroyGraph(graph, exec);
            driver.DestroyStream(stream);
            graph = exec = stream = IntPtr.Zero;
            GC.SuppressFinalize(this);
        }
    }
}
