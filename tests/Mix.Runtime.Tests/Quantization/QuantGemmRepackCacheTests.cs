using System.Linq;
using Mix.Runtime.Fused;
using Mix.Runtime.Quantization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Quantization;

/// <summary>
/// When the tensor-core linear's repacked weight (<see cref="QuantizedGemm.Repacked"/>, CPU tensors here: the cache
/// logic is device-independent) is reused and when it is made again: the same tensors reuse it; values written in place
/// are seen after <see cref="QuantizedGemm.Forget"/>; other scales/zeros tensors or another format are repacked without it.
/// </summary>
public class QuantGemmRepackCacheTests
{
    private static QuantizedLinear Layer(bool int4, int seed)
    {
        torch.manual_seed(seed);
        return QuantizedLinear.FromWeight(torch.randn(40, 256), torch.randn(40), int4 ? WeightQuantMode.Int4Grouped : WeightQuantMode.Int8PerChannel, 64);
    }

    private static bool Equal(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static Tensor Codes(QuantizedLinear q) => q.Mode == WeightQuantMode.Int4Grouped
        ? QuantizedGemm.RepackInt4(q.QWeight, 40, 256)
        : QuantizedGemm.RepackInt8(q.QWeight, 40, 256);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void InPlaceWritesAreSeenAfterForget(bool int4)
    {
        using var scope = torch.NewDisposeScope();
        var q = Layer(int4, 1);
        var other = Layer(int4, 2);
        var first = QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros);
        Assert.NotNull(first);
        Assert.True(Equal(first.Codes, Codes(q)));
        Assert.Same(first, QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros));
        Assert.False(Equal(Codes(q), Codes(other)));

        using (torch.no_grad())
        {
            q.QWeight.copy_(other.QWeight);
            q.Scales.copy_(other.Scales);
            q.Zeros?.copy_(other.Zeros!);
        }
        // same tensors, same storage: the cache cannot tell (the documented reason for Forget)
        Assert.Same(first, QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros));
        QuantizedGemm.Forget(q.QWeight);
        var again = QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros);
        Assert.NotNull(again);
        Assert.NotSame(first, again);
        Assert.True(Equal(again.Codes, Codes(other)));
        if (int4) Assert.True(Equal(again.Scales!, other.Scales));
        else Assert.True(Equal(again.ChannelScales!.narrow(0, 0, 40), other.Scales.reshape(40)));
    }

    [Fact]
    public void OtherScalesZerosOrFormatAreRepackedWithoutForget()
    {
        using var scope = torch.NewDisposeScope();
        var q = Layer(int4: true, 3);
        var first = QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros)!;
        var scales2 = q.Scales * 2;
        var second = QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, scales2, q.Zeros)!;
        Assert.NotSame(first, second);
        Assert.True(Equal(second.Scales!, scales2));
        var zeros2 = q.Zeros!.clone();
        var third = QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, scales2, zeros2)!;
        Assert.NotSame(second, third);
        // the same codes read as another group size
        var regrouped = QuantizedGemm.Repacked(q.Mode, 128, q.QWeight, scales2, zeros2)!;
        Assert.NotSame(third, regrouped);
        Assert.Equal(128, regrouped.Group);
        Assert.Same(regrouped, QuantizedGemm.Repacked(q.Mode, 128, q.QWeight, scales2, zeros2));
    }

    [Fact]
    public void ZeroPointsTheKernelCannotTakeAreDeclinedAndNotCached()
    {
        using var scope = torch.NewDisposeScope();
        var q = Layer(int4: true, 4);
        Assert.NotNull(QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros));
        var bad = q.Zeros!.clone();
        using (torch.no_grad()) bad[0, 0] = torch.tensor((byte)16);
        Assert.Null(QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, bad));
        Assert.NotNull(QuantizedGemm.Repacked(q.Mode, q.GroupSize, q.QWeight, q.Scales, q.Zeros));
    }
}
