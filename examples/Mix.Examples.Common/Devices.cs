using Mix.Runtime.Cuda;
using Mix.Training.Summary;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples;

/// <summary>Picks where the examples run.</summary>
public static class Devices
{
    /// <summary>CUDA when TorchSharp has a CUDA backend and a GPU, unless <paramref name="forceCpu"/>; else the CPU.</summary>
    /// <exception cref="LibTorchNotFoundException">Built with the libtorch backend and no PyTorch is installed.</exception>
    public static Device Pick(bool forceCpu)
    {
        TorchBackend.EnsureLibTorchLoaded();
        return !forceCpu && torch.cuda.is_available() ? torch.CUDA : torch.CPU;
    }

    /// <summary>Runs an example's body; a missing libtorch (libtorch backend, no PyTorch) is one error line and exit
    /// code 3 instead of TorchSharp's type-initializer stack trace.</summary>
    public static int Run(IAnsiConsole? console, System.Func<int> body)
    {
        try { return body(); }
        catch (LibTorchNotFoundException e)
        {
            (console ?? ConsoleOutput.Default).MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 3;
        }
    }

    /// <summary>"CPU (2 threads)" or "CUDA".</summary>
    public static string Describe(Device device) =>
        device.type == DeviceType.CUDA ? "CUDA" : $"CPU ({torch.get_num_threads()} threads)";

    /// <summary>Sets TorchSharp's CPU threads (0 leaves its default: one per core). The examples' models are small,
    /// so one thread is as fast as two and does not collapse when other processes share the cores.</summary>
    /// <exception cref="LibTorchNotFoundException">Built with the libtorch backend and no PyTorch is installed.</exception>
    public static void SetThreads(int threads)
    {
        TorchBackend.EnsureLibTorchLoaded();
        if (threads > 0) torch.set_num_threads(threads);
    }

    /// <summary>Seeds TorchSharp's generators (CPU and CUDA) for a deterministic run.</summary>
    public static void Seed(int seed)
    {
        torch.manual_seed(seed);
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }
}
