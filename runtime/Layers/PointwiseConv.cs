using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Evaluates a 1x1 / stride 1 / unpadded / ungrouped <see cref="Conv2d"/> as a matrix product over the channel
/// dimension: <c>y[b, o, h, w] = Σ_i W[o, i, 0, 0] · x[b, i, h, w] + bias[o]</c> — the same math as the
/// convolution, and the same parameters (so state-dict keys stay <c>*.weight</c> [out, in, 1, 1]).
/// </summary>
/// <remarks>
/// Why: libtorch-cpu as shipped with TorchSharp 0.107 dies with SIGFPE (oneDNN) on some 1x1 convolutions of
/// channels-last inputs, e.g. 512 → 1024+ channels on a 7x7 map on AMD EPYC hosts — exactly the shapes of a
/// MetaFormer's last-stage MLP, whose inputs are channels-last because oneDNN returns the stem's output in that
/// layout. A GEMM avoids that kernel on the CPU. On CUDA the convolution itself runs (cuDNN, as PyTorch and timm do): it
/// keeps NCHW outputs NCHW (the GEMM's permuted channels-last view made the next GroupNorm / fused kernel copy it) and
/// uses PyTorch's default convolution precision (TF32 for float32), so whole-model numbers compare like for like.
/// </remarks>
internal static class PointwiseConv
{
    /// <summary>Applies the pointwise convolution <paramref name="conv"/> to NCHW <paramref name="x"/>.</summary>
    /// <param name="conv">A Conv2d with kernel 1, stride 1, padding 0, groups 1.</param>
    /// <param name="x">[B, in, H, W].</param>
    /// <returns>[B, out, H, W] (on the CPU a permuted view of a channels-last result).</returns>
    public static Tensor Forward(Conv2d conv, Tensor x)
    {
        if (x.is_cuda) return conv.forward(x);
        using var scope = torch.NewDisposeScope();
        var w = conv.weight.flatten(1);
        var y = nn.functional.linear(x.permute(0, 2, 3, 1), w, conv.bias).permute(0, 3, 1, 2);
        return y.MoveToOuterDisposeScope();
    }
}
