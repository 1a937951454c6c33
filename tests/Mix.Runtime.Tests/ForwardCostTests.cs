using Mix.Runtime.Cuda;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <see cref="ForwardCost"/>, the fusion bench's dispatch counter, on the CPU: TorchSharp ops are counted as the tensors
/// they create (inside and outside dispose scopes), nothing else; launches only through the kernel runtime (none here).
/// Where regions run, FusionEmulationTests checks the launch count against the emulated regions.
/// </summary>
public class ForwardCostTests
{
    [Fact]
    public void Counts_one_torch_op_per_tensor_created_and_no_launch_on_the_cpu()
    {
        var x = torch.randn(3, 4);
        var y = torch.randn(3, 4);
        var cost = ForwardCost.Measure(() =>
        {
            using var scope = torch.NewDisposeScope();
            var z = (x + y).relu();
            _ = z * 2;
        });
        Assert.Equal(3, cost.TorchOps);
        Assert.Equal(0, cost.Launches);

        var outside = ForwardCost.Measure(() => { using var t = x.exp(); });
        Assert.Equal(1, outside.TorchOps);
    }

    [Fact]
    public void A_reading_subtracts_field_by_field()
    {
        var d = new ForwardCost(7, 40) - new ForwardCost(2, 15);
        Assert.Equal(new ForwardCost(5, 25), d);
    }

    [Fact]
    public void A_module_forward_counts_its_ops()
    {
        using var lin = nn.Linear(4, 5);
        var x = torch.randn(2, 4);
        var one = ForwardCost.Measure(() => { using var scope = torch.NewDisposeScope(); lin.call(x); });
        var two = ForwardCost.Measure(() => { using var scope = torch.NewDisposeScope(); lin.call(x).relu(); });
        Assert.True(one.TorchOps >= 1, $"linear counted {one.TorchOps} ops");
        Assert.Equal(one.TorchOps + 1, two.TorchOps);
    }
}
