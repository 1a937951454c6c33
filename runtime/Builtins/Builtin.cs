using System;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

/// <summary>
/// The factory table behind generated code (the one place that maps .mix built-ins to Mix.Runtime modules): one method per .mix built-in layer, norm, activation and mixer, with the
/// built-in's parameters (camelCase, same order and defaults as the catalog in docs/language.md). Each returns the
/// runtime module whose submodule and weight names are the built-in's state-dict keys.
/// </summary>
public static class Builtin
{
    static int I(long v) => checked((int)v);

    // ---- activations ------------------------------------------------------------------------------------------

    /// <summary><c>gelu</c>.</summary>
    public static nn.Module<Tensor, Tensor> GELU() => nn.GELU();
    /// <summary><c>relu</c>.</summary>
    public static nn.Module<Tensor, Tensor> ReLU() => nn.ReLU();
    /// <summary><c>silu</c>.</summary>
    public static nn.Module<Tensor, Tensor> SiLU() => nn.SiLU();
    /// <summary><c>sigmoid</c>.</summary>
    public static nn.Module<Tensor, Tensor> Sigmoid() => nn.Sigmoid();
    /// <summary><c>tanh</c>.</summary>
    public static nn.Module<Tensor, Tensor> Tanh() => nn.Tanh();
    /// <summary><c>softplus</c>.</summary>
    public static nn.Module<Tensor, Tensor> Softplus() => nn.Softplus();
    /// <summary><c>squared_relu</c>.</summary>
    public static nn.Module<Tensor, Tensor> SquaredReLU() => new SquaredReLU();
    /// <summary><c>starrelu</c>: weights <c>scale</c>, <c>bias</c>.</summary>
    public static nn.Module<Tensor, Tensor> StarReLU(double scaleValue = 1.0, double biasValue = 0.0, bool scaleLearnable = true, bool biasLearnable = true) =>
        new StarReLU(scaleValue, biasValue, scaleLearnable, biasLearnable);
    /// <summary><c>identity</c> (any kind).</summary>
    public static nn.Module<Tensor, Tensor> Identity(long? dim = null) => nn.Identity();

    // ---- norms ------------------------------------------------------------------------------------------------

    /// <summary><c>layernorm</c>.</summary>
    public static TorchSharp.Modules.LayerNorm LayerNorm(long dim, double eps = 1e-5) => nn.LayerNorm(dim, eps);
    /// <summary><c>layernorm_nobias</c>.</summary>
    public static LayerNormNoBias LayerNormNoBias(long dim, double eps = 1e-5) => new LayerNormNoBias(I(dim), eps);
    /// <summary><c>layernorm2d</c>.</summary>
    public static LayerNorm2d LayerNorm2d(long dim, double eps = 1e-6) => new LayerNorm2d(I(dim), eps);
    /// <summary><c>layernorm2d_nobias</c>.</summary>
    public static LayerNorm2dNoBias LayerNorm2dNoBias(long dim, double eps = 1e-6) => new LayerNorm2dNoBias(I(dim), eps);
    /// <summary><c>groupnorm1</c>.</summary>
    public static GroupNorm1 GroupNorm1(long dim, double eps = 1e-5) => new GroupNorm1(I(dim), eps);
    /// <summary><c>groupnorm1_nobias</c>.</summary>
    public static GroupNorm1NoBias GroupNorm1NoBias(long dim, double eps = 1e-6) => new GroupNorm1NoBias(I(dim), eps);
    /// <summary><c>rmsnorm</c>.</summary>
    public static RMSNorm RmsNorm(long dim, double eps = 1e-5) => new RMSNorm(I(dim), eps);
    /// <summary><c>batchnorm2d</c>.</summary>
    public static TorchSharp.Modules.BatchNorm2d BatchNorm2d(long dim, double eps = 1e-5, double momentum = 0.1) => nn.BatchNorm2d(dim, eps, momentum);

