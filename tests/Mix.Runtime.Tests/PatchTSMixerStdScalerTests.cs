using System;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PatchTSMixerStdScalerTests
{
    [Fact]
    public void StandardisesObservedValuesPerChannel()
    {
        // one series, one channel: values 1, 2, 3, 100 with the last one missing
        using var data = torch.tensor(new double[] { 1, 2, 3, 100 }).reshape(1, 4, 1);
        using var mask = torch.tensor(new double[] { 1, 1, 1, 0 }).reshape(1, 4, 1);
        using var scaler = new PatchTSMixerStdScaler();
        var (scaled, loc, scale) = scaler.forward(data, mask);
        double mean = 2, variance = (1 + 0 + 1 + 0) / 3.0, s = Math.Sqrt(variance + 1e-5);
        Assert.Equal(new long[] { 1, 1, 1 }, loc.shape);
        Assert.Equal(mean, loc.item<double>(), 12);
        Assert.Equal(s, scale.item<double>(), 12);
        AssertClose(new[] { (1 - mean) / s, 0, (3 - mean) / s, (100 - mean) / s }, ToArray(scaled), 1e-12);
        scaled.Dispose(); loc.Dispose(); scale.Dispose();
    }
}
