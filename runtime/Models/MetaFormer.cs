using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MetaFormer image classifier (timm <c>timm/models/metaformer.py</c> <c>MetaFormer</c>): <c>stem</c>
/// (<see cref="Stem"/>), <c>stages</c> (a Sequential of <see cref="MetaFormerStage"/>s named "0"…), and
/// <c>head</c>, a Sequential of <c>global_pool</c> (adaptive pool to 1x1), <c>norm</c> (output norm on
/// [B, C, 1, 1]), <c>flatten</c>, <c>drop</c> and <c>fc</c> (Linear, <see cref="MlpHead"/>, or Identity when
/// numClasses = 0). State-dict keys and shapes are timm's.
/// </summary>
/// <remarks>
/// Shape contract: [B, inChans, H, W] → [B, numClasses] (features after the stages: [B, dims[^1], H/32, W/32]).
/// Conventions for the optional arguments: <c>null</c> means timm's default; to get timm's <c>None</c> for a norm
/// factory pass <c>_ =&gt; nn.Identity()</c> (same keys and math). Weights of Linear / Conv2d layers are
/// initialized as timm does (truncated normal, std 0.02; zero biases).
/// </remarks>
public sealed class MetaFormer : torch.nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>[] _headParts;

    /// <summary>Number of output classes (0: the head returns pooled features).</summary>
    public int NumClasses { get; }

    /// <summary>Channels of the last stage.</summary>
    public int NumFeatures { get; }

    /// <summary>Whether the classifier is an <see cref="MlpHead"/>.</summary>
    public bool UseMlpHead { get; }

    /// <summary>Patch-embedding stem (7x7 conv, stride 4).</summary>
    public readonly Stem stem;

    /// <summary>The stages, named "0" … "numStages-1".</summary>
    public readonly Sequential stages;

    /// <summary>Head: global_pool, norm, flatten, drop, fc.</summary>
    public readonly Sequential head;

    /// <summary>Creates a MetaFormer.</summary>
    /// <param name="inChans">Input image channels.</param>
    /// <param name="numClasses">Classes of the classifier (0 for none).</param>
    /// <param name="globalPool">"avg" (default), "max", or "" (no pooling and no flatten).</param>
    /// <param name="depths">Blocks per stage (default 2, 2, 6, 2).</param>
    /// <param name="dims">Channels per stage (default 64, 128, 320, 512).</param>
    /// <param name="tokenMixers">Per-stage token-mixer factories <c>(dim, projDrop) =&gt; mixer</c> (default: <see cref="Pooling"/> everywhere).</param>
    /// <param name="mlpAct">MLP activation factory (default: <see cref="StarReLU"/>).</param>
    /// <param name="mlpBias">Whether MLP projections have biases.</param>
    /// <param name="dropPathRate">Stochastic depth, linearly increasing from 0 to this over all blocks.</param>
    /// <param name="projDropRate">Dropout in MLPs / mixers.</param>
    /// <param name="dropRate">Head dropout (only with the MLP head, as timm).</param>
    /// <param name="layerScaleInitValues">Per-stage layer-scale init values (null entries: none; default: none anywhere).</param>
    /// <param name="resScaleInitValues">Per-stage res-scale init values (default: null, null, 1.0, 1.0).</param>
    /// <param name="downsampleNorm">Norm factory of the stem and downsampling layers (default: <see cref="LayerNorm2dNoBias"/>).</param>
    /// <param name="normLayers">Per-stage block norm factories (default: <see cref="LayerNorm2dNoBias"/> everywhere).</param>
    /// <param name="outputNorm">Norm before the classifier, on [B, C, 1, 1] (default: <see cref="LayerNorm2d"/>).</param>
    /// <param name="useMlpHead">Use <see cref="MlpHead"/> as the classifier instead of a Linear.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public MetaFormer(
        int inChans = 3,
        int numClasses = 1000,
        string globalPool = "avg",
        int[]? depths = null,
        int[]? dims = null,
        Func<int, double, nn.Module<Tensor, Tensor>>[]? tokenMixers = null,
        Func<nn.Module<Tensor, Tensor>>? mlpAct = null,
        bool mlpBias = false,
        double dropPathRate = 0.0,
        double projDropRate = 0.0,
        double dropRate = 0.0,
        double?[]? layerScaleInitValues = null,
        double?[]? resScaleInitValues = null,
        Func<int, nn.Module<Tensor, Tensor>>? downsampleNorm = null,
        Func<int, nn.Module<Tensor, Tensor>>[]? normLayers = null,
        Func<int, nn.Module<Tensor, Tensor>>? outputNorm = null,
        bool useMlpHead = true,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(MetaFormer))
    {
        depths ??= new[] { 2, 2, 6, 2 };
        dims ??= new[] { 64, 128, 320, 512 };
        int numStages = depths.Length;
        if (dims.Length != numStages) throw new ArgumentException("dims and depths must have the same length.", nameof(dims));
        tokenMixers ??= Enumerable.Repeat<Func<int, double, nn.Module<Tensor, Tensor>>>((_, _) => new Pooling(), numStages).ToArray();
        normLayers ??= Enumerable.Repeat<Func<int, nn.Module<Tensor, Tensor>>>(c => new LayerNorm2dNoBias(c, device: device, dtype: dtype), numStages).ToArray();
        layerScaleInitValues ??= new double?[numStages];
        if (resScaleInitValues is null) {
            var timmDefault = new double?[] { null, null, 1.0, 1.0 };
            if (numStages > timmDefault.Length) throw new ArgumentException("Give resScaleInitValues explicitly for more than 4 stages.", nameof(resScaleInitValues));
            resScaleInitValues = timmDefault.Take(numStages).ToArray();
        }
        CheckLength(tokenMixers.Length, numStages, nameof(tokenMixers));
        CheckLength(normLayers.Length, numStages, nameof(normLayers));
        CheckLength(layerScaleInitValues.Length, numStages, nameof(layerScaleInitValues));
        CheckLength(resScaleInitValues.Length, numStages, nameof(resScaleInitValues));
        var dsNorm = downsampleNorm ?? (c => new LayerNorm2dNoBias(c, device: device, dtype: dtype));
        var act = mlpAct ?? (() => new StarReLU(device: device, dtype: dtype));

        NumClasses = numClasses;
        NumFeatures = dims[^1];
        UseMlpHead = useMlpHead;

        stem = new Stem(inChans, dims[0], normLayer: dsNorm, device: device, dtype: dtype);

        var dpRates = DropPathRates(dropPathRate, depths);
        var stageList = new (string, nn.Module<Tensor, Tensor>)[numStages];
        int prevDim = dims[0];
        for (int i = 0; i < numStages; i++) {
            stageList[i] = (i.ToString(System.Globalization.CultureInfo.InvariantCulture), new MetaFormerStage(
                prevDim,
                dims[i],
                depth: depths[i],
                tokenMixer: tokenMixers[i],
                mlpAct: act,
                mlpBias: mlpBias,
                downsampleNorm: dsNorm,
                normLayer: normLayers[i],
                projDrop: projDropRate,
                dpRates: dpRates[i],
                layerScaleInitValue: layerScaleInitValues[i],
                resScaleInitValue: resScaleInitValues[i],
                device: device,
                dtype: dtype));
            prevDim = dims[i];
        }
        stages = nn.Sequential(stageList);

        nn.Module<Tensor, Tensor> final = numClasses > 0
            ? (useMlpHead
                ? new MlpHead(NumFeatures, numClasses, dropRate: dropRate, device: device, dtype: dtype)
                : nn.Linear(NumFeatures, numClasses, device: device, dtype: dtype))
            : nn.Identity();
        nn.Module<Tensor, Tensor> pool = globalPool switch {
            "avg" => nn.AdaptiveAvgPool2d(1),
            "max" => nn.AdaptiveMaxPool2d(new long[] { 1, 1 }),
            "" => nn.Identity(),
            _ => throw new ArgumentException($"Unsupported globalPool '{globalPool}' (use \"avg\", \"max\" or \"\").", nameof(globalPool)),
        };
        _headParts = new[] {
            pool,
            (outputNorm ?? (c => new LayerNorm2d(c, device: device, dtype: dtype)))(NumFeatures),
            globalPool.Length > 0 ? nn.Flatten(1) : nn.Identity(),
            useMlpHead ? nn.Dropout(dropRate) : nn.Identity(),
            final,
        };
        head = nn.Sequential(
            ("global_pool", _headParts[0]),
            ("norm", _headParts[1]),
            ("flatten", _headParts[2]),
            ("drop", _headParts[3]),
            ("fc", _headParts[4]));
        RegisterComponents();
        InitWeights();
    }

    private static void CheckLength(int actual, int expected, string name)
    {
        if (actual != expected) throw new ArgumentException($"{name} has {actual} entries, expected one per stage ({expected}).", name);
    }

    /// <summary>
    /// timm's <c>calculate_drop_path_rates(rate, depths, stagewise=True)</c>: a linear ramp from 0 to
    /// <paramref name="dropPathRate"/> over all blocks, split per stage.
    /// </summary>
    /// <param name="dropPathRate">Rate of the last block.</param>
    /// <param name="depths">Blocks per stage.</param>
    /// <returns>One list of rates per stage.</returns>
    public static double[][] DropPathRates(double dropPathRate, IReadOnlyList<int> depths)
    {
        int total = depths.Sum();
        var flat = new double[total];
        for (int i = 0; i < total; i++) flat[i] = total > 1 ? dropPathRate * i / (total - 1) : 0.0;
        var result = new double[depths.Count][];
        int start = 0;
        for (int s = 0; s < depths.Count; s++) {
            result[s] = flat.Skip(start).Take(depths[s]).ToArray();
            start += depths[s];
        }
        return result;
    }

    private void InitWeights()
    {
        using var noGrad = torch.no_grad();
        foreach (var m in modules()) {
            switch (m) {
            case Linear l:
                TruncNormal_(l.weight, 0.0, 0.02, -2.0, 2.0);
                if (l.bias is not null) nn.init.zeros_(l.bias);
                break;
            case Conv2d c:
                TruncNormal_(c.weight, 0.0, 0.02, -2.0, 2.0);
                if (c.bias is not null) nn.init.zeros_(c.bias);
                break;
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="tensor"/> in place from N(mean, std²) truncated to [a, b] (absolute bounds, like
    /// <c>torch.nn.init.trunc_normal_</c> / timm's <c>trunc_normal_</c>), by inverse-CDF sampling.
    /// Written here because TorchSharp 0.107's <c>nn.init.trunc_normal_</c> fills the tensor with the constant <c>std</c>.
    /// </summary>
    /// <param name="tensor">Tensor to fill (no grad is recorded).</param>
    /// <param name="mean">Mean of the normal distribution.</param>
    /// <param name="std">Standard deviation of the normal distribution.</param>
    /// <param name="a">Lower bound.</param>
    /// <param name="b">Upper bound.</param>
    /// <returns><paramref name="tensor"/>.</returns>
    public static Tensor TruncNormal_(Tensor tensor, double mean, double std, double a, double b)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var bounds = torch.tensor(new[] { (a - mean) / std / Math.Sqrt(2.0), (b - mean) / std / Math.Sqrt(2.0) }, dtype: ScalarType.Float64);
        var cdf = (bounds.erf() + 1.0) / 2.0;
        double lo = cdf[0].item<double>(), hi = cdf[1].item<double>();
        tensor.uniform_(2.0 * lo - 1.0, 2.0 * hi - 1.0);
        tensor.erfinv_();
        tensor.mul_(std * Math.Sqrt(2.0));
        tensor.add_(mean);
        tensor.clamp_(a, b);
        return tensor;
    }

    /// <summary>Runs the stem and the stages.</summary>
    /// <param name="x">[B, inChans, H, W].</param>
    /// <returns>[B, NumFeatures, H/32, W/32] (for H, W multiples of 32).</returns>
    public Tensor forward_features(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = stages.forward(stem.forward(x));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Runs the head on stage features.</summary>
    /// <param name="x">[B, NumFeatures, h, w].</param>
    /// <param name="preLogits">Stop before <c>fc</c> and return the pooled, normalized features.</param>
    /// <returns>[B, NumClasses], or [B, NumFeatures] when <paramref name="preLogits"/>.</returns>
    public Tensor forward_head(Tensor x, bool preLogits = false)
    {
        using var scope = torch.NewDisposeScope();
        var h = x;
        int parts = preLogits ? _headParts.Length - 1 : _headParts.Length;
        for (int i = 0; i < parts; i++) h = _headParts[i].forward(h);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Classifies images.</summary>
    /// <param name="x">[B, inChans, H, W].</param>
    /// <returns>[B, NumClasses].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = forward_head(forward_features(x));
        return y.MoveToOuterDisposeScope();
    }

    // ---- timm / sail-sg configurations -------------------------------------------------------------

    private static Func<int, nn.Module<Tensor, Tensor>>[] Repeat(Func<int, nn.Module<Tensor, Tensor>> f, int n)
        => Enumerable.Repeat(f, n).ToArray();

    private static Func<int, double, nn.Module<Tensor, Tensor>>[] Repeat(Func<int, double, nn.Module<Tensor, Tensor>> f, int n)
        => Enumerable.Repeat(f, n).ToArray();

    private static MetaFormer PoolFormerV1(int[] depths, double layerScale, int numClasses, int inChans, double dropPathRate, double dropRate, Device? device, ScalarType? dtype)
        => new MetaFormer(
            inChans: inChans,
            numClasses: numClasses,
            depths: depths,
            dims: new[] { 64, 128, 320, 512 },
            tokenMixers: Repeat((_, _) => new Pooling(), 4),
            mlpAct: () => nn.GELU(),
            mlpBias: true,
            dropPathRate: dropPathRate,
            dropRate: dropRate,
            layerScaleInitValues: new double?[] { layerScale, layerScale, layerScale, layerScale },
            resScaleInitValues: new double?[] { null, null, null, null },
            downsampleNorm: _ => nn.Identity(),
            normLayers: Repeat(c => new GroupNorm1(c, device: device, dtype: dtype), 4),
            useMlpHead: false,
            device: device,
            dtype: dtype);

    /// <summary>timm <c>poolformer_s12</c>: depths 2-2-6-2, dims 64-128-320-512, Pooling, GroupNorm1, GELU MLPs with bias, layer scale 1e-5, no stem/downsample norm, Linear head (≈11.9 M parameters).</summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout (unused by the Linear head, as timm).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer PoolFormerS12(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
        => PoolFormerV1(new[] { 2, 2, 6, 2 }, 1e-5, numClasses, inChans, dropPathRate, dropRate, device, dtype);

    /// <summary>timm <c>poolformer_s24</c>: as <see cref="PoolFormerS12"/> with depths 4-4-12-4 (≈21.4 M parameters).</summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout (unused by the Linear head, as timm).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer PoolFormerS24(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
        => PoolFormerV1(new[] { 4, 4, 12, 4 }, 1e-5, numClasses, inChans, dropPathRate, dropRate, device, dtype);

    /// <summary>timm <c>poolformer_s36</c>: as <see cref="PoolFormerS12"/> with depths 6-6-18-6 and layer scale 1e-6 (≈30.9 M parameters).</summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout (unused by the Linear head, as timm).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer PoolFormerS36(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
        => PoolFormerV1(new[] { 6, 6, 18, 6 }, 1e-6, numClasses, inChans, dropPathRate, dropRate, device, dtype);

    /// <summary>timm <c>convformer_s18</c>: depths 3-3-9-3, dims 64-128-320-512, SepConv mixers, LayerNorm2dNoBias, StarReLU MLPs without bias, res scale on stages 3-4, MlpHead (≈26.8 M parameters).</summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer ConvFormerS18(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
        => new MetaFormer(
            inChans: inChans,
            numClasses: numClasses,
            depths: new[] { 3, 3, 9, 3 },
            dims: new[] { 64, 128, 320, 512 },
            tokenMixers: Repeat((d, _) => new SepConv(d, device: device, dtype: dtype), 4),
            normLayers: Repeat(c => new LayerNorm2dNoBias(c, device: device, dtype: dtype), 4),
            dropPathRate: dropPathRate,
            dropRate: dropRate,
            device: device,
            dtype: dtype);

    /// <summary>timm <c>caformer_s18</c>: as <see cref="ConvFormerS18"/> but stages 3-4 use <see cref="Attention"/> on tokens with <see cref="LayerNormNoBias"/> (≈26.3 M parameters).</summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer CAFormerS18(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
    {
        Func<int, double, nn.Module<Tensor, Tensor>> sep = (d, _) => new SepConv(d, device: device, dtype: dtype);
        Func<int, double, nn.Module<Tensor, Tensor>> attn = (d, p) => new Attention(d, projDrop: p, device: device, dtype: dtype);
        Func<int, nn.Module<Tensor, Tensor>> ln2d = c => new LayerNorm2dNoBias(c, device: device, dtype: dtype);
        Func<int, nn.Module<Tensor, Tensor>> ln = c => new LayerNormNoBias(c, device: device, dtype: dtype);
        return new MetaFormer(
            inChans: inChans,
            numClasses: numClasses,
            depths: new[] { 3, 3, 9, 3 },
            dims: new[] { 64, 128, 320, 512 },
            tokenMixers: new[] { sep, sep, attn, attn },
            normLayers: new[] { ln2d, ln2d, ln, ln },
            dropPathRate: dropPathRate,
            dropRate: dropRate,
            device: device,
            dtype: dtype);
    }

    /// <summary>
    /// sail-sg <c>identityformer_s12</c> (not in timm) in timm's layout: depths 2-2-6-2, dims 64-128-320-512,
    /// Identity mixers, <see cref="GroupNorm1NoBias"/> block norms, StarReLU MLPs without bias, res scale on
    /// stages 3-4, Linear head (≈11.9 M parameters). Keys follow timm's naming (as for poolformerv2).
    /// </summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout (unused by the Linear head).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer IdentityFormerS12(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
        => new MetaFormer(
            inChans: inChans,
            numClasses: numClasses,
            depths: new[] { 2, 2, 6, 2 },
            dims: new[] { 64, 128, 320, 512 },
            tokenMixers: Repeat((_, _) => nn.Identity(), 4),
            normLayers: Repeat(c => new GroupNorm1NoBias(c, device: device, dtype: dtype), 4),
            dropPathRate: dropPathRate,
            dropRate: dropRate,
            useMlpHead: false,
            device: device,
            dtype: dtype);

    /// <summary>
    /// sail-sg <c>randformer_s12</c> (not in timm) in timm's layout: as <see cref="IdentityFormerS12"/> but stages
    /// 3 and 4 mix tokens with a frozen <see cref="RandomMixing"/> matrix for 14·14 = 196 and 7·7 = 49 tokens
    /// (so the input must be 224x224). The matrices count as (frozen) parameters, as in sail-sg.
    /// </summary>
    /// <param name="numClasses">Classes.</param>
    /// <param name="inChans">Input channels.</param>
    /// <param name="dropPathRate">Stochastic-depth rate.</param>
    /// <param name="dropRate">Head dropout (unused by the Linear head).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    /// <returns>The model.</returns>
    public static MetaFormer RandFormerS12(int numClasses = 1000, int inChans = 3, double dropPathRate = 0.0, double dropRate = 0.0, Device? device = null, ScalarType? dtype = null)
    {
        Func<int, double, nn.Module<Tensor, Tensor>> id = (_, _) => nn.Identity();
        return new MetaFormer(
            inChans: inChans,
            numClasses: numClasses,
            depths: new[] { 2, 2, 6, 2 },
            dims: new[] { 64, 128, 320, 512 },
            tokenMixers: new[] {
                id,
                id,
                (_, _) => new RandomMixing(196, useNchw: true, device: device, dtype: dtype),
                (_, _) => new RandomMixing(49, useNchw: true, device: device, dtype: dtype),
            },
            normLayers: Repeat(c => new GroupNorm1NoBias(c, device: device, dtype: dtype), 4),
            dropPathRate: dropPathRate,
            dropRate: dropRate,
            useMlpHead: false,
            device: device,
            dtype: dtype);
    }
}
