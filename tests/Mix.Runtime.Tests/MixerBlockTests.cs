using System;
using System.Linq;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class MixerBlockTests
{
    [Fact]
    public void MatchesTimmMathWithLoops()
    {
        int batch = 2, S = 3, C = 4;
        using var block = new MixerBlock(C, S);
        RandomizeParameters(block, 4);
        block.to(ScalarType.Float64);
        var x = RandomArray(new Random(5), batch * S * C);
        using var xt = FromArray(x, new long[] { batch, S, C });
        using var y = block.forward(xt);

        var p = ParameterArrays(block);
        int tokensDim = 2, channelsDim = 16;   // int(0.5·4), int(4·4)
        var n1 = Loops.LayerNorm(x, batch * S, C, p["norm1.weight"], p["norm1.bias"], 1e-6);
        var tT = Loops.Transpose(n1, batch, S, C);                                   // [batch, C, S]
        var h = Loops.Map(Loops.Linear(tT, batch * C, S, p["mlp_tokens.fc1.weight"], p["mlp_tokens.fc1.bias"], tokensDim), Gelu);
        var tok = Loops.Linear(h, batch * C, tokensDim, p["mlp_tokens.fc2.weight"], p["mlp_tokens.fc2.bias"], S);
        var x1 = Loops.Add(x, Loops.Transpose(tok, batch, C, S));
        var n2 = Loops.LayerNorm(x1, batch * S, C, p["norm2.weight"], p["norm2.bias"], 1e-6);
        var h2 = Loops.Map(Loops.Linear(n2, batch * S, C, p["mlp_channels.fc1.weight"], p["mlp_channels.fc1.bias"], channelsDim), Gelu);
        var ch = Loops.Linear(h2, batch * S, channelsDim, p["mlp_channels.fc2.weight"], p["mlp_channels.fc2.bias"], C);
        AssertClose(Loops.Add(x1, ch), ToArray(y), 1e-12, 1e-12);
    }

    [Fact]
    public void KeysShapesAndBackward()
    {
        using var block = new MixerBlock(dim: 8, seqLen: 6, dropPath: 0.1);
        var sd = block.state_dict();
        Assert.Equal(new[] { "mlp_channels.fc1.bias", "mlp_channels.fc1.weight", "mlp_channels.fc2.bias",
            "mlp_channels.fc2.weight", "mlp_tokens.fc1.bias", "mlp_tokens.fc1.weight", "mlp_tokens.fc2.bias",
            "mlp_tokens.fc2.weight", "norm1.bias", "norm1.weight", "norm2.bias", "norm2.weight" },
            sd.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new long[] { 4, 6 }, sd["mlp_tokens.fc1.weight"].shape);
        Assert.Equal(new long[] { 32, 8 }, sd["mlp_channels.fc1.weight"].shape);
        using var x = torch.randn(2, 6, 8).requires_grad_(true);
        using var loss = block.forward(x).sum();
        loss.backward();
        Assert.NotNull(x.grad);
        Assert.All(block.parameters(), q => Assert.NotNull(q.grad));
        using var bad = torch.randn(2, 5, 8);
        Assert.Throws<ArgumentException>(() => block.forward(bad));
    }
}
