using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// The GPU zoo numerics test (<see cref="FusedRegionGpuTests"/>) covers exactly the registry's models, and each of its
/// cases builds and runs here on the CPU, so that a bad configuration is found before device time is spent on it.
/// </summary>
public class ZooGpuCaseTests
{
    [Fact]
    public void The_gpu_case_list_is_the_registry_list_in_both_dtypes()
    {
        var cases = FusedRegionGpuTests.ZooCases().Select(c => ((string)c[0], (string)c[1])).ToList();
        foreach (var dt in new[] { "f32", "bf16" })
            Assert.Equal(Models.List(), cases.Where(c => c.Item2 == dt).Select(c => c.Item1).ToList());
        Assert.Equal(2 * Models.List().Count, cases.Count);
    }

    [Fact]
    public void Every_registered_model_has_a_recipe_and_every_configured_name_is_registered()
    {
        var missing = Models.List().Where(n => ZooGpuCases.Recipe(n) is null).ToList();
        Assert.True(missing.Count == 0, "no GPU case for " + string.Join(", ", missing) + ": add them to ZooGpuCases.Small");
        var stale = ZooGpuCases.Configured.Where(n => !Models.List().Contains(n)).ToList();
        Assert.True(stale.Count == 0, "ZooGpuCases.Small names unregistered models: " + string.Join(", ", stale));
    }

    public static TheoryData<string> Names() => new(Models.List());

    [Theory]
    [MemberData(nameof(Names))]
    public void The_case_builds_and_runs_on_the_cpu(string name)
    {
        torch.manual_seed(7);
        var (model, input) = ZooGpuCases.Build(name);
        using var _model = model;
        model.eval();
        using var _ = torch.no_grad();
        var y = model.call(input);
        Assert.Equal(1, y.shape[0]);
        Assert.True(y.isfinite().all().item<bool>(), $"{name}: non-finite output");
    }
}
