using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MixerDropPathTests
{
    [Fact]
    public void DropsWholeSamplesAndRescalesInTraining()
    {
        using var dp = new MixerDropPath(0.5);
        using var x = torch.ones(64, 3, 4);
        dp.train();
        using var y = dp.forward(x);
        using var perSample = y.reshape(64, -1);
        for (int i = 0; i < 64; i++)
        {
            using var row = perSample[i];
            float v = row[0].item<float>();
            Assert.True(v == 0f || v == 2f);
            Assert.True(row.eq(v).all().item<bool>());
        }
        dp.eval();
        using var z = dp.forward(x);
        Assert.True(z.eq(x).all().item<bool>());
        Assert.Empty(dp.state_dict());
    }
}
