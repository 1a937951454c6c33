using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// One MetaFormer stage (timm metaformer <c>MetaFormerStage</c>): an optional <see cref="Downsampling"/>
/// (3x3, stride 2, padding 1; Identity when <c>inChs == outChs</c>) followed by <c>depth</c>
/// <see cref="MetaFormerBlock"/>s in a Sequential named <c>blocks</c> ("0", "1", ...).
/// For attention stages (<c>useNchw</c> false) the feature map is flattened to tokens
/// [B, H·W, C] before the blocks and folded back afterwards, as timm does.
/// </summary>
/// <remarks>
/// Shape contract: [B, inChs, H, W] → [B, outChs, H', W'] (H' = ceil(H / 2) when downsampling, else H).
/// Keys: <c>downsample.norm.*</c>?, <c>downsample.conv.weight</c>, <c>downsample.conv.bias</c> (absent when
/// inChs == outChs), <c>blocks.{i}.*</c>.
/// </remarks>
public sealed class MetaFormerStage : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Whether the blocks run on NCHW maps (true) or on [B, N, C] tokens (false).</summary>
    public bool UseNchw { get; }

    /// <summary>Downsampling layer, or Identity when inChs == outChs.</summary>
    public readonly nn.Module<Tensor, Tensor> downsample;

    /// <summary>The blocks, named "0" … "depth-1".</summary>
    public readonly Sequential blocks;

    /// <summary>Creates a MetaFormer stage.</summary>
    /// <param name="inChs">Input channels.</param>
    /// <param name="outChs">Output channels (the blocks' dim).</param>
    /// <param name="depth">Number of blocks.</param>
    /// <param name="tokenMixer">Token-mixer factory, called once per block as <c>tokenMixer(outChs, projDrop)</c> (default: Identity, as timm).</param>
    /// <param name="mlpAct">MLP activation factory (default: <see cref="StarReLU"/>).</param>
    /// <param name="mlpBias">Whether MLP projections have biases.</param>
    /// <param name="downsampleNorm">Norm factory for the downsampling input (default: <see cref="LayerNorm2d"/>, as timm; pass <c>_ =&gt; nn.Identity()</c> for timm's None).</param>
    /// <param name="normLayer">Block norm factory (default: <see cref="LayerNorm2d"/>).</param>
    /// <param name="projDrop">MLP / mixer projection dropout.</param>
    /// <param name="dpRates">Per-block drop-path rates (default: all 0); length must be <paramref name="depth"/>.</param>
    /// <param name="layerScaleInitValue">Layer-scale init value, or null for none.</param>
    /// <param name="resScaleInitValue">Res-scale init value, or null for none.</param>
    /// <param name="useNchw">NCHW blocks or token blocks; null (default) infers it as timm does: tokens iff the mixer is an <see cref="Attention"/>.</param>
    /// <param name="device">Device of the parameters made here.</param>
    /// <param name="dtype">Element type of the parameters made here.</param>
    public MetaFormerStage(
        int inChs,
        int outChs,
        int depth = 2,
        Func<int, double, nn.Module<Tensor, Tensor>>? tokenMixer = null,
        Func<nn.Module<Tensor, Tensor>>? mlpAct = null,
        bool mlpBias = false,
        Func<int, nn.Module<Tensor, Tensor>>? downsampleNorm = null,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        double projDrop = 0.0,
        IReadOnlyList<double>? dpRates = null,
        double? layerScaleInitValue = null,
        double? resScaleInitValue = null,
        bool? useNchw = null,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(MetaFormerStage))
    {
        if (dpRates is not null && dpRates.Count != depth)
            throw new ArgumentException($"dpRates has {dpRates.Count} entries, expected depth = {depth}.", nameof(dpRates));
        Func<int, double, nn.Module<Tensor, Tensor>> mixerFactory = tokenMixer ?? ((_, _) => nn.Identity());

        // Build the mixers first so the layout can be inferred from the actual mixer type (timm: issubclass(token_mixer, Attention)).
        var mixers = Enumerable.Range(0, depth).Select(_ => mixerFactory(outChs, projDrop)).ToArray();
        UseNchw = useNchw ?? !(mixers.Length > 0 && mixers[0] is Attention);

        downsample = inChs == outChs
            ? nn.Identity()
            : new Downsampling(inChs, outChs, kernelSize: 3, stride: 2, padding: 1,
                normLayer: downsampleNorm ?? (c => new LayerNorm2d(c, device: device, dtype: dtype)),
                device: device, dtype: dtype);

        var list = new (string, nn.Module<Tensor, Tensor>)[depth];
        for (int i = 0; i < depth; i++) {
            var mixer = mixers[i];
            list[i] = (i.ToString(System.Globalization.CultureInfo.InvariantCulture), new MetaFormerBlock(
                outChs,
                tokenMixer: (_, _) => mixer,
                mlpAct: mlpAct,
                mlpBias: mlpBias,
                normLayer: normLayer,
                projDrop: projDrop,
                dropPath: dpRates?[i] ?? 0.0,
                useNchw: UseNchw,
                layerScaleInitValue: layerScaleInitValue,
                resScaleInitValue: resScaleInitValue,
                device: device,
                dtype: dtype));
        }
        blocks = nn.Sequential(list);
        RegisterComponents();
    }

    /// <summary>Downsamples, then runs the blocks (as tokens for attention stages).</summary>
    /// <param name="x">[B, inChs, H, W].</param>
    /// <returns>[B, outChs, H', W'].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = downsample.forward(x);
        Tensor y;
        if (UseNchw) {
            y = blocks.forward(h);
        } else {
            long b = h.shape[0], c = h.shape[1], hh = h.shape[2], ww = h.shape[3];
            var tokens = h.reshape(b, c, -1).transpose(1, 2);
            y = blocks.forward(tokens).transpose(1, 2).reshape(b, c, hh, ww);
        }
        return y.MoveToOuterDisposeScope();
    }
}
