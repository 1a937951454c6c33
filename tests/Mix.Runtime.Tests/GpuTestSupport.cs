using System;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// Gate for GPU tests: they skip (never fail) where CUDA is absent, as on the build machines; where CUDA is present
/// the fused kernels must be available (a missing NVRTC there is a failure, with the reason).
/// </summary>
internal static class Gpu
{
    private static readonly Lazy<string?> Unavailable = new(() =>
        TorchBackend.TryInitializeCuda(out var reason) ? null : reason ?? "CUDA unavailable");

    public static void Require()
    {
        KernelLog.Warning ??= m => Console.Error.WriteLine(m);
        Assert.SkipWhen(Unavailable.Value is not null, $"no CUDA device: {Unavailable.Value}");
        Assert.True(KernelRuntime.Shared.IsAvailable, $"CUDA is present but kernels are not: {KernelRuntime.Shared.UnavailableReason}");
    }

    public static Device Device => torch.CUDA;

    /// <summary>‖a − b‖ / ‖b‖ in float64, and whether <paramref name="a"/> is finite.</summary>
    public static double RelErr(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        var x = a.detach().to(ScalarType.Float64, torch.CPU);
        var y = b.detach().to(ScalarType.Float64, torch.CPU);
        Assert.Equal(y.shape, x.shape);
        Assert.True(x.isfinite().all().item<bool>(), "output has non-finite values");
        double den = y.norm().item<double>();
        double num = (x - y).norm().item<double>();
        return den == 0 ? num : num / den;
    }

    public static double Tol(ScalarType t, double fp32, double fp16, double bf16) =>
        t switch { ScalarType.Float16 => fp16, ScalarType.BFloat16 => bf16, _ => fp32 };

    public static ScalarType Dtype(string name) => name switch
    {
        "f32" => ScalarType.Float32,
        "f16" => ScalarType.Float16,
        "bf16" => ScalarType.BFloat16,
        _ => throw new ArgumentException(name),
    };
}
