using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

public class TorchSharpLoadsTests
{
    [Fact]
    public void NativeLibraryLoadsAndAnOpComputes()
    {
        using var a = arange(6, dtype: float32).reshape(2, 3);
        using var b = a.matmul(a.t());
        // [[0,1,2],[3,4,5]] · its transpose = [[5,14],[14,50]]
        Assert.Equal(new float[] { 5, 14, 14, 50 }, b.data<float>().ToArray());
    }
}
