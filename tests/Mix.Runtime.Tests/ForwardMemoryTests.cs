using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// What a generated forward leaves alive in its caller's dispose scope. Generated code does not free its
/// intermediates (the caller's scope does), so every tensor a forward creates lives until that scope ends: the scope's
/// contents after one forward are the forward's peak. They must stay a small multiple of the model's activation size,
/// counted from its structure (each layer's output at the module boundaries: the stem's five layers and each wave
/// block's output), not from what the code happens to create. WaveMix ran out of GPU memory at batch 32 when its blocks
/// recomputed the Haar bands at every use (108 transforms per block instead of 3): about 25× the activation size.
/// </summary>
public class ForwardMemoryTests
{
    /// <summary>Bytes of the distinct storages behind the tensors in <paramref name="scope"/> (views count once).</summary>
    internal static long LiveBytes(DisposeScope scope)
    {
        var storages = new Dictionary<IntPtr, long>();
        foreach (var t in scope.DisposablesView.OfType<Tensor>())
        {
            if (t.IsInvalid || t.dtype != ScalarType.Float32) continue;
            using var s = t.storage<float>();
            var ptr = (IntPtr)s.data_ptr();
            if (ptr == IntPtr.Zero) continue;
            storages[ptr] = Math.Max(storages.GetValueOrDefault(ptr), (long)s.nbytes());
        }
        return storages.Values.Sum();
    }

    [Fact]
    public void WaveMix_forward_keeps_a_few_times_its_activation_size()
    {
        torch.manual_seed(3);
        using var model = Models.Create("wavemix_192_16", new ModelOptions { NumClasses = 10 });
        model.eval();
        const long b = 2, side = 64, dim = 192, depth = 16;
        using var x = torch.randn(b, 3, side, side);
        long before, after;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            before = LiveBytes(scope);
            var y = model.call(x);
            Assert.Equal(new long[] { b, 10 }, y.shape);
            after = LiveBytes(scope);
        }
        // Activation size, float32: the stem's 3×3 convs at full size (dim/4 and dim/2 channels), the patch conv, GELU
        // and BatchNorm at side/4 (dim channels), then each of the 16 blocks' outputs at side/4.
        long full = side * side, quarter = (side / 4) * (side / 4);
        long activations = 4 * b * ((dim / 4 + dim / 2) * full + 3 * dim * quarter + depth * dim * quarter);
        double ratio = (double)(after - before) / activations;
        TestContext.Current.TestOutputHelper?.WriteLine($"live {after - before:N0} bytes, activations {activations:N0}: {ratio:F2}x");
        // A level-3 wave block creates about 7.2× its output (the 1×1 reduction, three pooled and Haar-transformed
        // levels, their band concatenations, three feed-forward branches, the residual sum); with the stem that is
        // about 4.2× the activation size here. 6× leaves room for an extra copy per block, and fails at the 25× of the
        // recomputed bands.
        Assert.True(ratio <= 6.0, $"the forward left {after - before:N0} bytes alive, {ratio:F2}× the activation size {activations:N0}");
        Assert.True(ratio >= 1.0, $"the count of live bytes missed the activations themselves ({ratio:F2}×)");
    }
}
