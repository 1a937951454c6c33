using System;
using Mix.Runtime.Cuda;

namespace Mix.Runtime.Tests;

/// <summary>
/// A stand-in for <see cref="CapturedGraph"/> on the CPU: recording keeps the body, a replay runs it again with
/// <see cref="CapturedGraph.IsRecording"/> true (gaps run where they are met), so the code around a recorded graph is
/// tested where no GPU is.
/// </summary>
internal sealed class EmulatedRecorder : IStepRecorder
{
    private Action? body;
    public int Device => -1;
    public bool IsReady => body is not null;
    public int Nodes => 0;
    public int Segments => 1;
    public void RunEager(Action b) => b();

    public bool TryCapture(Action b, out string? error)
    {
        error = null;
        body = b;
        return true;
    }

    public void Replay() => CapturedGraph.RunEmulatedReplay(this, body!);
    public void Dispose() { }
}
