using System;
using TorchSharp;
using static TorchSharp.torch;

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

    /// <summary>Makes the recorders of <see cref="CudaGraphModule"/> and the decoding graphs.</summary>
    internal static class StepRecorders
    {
        [ThreadStatic] private static Func<Device, IStepRecorder>? t_override;

        /// <summary>Tests: the recorder to use on this thread (an emulation on the CPU); null: CUDA graphs.</summary>
        internal static Func<Device, IStepRecorder>? Override
        {
            get => t_override;
            set => t_override = value;
        }

        /// <summary>Whether a step on <paramref name="device"/> can be recorded at all (CUDA, or an override).</summary>
        internal static bool Applies(Device device) => device.type == DeviceType.CUDA || t_override is not null;

        /// <summary>A recorder for <paramref name="device"/>, or null with the reason.</summary>
        internal static IStepRecorder? TryCreate(Device device, out string? error)
        {
            error = null;
            if (t_override is { } make) return make(device);
            if (device.type != DeviceType.CUDA) { error = "the model is not on CUDA"; return null; }
            return CapturedGraph.TryCreate(device.index, out error);
        }
    }
}
