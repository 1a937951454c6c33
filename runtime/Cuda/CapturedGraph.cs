using System;
using System.Collections.Generic;
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
    public sealed class CapturedGraph : IStepRecorder
    {
        private readonly CudaDriver driver;
        private readonly TorchStreams streams;
        private IntPtr stream;
        // The recording: segments of recorded work, and between two segments an eager gap (Gap); a replay runs
        // segment 0, gap 0, segment 1, ... (one segment and no gap when the body asked for none).
        private readonly List<IntPtr> graphs = new(), execs = new();
        private readonly List<Action> gaps = new();
        [ThreadStatic] private static CapturedGraph? t_recording;

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
        public bool IsReady => execs.Count > 0;

        /// <summary>Graph nodes recorded (kernels, copies, memsets), all segments together.</summary>
        public int Nodes { get; private set; }

        /// <summary>Recorded segments (one more than the eager gaps between them).</summary>
        public int Segments => execs.Count;

        /// <summary>Whether the calling thread is inside <see cref="TryCapture"/>'s body (so <see cref="Gap"/> may be called).</summary>
        public static bool IsRecording => t_recording is not null || t_emulated is not null;

        // An emulated recording (tests on the CPU, IStepRecorder): the body runs at every replay with IsRecording true,
        // and a gap runs where it is met.
        [ThreadStatic] private static object? t_emulated;

        /// <summary>Runs <paramref name="body"/> as a replay of an emulated recording (see <see cref="IStepRecorder"/>).</summary>
        internal static void RunEmulatedReplay(object recorder, Action body)
        {
            var outer = t_emulated;
            t_emulated = recorder;
            try { body(); }
            finally { t_emulated = outer; }
        }

        /// <summary>
        /// Inside <see cref="TryCapture"/>'s body: ends the segment recorded so far and makes <paramref name="eager"/> run
        /// (eagerly, on the null stream) between it and the next one on every replay; the recording then goes on. What
        /// cannot be recorded but must happen within the step goes here — an attention layer whose KV cache grows each
        /// step (what vLLM's piecewise CUDA graphs leave out of the graph too). The gap reads what the segment before it
        /// wrote and writes what the next one reads: tensors its caller keeps alive and unmoved.
        /// </summary>
        /// <param name="eager">The work to run between the two segments at every replay (not now).</param>
        /// <exception cref="InvalidOperationException">Not recording, or the segment could not be recorded.</exception>
        public static void Gap(Action eager)
        {
            ArgumentNullException.ThrowIfNull(eager);
            if (t_recording is null && t_emulated is not null)
            {
                eager();
                return;
            }
            var g = t_recording ?? throw new InvalidOperationException("CapturedGraph.Gap outside a recording");
            var segment = g.driver.EndCapture(g.stream, out var error);
            if (segment == IntPtr.Zero) throw new InvalidOperationException($"the capture was invalidated before a gap ({error})");
            g.graphs.Add(segment);
            g.gaps.Add(eager);
            g.driver.BeginCapture(g.stream);
        }

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
            try
            {
                OnOwnStream(body);
            }
            finally
            {
                driver.SynchronizeStream(stream);
            }
        }

        // libtorch's kernels and ours go to the graph's stream while body runs, back to where they went after.
        private void OnOwnStream(Action body)
        {
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
            if (t_recording is not null) throw new InvalidOperationException("another graph is being recorded on this thread");
            torch.cuda.synchronize();
            try
            {
                driver.BeginCapture(stream);
            }
            catch (CudaKernelUnavailableException e)
            {
                error = e.Message;
                return false;
            }
            Exception? thrown = null;
            t_recording = this;
            try
            {
                OnOwnStream(body);
            }
            catch (Exception e)
            {
                thrown = e;
            }
            finally
            {
                t_recording = null;
            }
            // A failed Gap leaves the stream not capturing: ending it then only reports that.
            var last = driver.EndCapture(stream, out var endError);
            if (last != IntPtr.Zero) graphs.Add(last);
            error = thrown is not null ? $"{thrown.GetType().Name}: {thrown.Message}"
                : last == IntPtr.Zero ? $"the capture was invalidated ({endError})" : null;
            if (error is null)
            {
                foreach (var g in graphs)
                {
                    var e = driver.TryInstantiateGraph(g, out error);
                    if (e == IntPtr.Zero) break;
                    execs.Add(e);
                    Nodes += driver.GraphNodeCount(g);
                }
            }
            if (error is not null)
            {
                Release();
                return false;
            }
            return true;
        }

        private void Release()
        {
            for (int i = 0; i < graphs.Count; i++) driver.DestroyGraph(graphs[i], i < execs.Count ? execs[i] : IntPtr.Zero);
            graphs.Clear();
            execs.Clear();
            gaps.Clear();
            Nodes = 0;
        }

        /// <summary>Replays the recording on the null stream (asynchronous, ordered with TorchSharp's work): each
        /// segment, and between two segments its gap, run eagerly.</summary>
        public void Replay()
        {
            ThrowIfDisposed();
            if (!IsReady) throw new InvalidOperationException("nothing was recorded");
            for (int i = 0; i < execs.Count; i++)
            {
                driver.LaunchGraph(Device, execs[i]);
                if (i < gaps.Count) gaps[i]();
            }
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
            Release();
            driver.DestroyStream(stream);
            stream = IntPtr.Zero;
            GC.SuppressFinalize(this);
        }
    }
}
