using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MambaMixerTests
{
    /// <summary>HF MambaMixer.slow_forward (no cache) written with plain loops over flat arrays.</summary>
    internal static double[] LoopMixer(Dictionary<string, double[]> p, double[] x, int batch, int L, int H, int Di,
        int N, int R, int K, bool useBias, bool useConvBias)
    {
        var wIn = p["in_proj.weight"]; var wX = p["x_proj.weight"]; var wDt = p["dt_proj.weight"];
        var bDt = p["dt_proj.bias"]; var aLog = p["A_log"]; var dSkip = p["D"]; var wOut = p["out_proj.weight"];
        var wConv = p["conv1d.weight"];
        var output = new double[batch * L * H];
        for (int b = 0; b < batch; b++)
        {
            var xs = new double[L, Di]; var gate = new double[L, Di];
            for (int t = 0; t < L; t++)
            for (int j = 0; j < 2 * Di; j++)
            {
                double s = useBias ? p["in_proj.bias"][j] : 0;
                for (int h = 0; h < H; h++) s += wIn[j * H + h] * x[(b * L + t) * H + h];
                if (j < Di) xs[t, j] = s; else gate[t, j - Di] = s;
            }
            var c = new double[L, Di];
            for (int t = 0; t < L; t++)
            for (int d = 0; d < Di; d++)
            {
                double s = useConvBias ? p["conv1d.bias"][d] : 0;
                for (int k = 0; k < K; k++)
                {
                    int src = t + k - (K - 1);
                    if (src >= 0) s += wConv[d * K + k] * xs[src, d];
                }
                c[t, d] = Silu(s);
            }
            var state = new double[Di, N];
            for (int t = 0; t < L; t++)
            {
                var sp = new double[R + 2 * N];
                for (int m = 0; m < R + 2 * N; m++)
                    for (int d = 0; d < Di; d++) sp[m] += wX[m * Di + d] * c[t, d];
                var y = new double[Di];
                for (int d = 0; d < Di; d++)
                {
                    double dt = bDt[d];
                    for (int r = 0; r < R; r++) dt += wDt[d * R + r] * sp[r];
                    dt = Softplus(dt);
                    double acc = 0;
                    for (int n = 0; n < N; n++)
                    {
                        double a = -Math.Exp(aLog[d * N + n]);
                        state[d, n] = Math.Exp(dt * a) * state[d, n] + dt * sp[R + n] * c[t, d];
                        acc += state[d, n] * sp[R + N + n];
                    }
                    y[d] = (acc + dSkip[d] * c[t, d]) * Silu(gate[t, d]);
                }
                for (int o = 0; o < H; o++)
                {
                    double s = useBias ? p["out_proj.bias"][o] : 0;
                    for (int d = 0; d < Di; d++) s += wOut[o * Di + d] * y[d];
                    output[(b * L + t) * H + o] = s;
                }
            }
        }
        return output;
    }

    [Fact]
    public void StateDictKeysAndShapesMatchHuggingFace()
    {
        using var m = new MambaMixer(hiddenSize: 32, stateSize: 16, convKernel: 4, expand: 2);
        var sd = m.state_dict();
        var shapes = sd.ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new[] { "A_log", "D", "conv1d.bias", "conv1d.weight", "dt_proj.bias", "dt_proj.weight",
            "in_proj.weight", "out_proj.weight", "x_proj.weight" }, shapes.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 128, 32 }, shapes["in_proj.weight"]);
        Assert.Equal(new long[] { 64, 1, 4 }, shapes["conv1d.weight"]);
        Assert.Equal(new long[] { 64 }, shapes["conv1d.bias"]);
        Assert.Equal(new long[] { 2 + 32, 64 }, shapes["x_proj.weight"]);   // time_step_rank = ceil(32/16) = 2
        Assert.Equal(new long[] { 64, 2 }, shapes["dt_proj.weight"]);
        Assert.Equal(new long[] { 64 }, shapes["dt_proj.bias"]);
        Assert.Equal(new long[] { 64, 16 }, shapes["A_log"]);
        Assert.Equal(new long[] { 64 }, shapes["D"]);
        Assert.Equal(new long[] { 32, 64 }, shapes["out_proj.weight"]);

        using var withBias = new MambaMixer(hiddenSize: 8, useBias: true, useConvBias: false, timeStepRank: 3);
        var keys = withBias.state_dict().Keys.ToHashSet();
        Assert.Contains("in_proj.bias", keys);
        Assert.Contains("out_proj.bias", keys);
        Assert.DoesNotContain("conv1d.bias", keys);
        Assert.Equal(3, withBias.TimeStepRank);
    }

    [Fact]
    public void InitialisationFollowsHuggingFace()
    {
        using var m = new MambaMixer(hiddenSize: 16, stateSize: 4);
        var p = ParameterArrays(m);
        for (int d = 0; d < 32; d++)
            for (int n = 0; n < 4; n++) Assert.Equal(Math.Log(n + 1), p["A_log"][d * 4 + n], 6);
        Assert.All(p["D"], v => Assert.Equal(1.0, v));
        Assert.All(p["conv1d.bias"], v => Assert.Equal(0.0, v));
        // dt_proj.bias = softplus^-1(dt) with dt in [1e-3, 0.1]
        Assert.All(p["dt_proj.bias"], v => Assert.InRange(Softplus(v), 1e-3 - 1e-6, 0.1 + 1e-6));
        Assert.All(p["dt_proj.weight"], v => Assert.InRange(Math.Abs(v), 0, 1.0 + 1e-6)); // rank 1: std 1
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void ForwardMatchesPlainLoopReference(bool useBias, bool useConvBias)
    {
        int H = 3, N = 2, K = 3, R = 2, L = 6, batch = 2;
        using var m = new MambaMixer(H, stateSize: N, convKernel: K, expand: 2, timeStepRank: R, useBias: useBias,
            useConvBias: useConvBias);
        RandomizeParameters(m, seed: 11);
        m.to(ScalarType.Float64);
        m.ScanChunkSize = 4;
        var x = RandomArray(new Random(12), batch * L * H);
        using var xt = FromArray(x, new long[] { batch, L, H });
        var expected = LoopMixer(ParameterArrays(m), x, batch, L, H, 2 * H, N, R, K, useBias, useConvBias);
        foreach (var alg in new[] { SelectiveScanAlgorithm.Chunked, SelectiveScanAlgorithm.Sequential })
        {
            m.ScanAlgorithm = alg;
            using var y = m.forward(xt);
            Assert.Equal(new long[] { batch, L, H }, y.shape);
            AssertClose(expected, ToArray(y), 1e-10, 1e-9, alg.ToString());
        }
    }

    [Fact]
    public void PrefillThenStepsEqualsFullForward()
    {
        using var m = new MambaMixer(hiddenSize: 8, stateSize: 4, convKernel: 4);
        RandomizeParameters(m, seed: 3, lo: -0.3, hi: 0.3);
        using var x = torch.randn(2, 9, 8, generator: new torch.Generator(5));
        using var full = m.forward(x);
        foreach (int prefix in new[] { 2, 5 })   // shorter and longer than the conv kernel
        {
            var (yPre, conv, ssm) = m.ForwardWithState(x.narrow(1, 0, prefix));
            Assert.Equal(new long[] { 2, 16, 4 }, conv.shape);
            Assert.Equal(new long[] { 2, 16, 4 }, ssm.shape);
            var outs = new List<Tensor> { yPre };
            for (int t = prefix; t < 9; t++)
            {
                var (yt, c2, s2) = m.Step(x.select(1, t), conv, ssm);
                conv.Dispose(); ssm.Dispose();
                conv = c2; ssm = s2;
                outs.Add(yt.unsqueeze(1));
                yt.Dispose();
            }
            using var joined = torch.cat(outs, 1);
            AssertClose(full, joined, 1e-5, 1e-4, $"prefix {prefix}");
            foreach (var o in outs) o.Dispose();
            conv.Dispose(); ssm.Dispose();
        }

        // decoding from zero states equals the full forward too
        using var conv0 = torch.zeros(2, 16, 4);
        using var ssm0 = torch.zeros(2, 16, 4);
        var (y0, c, s) = m.Step(x.select(1, 0), conv0, ssm0);
        AssertClose(full.select(1, 0), y0, 1e-5, 1e-4, "first token");
        y0.Dispose(); c.Dispose(); s.Dispose();
    }

    [Fact]
    public void GradientsReachEveryParameter()
    {
        using var m = new MambaMixer(hiddenSize: 8, stateSize: 4, useBias: true);
        using var x = torch.randn(2, 5, 8).requires_grad_(true);
        using var y = m.forward(x);
        using var loss = y.pow(2).mean();
        loss.backward();
        Assert.NotNull(x.grad);
        foreach (var (name, p) in m.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name} has no gradient");
            Assert.False(p.grad!.isnan().any().item<bool>(), name);
            Assert.True(p.grad!.abs().sum().item<float>() > 0, $"{name} gradient is zero");
        }
    }

    [Fact]
    public void RejectsWrongInputWidth()
    {
        using var m = new MambaMixer(hiddenSize: 8);
        using var x = torch.zeros(1, 3, 7);
        Assert.Throws<ArgumentException>(() => m.forward(x));
    }
}
