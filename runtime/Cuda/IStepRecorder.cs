using System;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// What a recorded step (a decoding step, a graphed forward) needs from a recorder: run eagerly (the warm-up), record, replay. The
    /// implementation is <see cref="CapturedGraph"/>; tests substitute one that replays by running the recorded body
    /// again with <see cref="CapturedGraph.IsRecording"/> true, which checks everything around the graph (buffers,
    /// copies back, host bookkeeping, gaps) on the CPU.
    /// </summary>
    internal interface IStepRecorder : IDisposable
    {
        int Device { get; }
        bool IsReady { get; }
        int Nodes { get; }
        int Segments { get; }
        void RunEager(Action body);
        bool TryCapture(Action body, out string? error);
        void Replay();
    }
}
