using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MambaBlockTests
{
    [Fact]
    public void IsResidualPlusMixerOfNorm()
    {
        using var block = new MambaBlock(hiddenSize: 8, stateSize: 4);
        RandomizeParameters(block, seed: 2, lo: -0.3, hi: 0.3);
        using var x = torch.randn(2, 5, 8);
        using var y = block.forward(x);
        using var expected = x + block.Mixer.forward(block.Norm.forward(x));
        AssertClose(expected, y, 1e-6);
        Assert.Equal(ScalarType.Float32, y.dtype);
    }

    [Fact]
    public void KeysMatchHuggingFace()
    {
        using var block = new MambaBlock(hiddenSize: 8);
        var keys = block.state_dict().Keys.OrderBy(k => k, System.StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "mixer.A_log", "mixer.D", "mixer.conv1d.bias", "mixer.conv1d.weight", "mixer.dt_proj.bias",
            "mixer.dt_proj.weight", "mixer.in_proj.weight", "mixer.out_proj.weight", "mixer.x_proj.weight",
            "norm.weight" }, keys);
        Assert.True(block.ResidualInFp32);
    }
}
