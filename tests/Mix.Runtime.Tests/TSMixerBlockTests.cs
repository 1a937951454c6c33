using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class TSMixerBlockTests
{
    private static double[] Expected(double[] x, int batch, int L, int C, int ff, System.Collections.Generic.Dictionary<string, double[]> p,
        Func<double[], string, double[]> norm)
    {
        var t = Loops.Transpose(norm(x, "temporal_norm"), batch, L, C);                       // [b, C, L]
        t = Loops.Map(Loops.Linear(t, batch * C, L, p["temporal_linear.weight"], p["temporal_linear.bias"], L), v => Math.Max(0, v));
        var res = Loops.Add(x, Loops.Transpose(t, batch, C, L));
        var f = Loops.Map(Loops.Linear(norm(res, "feature_norm"), batch * L, C, p["feature_linear1.weight"], p["feature_linear1.bias"], ff), v => Math.Max(0, v));
        f = Loops.Linear(f, batch * L, ff, p["feature_linear2.weight"], p["feature_linear2.bias"], C);
        return Loops.Add(res, f);
    }

    [Fact]
    public void LayerNormVariantMatchesLoops()
    {
        int batch = 2, L = 5, C = 3, ff = 4;
        using var block = new TSMixerBlock(L, C, ff, normType: "L", dropout: 0.3);
        RandomizeParameters(block, 8);
        block.to(ScalarType.Float64);
        block.eval();
        var x = RandomArray(new Random(9), batch * L * C);
        using var xt = FromArray(x, new long[] { batch, L, C });
        using var y = block.forward(xt);
        var p = ParameterArrays(block);
        // layer norm over the whole [L, C] matrix of each sample with [L, C] affine parameters
        var expected = Expected(x, batch, L, C, ff, p,
            (v, name) => Loops.LayerNorm(v, batch, L * C, p[name + ".weight"], p[name + ".bias"], 1e-3));
        AssertClose(expected, ToArray(y), 1e-12, 1e-12);
        Assert.Equal(new long[] { L, C }, block.state_dict()["temporal_norm.weight"].shape);
    }

    [Fact]
    public void BatchNormVariantNormalisesEachTimeFeaturePairOverTheBatch()
    {
        int batch = 3, L = 4, C = 2, ff = 3;
        using var block = new TSMixerBlock(L, C, ff, normType: "B", dropout: 0.0);
        RandomizeParameters(block, 10);
        block.to(ScalarType.Float64);
        block.train();
        var x = RandomArray(new Random(11), batch * L * C);
        using var xt = FromArray(x, new long[] { batch, L, C });
        using var y = block.forward(xt);
        var p = ParameterArrays(block);
        double[] BatchNorm(double[] v, string name)
        {
            var w = p[name + ".weight"]; var b = p[name + ".bias"];
            var o = new double[v.Length];
            int per = L * C;
            for (int j = 0; j < per; j++)
            {
                double mean = 0, var = 0;
                for (int s = 0; s < batch; s++) mean += v[s * per + j];
                mean /= batch;
                for (int s = 0; s < batch; s++) var += Math.Pow(v[s * per + j] - mean, 2);
                var /= batch;   // biased variance in training
                for (int s = 0; s < batch; s++) o[s * per + j] = (v[s * per + j] - mean) / Math.Sqrt(var + 1e-3) * w[j] + b[j];
            }
            return o;
        }
        AssertClose(Expected(x, batch, L, C, ff, p, BatchNorm), ToArray(y), 1e-10, 1e-10);
        var keys = block.state_dict().Keys.ToHashSet();
        Assert.Contains("temporal_norm.running_mean", keys);
        Assert.Contains("feature_linear2.weight", keys);
    }

    [Fact]
    public void RejectsBadInputAndNormType()
    {
        using var block = new TSMixerBlock(4, 2, 3);
        using var x = torch.zeros(1, 3, 2);
        Assert.Throws<ArgumentException>(() => block.forward(x));
        Assert.Throws<ArgumentException>(() => new TSMixerBlock(4, 2, 3, normType: "X"));
    }
}
