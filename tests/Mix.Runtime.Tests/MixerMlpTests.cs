using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MixerMlpTests
{
    [Fact]
    public void ComputesFc2GeluFc1()
    {
        using var mlp = new MixerMlp(3, 5, 2);
        RandomizeParameters(mlp, 1);
        mlp.to(ScalarType.Float64);
        var x = RandomArray(new Random(2), 4 * 3);
        using var xt = FromArray(x, new long[] { 4, 3 });
        using var y = mlp.forward(xt);
        var p = ParameterArrays(mlp);
        var h = Loops.Map(Loops.Linear(x, 4, 3, p["fc1.weight"], p["fc1.bias"], 5), Gelu);
        var expected = Loops.Linear(h, 4, 5, p["fc2.weight"], p["fc2.bias"], 2);
        AssertClose(expected, ToArray(y), 1e-12, 1e-12);
        Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight" },
            mlp.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
    }
}
