using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <see cref="CudaGraphModule"/> on the CPU (the GPU side is <see cref="CudaGraphModuleGpuTests"/>): where no graph
/// applies the forward is the model's own, the wrapper adds no parameters and records nothing; with an emulated
/// recorder (<see cref="EmulatedRecorder"/>) the warm-ups, the recording per shape, the input copied in before each
/// replay and the output copied out are checked against the model's own forwards.
/// </summary>
public class CudaGraphModuleTests
{
    [Fact]
    public void On_the_CPU_the_forward_is_the_models_own()
    {
        using var _ = torch.no_grad();
        torch.manual_seed(3);
        var (model, x) = ZooGpuCases.Build("poolformer_s12");
        model.eval();
        using var graphed = new CudaGraphModule(model);
        var expected = model.call(x);
        for (int i = 0; i < 4; i++) Assert.True(graphed.call(x).equal(expected).all().item<bool>());
        Assert.Empty(graphed.parameters());
        Assert.Same(model, graphed.Model);
        Assert.Empty(graphed.Report());
        Assert.Equal(0, graphed.Replays);
    }

    [Fact]
    public void With_an_emulated_recorder_replays_follow_their_inputs_and_each_shape_records_once()
    {
        StepRecorders.Override = _ => new EmulatedRecorder();
        try
        {
            using var _ = torch.no_grad();
            torch.manual_seed(5);
            var (model, x) = ZooGpuCases.Build("poolformer_s12");
            model.eval();
            using var graphed = new CudaGraphModule(model);
            for (int i = 0; i < 6; i++)
            {
                var xi = torch.randn_like(x);
                Assert.True(graphed.call(xi).allclose(model.call(xi), rtol: 0, atol: 0), $"call {i}");
            }
            var report = Assert.Single(graphed.Report());
            Assert.Null(report.Failure);
            Assert.Equal(6 - graphed.WarmupRuns, report.Replays);
            var x2 = torch.cat(new[] { torch.randn_like(x), torch.randn_like(x) }, 0);
            for (int i = 0; i < 3; i++) Assert.True(graphed.call(x2).allclose(model.call(x2), rtol: 0, atol: 0));
            Assert.Equal(2, graphed.Report().Count);

            // a replay's output is a copy unless asked otherwise: then the next replay of the shape overwrites it
            var a = torch.randn_like(x);
            var b = torch.randn_like(x);
            var kept = graphed.call(a);
            graphed.call(b);
            Assert.True(kept.allclose(model.call(a), rtol: 0, atol: 0));
        }
        finally
        {
            StepRecorders.Override = null;
        }
    }
}
