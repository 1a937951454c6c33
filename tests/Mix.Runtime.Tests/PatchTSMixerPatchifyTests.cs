using System;
using TorchSharp;
using Xunit;
using static Mix.Runtime.Tests.TestTensors;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class PatchTSMixerPatchifyTests
{
    [Theory]
    [InlineData(10, 4, 3, 3)]   // start 0
    [InlineData(11, 4, 3, 3)]   // first step dropped
    [InlineData(16, 4, 4, 4)]
    public void CutsWindowsFromTheEnd(int L, int len, int stride, int expectedPatches)
    {
        var cfg = new PatchTSMixerConfig { ContextLength = L, PatchLength = len, PatchStride = stride, NumInputChannels = 2 };
        using var patchify = new PatchTSMixerPatchify(cfg);
        Assert.Equal(expectedPatches, patchify.NumPatches);
        var x = RandomArray(new Random(L), 2 * L * 2);
        using var xt = FromArray(x, new long[] { 2, L, 2 });
        using var y = patchify.forward(xt);
        Assert.Equal(new long[] { 2, 2, expectedPatches, len }, y.shape);
        int start = L - (len + stride * (expectedPatches - 1));
        var expected = new double[2 * 2 * expectedPatches * len];
        for (int b = 0; b < 2; b++)
        for (int c = 0; c < 2; c++)
        for (int p = 0; p < expectedPatches; p++)
        for (int k = 0; k < len; k++)
            expected[((b * 2 + c) * expectedPatches + p) * len + k] = x[(b * L + start + p * stride + k) * 2 + c];
        AssertClose(expected, ToArray(y), 0);
        using var wrong = torch.zeros(2, L + 1, 2);
        Assert.Throws<ArgumentException>(() => patchify.forward(wrong));
    }
}
