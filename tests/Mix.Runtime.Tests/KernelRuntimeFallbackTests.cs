using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>Changes process environment variables, so it runs alone.</summary>
[CollectionDefinition(nameof(KernelEnvironmentCollection), DisableParallelization = true)]
public sealed class KernelEnvironmentCollection { }

[Collection(nameof(KernelEnvironmentCollection))]
public class KernelRuntimeFallbackTests
{
    [Fact]
    public void MissingNvrtcOverrideIsReportedNotThrown()
    {
        var old = Environment.GetEnvironmentVariable("MIX_NVRTC_PATH");
        try
        {
            var bogus = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "libnvrtc.so.13");
            Environment.SetEnvironmentVariable("MIX_NVRTC_PATH", bogus);
            var nvrtc = Nvrtc.TryLoad(out var error);
            Assert.Null(nvrtc);
            Assert.Contains("MIX_NVRTC_PATH", error);
            Assert.Contains(bogus, error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MIX_NVRTC_PATH", old);
        }
    }

    [Fact]
    public void NvrtcCandidatesPutOverrideFolderNamesFirst()
    {
        var dir = Path.GetTempPath();
        var c = NvrtcLocator.OverrideCandidates(dir);
        Assert.Contains(Path.Combine(dir, NvrtcLocator.FileNames[0]), c);
        Assert.Equal(new[] { "/x/libnvrtc.so.12" }, NvrtcLocator.OverrideCandidates("/x/libnvrtc.so.12"));
    }

    [Fact]
    public void UnavailableRuntimeWarnsOnceAndCallersFallBack()
    {
        var runtime = new KernelRuntime(new KernelDiskCache(Path.Combine(Path.GetTempPath(), "mix-kr-" + Guid.NewGuid().ToString("N"))));
        Assert.SkipWhen(runtime.IsAvailable, "CUDA driver and NVRTC are present here; the fallback is covered on machines without them");
        Assert.NotNull(runtime.UnavailableReason);
        int before = KernelLog.Count;
        var spec = new CudaKernelSpec("k", "extern \"C\" __global__ void k() {}");
        Assert.Null(runtime.TryGetFunction(spec, "k", 0));
        Assert.Null(runtime.TryGetFunction(spec, "k", 0));
        Assert.Throws<CudaKernelUnavailableException>(() => runtime.GetFunction(spec, "k", 0));
        Assert.True(KernelLog.Count - before <= 1);
        Assert.Equal(0, runtime.WarmUp(new[] { spec }, 0));

        // The public fused API returns null on CPU tensors / without kernels, so callers take the reference path.
        using var x = torch.randn(2, 3, 5, 5);
        using var w = torch.ones(3);
        Assert.Null(FusedOps.PoolingSubBlock(x, w, w, 1e-5, w));
        Assert.Null(FusedOps.BiasActivation(x, null, FusedActivation.Gelu));
        Assert.Null(FusedOps.LayerScaleResidual(x, x, torch.ones(5)));
        Assert.False(new CudaSelectiveScanKernel().Supports(x, false));
    }

    [Fact]
    public void BackendNameIsCompiledIn()
    {
        // The build records MixTorchBackend in the test executable (the entry assembly), and the runtime reads it there.
        var recorded = System.Reflection.CustomAttributeExtensions.GetCustomAttributes<System.Reflection.AssemblyMetadataAttribute>(
            typeof(KernelRuntimeFallbackTests).Assembly).Single(a => a.Key == "MixTorchBackend").Value;
        Assert.Equal(recorded, TorchBackend.Name);
        Assert.Contains(TorchBackend.Name, new[] { "cpu", "cuda", "libtorch" });
        if (!TorchBackend.UsesInstalledLibTorch)
        {
            TorchBackend.EnsureLibTorchLoaded(); // no-op for the cpu backend
            Assert.Null(TorchBackend.LoadedFrom);
        }
    }

    [Fact]
    public void MissingLibTorchDirIsReportedClearly()
    {
        var old = Environment.GetEnvironmentVariable("MIX_LIBTORCH_DIR");
        try
        {
            Environment.SetEnvironmentVariable("MIX_LIBTORCH_DIR", "/nonexistent/torch/lib");
            Assert.Null(TorchBackend.LocateLibTorch(out var tried));
            Assert.Contains("MIX_LIBTORCH_DIR=/nonexistent/torch/lib", tried);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MIX_LIBTORCH_DIR", old);
        }
    }
}
