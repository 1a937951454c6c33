using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

public static partial class Fn
{
    /// <summary><c>avg_pool2d(x, kernel_size, stride, padding, count_include_pad)</c>.</summary>
    public static Tensor AvgPool2d(Tensor x, long kernelSize, long? stride = null, long padding = 0, bool countIncludePad = true) =>
        nn.functional.avg_pool2d(x, kernelSize, stride ?? kernelSize, padding, count_include_pad: countIncludePad);

    /// <summary><c>max_pool2d(x, kernel_size, stride, padding)</c> (padding counts as −∞).</summary>
    public static Tensor MaxPool2d(Tensor x, long kernelSize, long? stride = null, long padding = 0) =>
        nn.functional.max_pool2d(x, new[] { kernelSize, kernelSize }, new[] { stride ?? kernelSize, stride ?? kernelSize },
            new[] { padding, padding });

    /// <summary><c>interpolate(x, size, mode, align_corners)</c>: PyTorch's <c>F.interpolate</c> on the two spatial axes.</summary>
    public static Tensor Interpolate(Tensor x, long[] size, string mode = "bilinear", bool alignCorners = false) =>
        mode switch
        {
            "nearest" => nn.functional.interpolate(x, size, mode: InterpolationMode.Nearest),
            "bilinear" => nn.functional.interpolate(x, size, mode: InterpolationMode.Bilinear, align_corners: alignCorners),
            "bicubic" => nn.functional.interpolate(x, size, mode: InterpolationMode.Bicubic, align_corners: alignCorners),
            _ => throw new System.ArgumentException($"interpolate mode must be nearest, bilinear or bicubic; got {mode}", nameof(mode)),
        };

    /// <summary>
    /// <c>scaled_dot_product_attention(q, k, v, dropout_p, causal)</c>: PyTorch's fused SDPA (scale 1/√d); the dropout
    /// acts only while the calling module trains.
    /// </summary>
    public static Tensor ScaledDotProductAttention(Tensor q, Tensor k, Tensor v, double dropoutP = 0.0, bool causal = false, bool training = false) =>
        nn.functional.scaled_dot_product_attention(q, k, v, p: training ? dropoutP : 0.0, is_casual: causal);
}
