using System;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

// The scan primitives' fused forward against their chunked TorchSharp reference on the same device (--only scans).
internal static partial class Program
{
    private static void ScanPrimitives()
    {
        foreach (var dt in new[] { ScalarType.BFloat16, ScalarType.Float32 })
        {
            Guard(() => Ssd(dt, 1, 2048, 48, 64, 1, 128));
            Guard(() => Gla(dt, 1, 2048, 4, 256, 512));
        }
        Guard(() => Ssd(ScalarType.BFloat16, 8, 2048, 48, 64, 1, 128));
        Guard(() => Gla(ScalarType.BFloat16, 8, 1024, 4, 256, 512));
        Guard(() => Conv(ScalarType.BFloat16, 8, 3072, 2048, 4));
    }

    private static void Ssd(ScalarType dt, long b, long L, long h, long p, long g, long n)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var z = torch.randn(b, L, h, p, device: torch.CUDA).to_type(dt);
        var dtv = torch.randn(b, L, h, device: torch.CUDA).to_type(dt);
        var A = -torch.rand(h, device: torch.CUDA) * 4 - 0.5;
        var Bm = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var Cm = torch.randn(b, L, g, n, device: torch.CUDA).to_type(dt);
        var D = torch.randn(h, device: torch.CUDA);
        var bias = torch.randn(h, device: torch.CUDA) * 0.1 - 2;
        Tensor Fused() => Must(CudaScanKernels.TrySsd(x, dtv, A, Bm, Cm, D, z, bias, true, null)?.y, "ssd_scan");
        Tensor Reference() => SsdScan.ChunkedScan(x, dtv, A, Bm, Cm, 64, D, z, bias, true, null).y;
        double elem = Tensors.ElementSize(dt);
        double bytes = elem * (3.0 * b * L * h * p + 2.0 * b * L * g * n + b * L * h);
        Record("ssd_scan fwd (vs chunked T=64)", $"b{b} L{L} h{h} p{p} g{g} n{n}", dt, bytes, Fused, Reference, "chunked reference", Err(Fused(), Reference()));
    }

    private static void Gla(ScalarType dt, long b, long T, long h, long K, long V)
    {
        using var scope = torch.NewDisposeScope();
        var q = torch.randn(b, T, h, K, device: torch.CUDA).to_type(dt);
        var k = torch.randn(b, T, h, K, device: torch.CUDA).to_type(dt);
        var v = torch.randn(b, T, h, V, device: torch.CUDA).to_type(dt);
        var g = (torch.nn.functional.logsigmoid(torch.randn(b, T, h, K, device: torch.CUDA)) / 16).to_type(dt);
        double scale = 1.0 / Math.Sqrt(K);
        Tensor Fused() => Must(CudaScanKernels.TryGla(q, k, v, g, scale, null)?.o, "gla_scan");
        Tensor Reference() => GlaScan.ChunkedScan(q, k, v, g, scale, 64, null).o;
        double elem = Tensors.ElementSize(dt);
        double bytes = elem * (3.0 * b * T * h * K + 2.0 * b * T * h * V);
        Record("gla_scan fwd (vs chunked T=64)", $"b{b} T{T} h{h} K{K} V{V}", dt, bytes, Fused, Reference, "chunked reference", Err(Fused(), Reference()));
    }

    private static void Conv(ScalarType dt, long b, long d, long L, long W)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(b, d, L, device: torch.CUDA).to_type(dt);
        var w = torch.randn(d, W, device: torch.CUDA);
        var bias = torch.randn(d, device: torch.CUDA);
        Tensor Fused() => Must(CudaScanKernels.TryCausalConv(x, w, bias, true, null)?.y, "causal_conv1d");
        Tensor Reference() => CausalConv1d.Reference(x, w.to_type(dt), bias.to_type(dt), "silu").y;
        double bytes = Tensors.ElementSize(dt) * 2.0 * b * d * L;
        Record("causal_conv1d fwd + silu", $"b{b} d{d} L{L} W{W}", dt, bytes, Fused, Reference, "conv1d reference", Err(Fused(), Reference()));
    }
}
