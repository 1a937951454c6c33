using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples;

/// <summary>Picks where the examples run.</summary>
public static class Devices
{
    /// <summary>CUDA when TorchSharp has a CUDA backend and a GPU, unless <paramref name="forceCpu"/>; else the CPU.</summary>
    public static Device Pick(bool forceCpu) => !forceCpu && torch.cuda.is_available() ? torch.CUDA : torch.CPU;

    /// <summary>"CPU (2 threads)" or "CUDA".</summary>
    public static string Describe(Device device) =>
        device.type == DeviceType.CUDA ? "CUDA" : $"CPU ({torch.get_num_threads()} threads)";

    /// <summary>Sets TorchSharp's CPU threads (0 leaves its default: one per core). The examples' models are small,
    /// so one thread is as fast as two and does not collapse when other processes share the cores.</summary>
    public static void SetThreads(int threads)
    {
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>Seeds TorchSharp's generators (CPU and CUDA) for a deterministic run.</summary>
    public static void Seed(int seed)
    {
        torch.manual_seed(seed);
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }
}
