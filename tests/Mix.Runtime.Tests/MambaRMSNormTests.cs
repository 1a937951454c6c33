using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MambaRMSNormTests
{
    [Fact]
    public void NormalisesLikeHandComputation()
    {
        using var norm = new MambaRMSNorm(2, eps: 1e-5);
        using (torch.no_grad()) norm.Weight.copy_(torch.tensor(new float[] { 2f, -1f }));
        using var x = torch.tensor(new float[] { 3, 4, 0, 1 }).reshape(2, 2);
        using var y = norm.forward(x);
        double r0 = 1 / Math.Sqrt((9 + 16) / 2.0 + 1e-5), r1 = 1 / Math.Sqrt(0.5 + 1e-5);
        AssertClose(new[] { 2 * 3 * r0, -4 * r0, 0, -1 * r1 }, ToArray(y), 1e-5);
    }

    [Fact]
    public void KeysDefaultsAndShape()
    {
        using var norm = new MambaRMSNorm(6);
        Assert.Equal(new[] { "weight" }, norm.state_dict().Keys.ToArray());
        Assert.Equal(1e-6, norm.Eps);
        using var x = torch.randn(2, 3, 6);
        using var y = norm.forward(x);
        Assert.Equal(x.shape, y.shape);
        // float64 input: computed in float32, result cast back (weight is float32 → promoted to float64)
        using var xd = torch.randn(2, 6, dtype: ScalarType.Float64);
        using var yd = norm.forward(xd);
        Assert.Equal(ScalarType.Float64, yd.dtype);
    }

    [Fact]
    public void Backward()
    {
        using var norm = new MambaRMSNorm(4);
        using var x = torch.randn(3, 4).requires_grad_(true);
        using var loss = norm.forward(x).sum();
        loss.backward();
        Assert.NotNull(x.grad);
        Assert.NotNull(norm.Weight.grad);
    }
}
