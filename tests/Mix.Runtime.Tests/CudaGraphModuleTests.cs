using System.Linq;
using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <see cref="CudaGraphModule"/> where no graph applies (the CPU; the GPU side is <see cref="CudaGraphModuleGpuTests"/>):
/// the forward is the model's own, the wrapper adds no parameters, nothing is recorded.
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
}