    // ---- layers -----------------------------------------------------------------------------------------------

    /// <summary><c>linear</c>.</summary>
    public static QuantizableLinear Linear(long inFeatures, long outFeatures, bool bias = true) => new QuantizableLinear(inFeatures, outFeatures, bias);
    /// <summary><c>conv1d</c>.</summary>
    public static TorchSharp.Modules.Conv1d Conv1d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, long groups = 1, bool bias = true) =>
        nn.Conv1d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, groups: groups, bias: bias);
    /// <summary><c>conv2d</c>.</summary>
    public static TorchSharp.Modules.Conv2d Conv2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, long groups = 1, bool bias = true) =>
        nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, groups: groups, bias: bias);
    /// <summary><c>conv_transpose2d</c>: weight [in, out / groups, k, k].</summary>
    public static TorchSharp.Modules.ConvTranspose2d ConvTranspose2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, long outputPadding = 0, long groups = 1, bool bias = true) =>
        nn.ConvTranspose2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, output_padding: outputPadding, groups: groups, bias: bias);
    /// <summary><c>embedding</c>.</summary>
    public static TorchSharp.Modules.Embedding Embedding(long numEmbeddings, long embeddingDim) => nn.Embedding(numEmbeddings, embeddingDim);
    /// <summary><c>layernorm_nd</c>.</summary>
    public static TorchSharp.Modules.LayerNorm LayerNormNd(long[] normalizedShape, double eps = 1e-5, bool bias = true) =>
        nn.LayerNorm(normalizedShape, eps, bias: bias);
    /// <summary><c>dropout</c>.</summary>
    public static TorchSharp.Modules.Dropout Dropout(double p = 0.0) => nn.Dropout(p);
    /// <summary><c>scale</c>: a per-channel scale, or identity (no weights) when <paramref name="initValue"/> is null.</summary>
    public static nn.Module<Tensor, Tensor> Scale(long dim, double? initValue = 1.0, bool useNchw = true) =>
        initValue is double v ? new Scale(I(dim), v, useNchw: useNchw) : nn.Identity();
    /// <summary><c>mlp</c>: fc1, act, fc2 over the last axis.</summary>
    public static Mlp Mlp(long inFeatures, long hiddenFeatures, long? outFeatures = null, ActFactory? act = null, bool bias = true, double drop = 0.0) =>
        new Mlp(I(inFeatures), I(hiddenFeatures), outFeatures is long o ? I(o) : null, act is null ? null : () => act(), bias: bias, drop: drop);
    /// <summary><c>conv_mlp</c>: fc1, act, fc2 as 1×1 convolutions over channels.</summary>
    public static Mlp ConvMlp(long inFeatures, long hiddenFeatures, long? outFeatures = null, ActFactory? act = null, bool bias = true, double drop = 0.0) =>
        new Mlp(I(inFeatures), I(hiddenFeatures), outFeatures is long o ? I(o) : null, act is null ? null : () => act(), bias: bias, drop: drop, useConv: true);
    /// <summary><c>swiglu</c>.</summary>
    public static SwiGLU SwiGLU(long inFeatures, long hiddenFeatures, long? outFeatures = null, bool bias = true) =>
        new SwiGLU(I(inFeatures), I(hiddenFeatures), outFeatures is long o ? I(o) : null, bias: bias);
    /// <summary><c>mlp_head</c>: fc1, act, norm, fc2.</summary>
    public static MlpHead MlpHead(long dim, long numClasses, double mlpRatio = 4.0, ActFactory? act = null, NormFactory? norm = null, double drop = 0.0, bool bias = true) =>
        new MlpHead(I(dim), I(numClasses), mlpRatio, act is null ? null : () => act(), norm is null ? null : d => norm(d), drop, bias);
    /// <summary><c>adaptive_avg_pool</c>.</summary>
    public static nn.Module<Tensor, Tensor> AdaptiveAvgPool(bool flatten = false) =>
        flatten ? nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)) : nn.AdaptiveAvgPool2d(1);

    // ---- token mixers -----------------------------------------------------------------------------------------

    /// <summary><c>pool</c>: avgpool(x) − x.</summary>
    public static Pooling Pool(long dim, long poolSize = 3) => new Pooling(I(poolSize));
    /// <summary><c>sepconv</c>: pwconv1, act1, dwconv, act2, pwconv2.</summary>
    public static SepConv SepConv(long dim, double expansionRatio = 2.0, ActFactory? act1 = null, ActFactory? act2 = null, bool bias = false, long kernelSize = 7, long padding = 3) =>
        new SepConv(I(dim), expansionRatio, act1 is null ? null : () => act1(), act2 is null ? null : () => act2(), bias, I(kernelSize), I(padding));
    /// <summary><c>attention</c>: qkv, heads of headDim, proj.</summary>
    public static Attention Attention(long dim, long headDim = 32, long? numHeads = null, bool qkvBias = false, bool projBias = false,
        double attnDrop = 0.0, double projDrop = 0.0, bool causal = false) =>
        new Attention(I(dim), I(headDim), numHeads is long h ? I(h) : null, qkvBias, attnDrop, projDrop, projBias, causal: causal);
    /// <summary><c>random_mixing</c>: a frozen random token-mixing matrix.</summary>
    public static RandomMixing RandomMixing(long dim, long numTokens) => new RandomMixing(I(numTokens), useNchw: true);
    /// <summary><c>global_filter</c> (GFNet) on an <paramref name="h"/> × <paramref name="w"/> grid: the filter is
    /// <c>[h, w/2+1, dim, 2]</c>, the half spectrum of width <paramref name="w"/>, as the catalog declares.</summary>
    public static Mix.Runtime.GlobalFilter GlobalFilter(long dim, long h, long w) => new Mix.Runtime.GlobalFilter(dim, h, w / 2 + 1);
    /// <summary><c>afno</c>.</summary>
    public static AFNO2D Afno(long dim, long numBlocks = 8, double sparsityThreshold = 0.01, double hardThresholdingFraction = 1.0, long hiddenSizeFactor = 1) =>
        new AFNO2D(dim, numBlocks, sparsityThreshold, hardThresholdingFraction, hiddenSizeFactor);
    /// <summary><c>aff</c> on channels-last tokens <c>[B, H, W, dim]</c>, as the catalog declares
    /// (<paramref name="hardThresholdingFraction"/> is accepted and, as in the AFFNet reference, not used).</summary>
    public static AdaptiveFrequencyFilter Aff(long dim, long numBlocks = 8, double sparsityThreshold = 0.01, double hardThresholdingFraction = 1.0, long hiddenSizeFactor = 1) =>
        new AdaptiveFrequencyFilter(dim, numBlocks, sparsityThreshold, hiddenSizeFactor, channelsLast: true);
    /// <summary><c>mamba</c> (Hugging Face MambaMixer names).</summary>
    public static MambaMixer Mamba(long dim, long dState = 16, long dConv = 4, long expand = 2, long? dtRank = null, bool bias = false, bool convBias = true) =>
        new MambaMixer(dim, dState, dConv, expand, timeStepRank: dtRank ?? -1, useBias: bias, useConvBias: convBias);

    // ---- weightless functions as layers (`flatten = flatten(1)`) -----------------------------------------------

    /// <summary>A function of .mix used as a (weightless) layer.</summary>
    public static nn.Module<Tensor, Tensor> Function(string name, Func<Tensor, Tensor> function) => new FunctionLayer(name, function);

    sealed class FunctionLayer : nn.Module<Tensor, Tensor>
    {
        readonly Func<Tensor, Tensor> _function;
        public FunctionLayer(string name, Func<Tensor, Tensor> function) : base(name) => _function = function;
        public override Tensor forward(Tensor x) => _function(x);
    }
}
