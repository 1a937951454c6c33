using System;
using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// Zoo models' inference forwards recorded as CUDA graphs (<see cref="CudaGraphModule"/>): every replay equals the
/// eager forward (fp32 ≤ 1e-5 relative, bf16 ≤ 1e-2: the same kernels in the same order, cuDNN's choice aside), with
/// a new input each call (the recorded input is refreshed); each shape records its own graph; with gradients on the
/// forward is eager; an uncloned output is the recorded buffer, overwritten by the next replay.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(FusedSwitchCollection))]
public class CudaGraphModuleGpuTests
{
    [Theory]
    [InlineData("poolformer_s12", "f32")]
    [InlineData("convformer_s18", "f32")]
    [InlineData("convformer_s18", "bf16")]
    [InlineData("caformer_s18", "f32")]
    [InlineData("mamba2_lm", "f32")]
    public void Replays_equal_the_eager_forward(string name, string dtype)
    {
        Gpu.Require();
        var io = Gpu.Dtype(dtype);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7);
        var (model, x) = ZooGpuCases.Build(name);
        model.to(Gpu.Device);
        if (io != ScalarType.Float32) model.to(io);
        model.eval();
        using var graphed = new CudaGraphModule(model);
        bool ints = !torch.is_floating_point(x);
        Tensor Input(int seed)
        {
            torch.manual_seed(100 + seed);
            var t = ints ? torch.randint_like(x, 0, 97) : torch.randn_like(x);
            t = t.to(Gpu.Device);
            return ints ? t : t.to_type(io);
        }
        for (int i = 0; i < 6; i++)
        {
            var xi = Input(i);
            var g = graphed.call(xi);
            var e = model.call(xi);
            Assert.InRange(Gpu.RelErr(g, e), 0, Gpu.Tol(io, 1e-5, 1e-2, 1e-2));
        }
        var report = Assert.Single(graphed.Report());
        Assert.True(report.Failure is null, report.Failure);
        Assert.Equal(6 - graphed.WarmupRuns, report.Replays);
        Console.WriteLine($"{name} {dtype}: {report.Nodes} graph nodes a forward");

        // another batch size records its own graph
        var x2 = torch.cat(new[] { Input(10), Input(11) }, 0);
        for (int i = 0; i < 4; i++) Assert.InRange(Gpu.RelErr(graphed.call(x2), model.call(x2)), 0, Gpu.Tol(io, 1e-5, 1e-2, 1e-2));
        Assert.Equal(2, graphed.Report().Count);
    }

    [Fact]
    public void Gradients_run_eagerly_and_an_uncloned_output_is_the_recorded_buffer()
    {
        Gpu.Require();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(8);
        var (model, x) = ZooGpuCases.Build("poolformer_s12");
        model.to(Gpu.Device);
        model.eval();
        x = x.to(Gpu.Device);
        using var graphed = new CudaGraphModule(model) { CloneOutputs = false };
        var withGrad = graphed.call(x.requires_grad_(true));
        Assert.True(withGrad.requires_grad);
        Assert.Empty(graphed.Report());
        using var _ = torch.no_grad();
        var a = x.detach().clone();
        var b = torch.randn_like(a);
        for (int i = 0; i < graphed.WarmupRuns + 1; i++) graphed.call(a);
        var ya = graphed.call(a);
        var expectedA = model.call(a);
        Assert.InRange(Gpu.RelErr(ya, expectedA), 0, 1e-5);
        graphed.call(b);
        // the same buffer now holds b's output
        Assert.InRange(Gpu.RelErr(ya, model.call(b)), 0, 1e-5);
    }
}
