using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Two-layer MLP as in ViT / MetaFormer (timm <c>Mlp</c>): <c>fc1 → act → drop1 → norm → fc2 → drop2</c>.
/// With <c>useConv</c> the two projections are 1x1 <c>Conv2d</c>s acting on NCHW input
/// (so <c>fc1.weight</c> is [hidden, in, 1, 1]); otherwise they are <c>Linear</c>s acting on the last dim.
/// </summary>
/// <remarks>
/// Shape contract: <c>useConv</c>: [B, in, H, W] → [B, out, H, W]; otherwise [..., in] → [..., out].
/// Keys: <c>fc1.weight</c>, <c>fc1.bias</c>?, <c>act.*</c> (if the activation has parameters, e.g. StarReLU),
/// <c>norm.*</c>?, <c>fc2.weight</c>, <c>fc2.bias</c>?.
/// </remarks>
public sealed class Mlp : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>First projection, in → hidden (Linear or 1x1 Conv2d).</summary>
    public readonly nn.Module<Tensor, Tensor> fc1;

    /// <summary>Activation (default GELU).</summary>
    public readonly nn.Module<Tensor, Tensor> act;

    /// <summary>Dropout after the activation.</summary>
    public readonly Dropout drop1;

    /// <summary>Optional norm on the hidden features (Identity when none).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Second projection, hidden → out (Linear or 1x1 Conv2d).</summary>
    public readonly nn.Module<Tensor, Tensor> fc2;

    /// <summary>Dropout after the second projection.</summary>
    public readonly Dropout drop2;

    /// <summary>Creates an Mlp.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="hiddenFeatures">Hidden features (default: <paramref name="inFeatures"/>).</param>
    /// <param name="outFeatures">Output features (default: <paramref name="inFeatures"/>).</param>
    /// <param name="actLayer">Activation factory (default: exact GELU).</param>
    /// <param name="normLayer">Factory of a norm over the hidden features, given their count (default: none).</param>
    /// <param name="bias">Whether fc1 and fc2 have biases.</param>
    /// <param name="drop">Dropout probability of drop1 and drop2.</param>
    /// <param name="useConv">Use 1x1 Conv2d (NCHW) instead of Linear (channels last).</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public Mlp(
        int inFeatures,
        int? hiddenFeatures = null,
        int? outFeatures = null,
        Func<nn.Module<Tensor, Tensor>>? actLayer = null,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        bool bias = true,
        double drop = 0.0,
        bool useConv = false,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(Mlp))
    {
        int outF = outFeatures ?? inFeatures;
        int hidden = hiddenFeatures ?? inFeatures;
        fc1 = Projection(inFeatures, hidden, bias, useConv, device, dtype);
        act = actLayer is null ? nn.GELU() : actLayer();
        drop1 = nn.Dropout(drop);
        norm = normLayer is null ? nn.Identity() : normLayer(hidden);
        fc2 = Projection(hidden, outF, bias, useConv, device, dtype);
        drop2 = nn.Dropout(drop);
        RegisterComponents();
    }

    internal static nn.Module<Tensor, Tensor> Projection(int inF, int outF, bool bias, bool useConv, Device? device, ScalarType? dtype)
        => useConv
            ? nn.Conv2d(inF, outF, 1, bias: bias, device: device, dtype: dtype)
            : nn.Linear(inF, outF, hasBias: bias, device: device, dtype: dtype);

    private static Tensor Project(nn.Module<Tensor, Tensor> layer, Tensor x)
        => layer is Conv2d conv ? PointwiseConv.Forward(conv, x) : layer.forward(x);

    /// <summary>Applies the MLP.</summary>
    /// <param name="x">[B, in, H, W] when <c>useConv</c>, else [..., in].</param>
    /// <returns>[B, out, H, W] when <c>useConv</c>, else [..., out].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = Project(fc1, x);
        h = act.forward(h);
        h = drop1.forward(h);
        h = norm.forward(h);
        h = Project(fc2, h);
        h = drop2.forward(h);
        return h.MoveToOuterDisposeScope();
    }
}
