using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MLP with GLU-style gating (timm <c>GluMlp</c>): <c>fc1</c> projects to <c>hidden</c> features that are split
/// in two halves <c>x1, x2</c>; the gated result is <c>x1 * act(x2)</c> (<c>gateLast</c>) or <c>act(x1) * x2</c>,
/// followed by <c>drop1 → norm → fc2 → drop2</c>.
/// </summary>
/// <remarks>
/// Shape contract: <c>useConv</c>: [B, in, H, W] → [B, out, H, W] (split along dim 1); otherwise
/// [..., in] → [..., out] (split along the last dim). <c>hidden</c> must be even; fc2 maps hidden/2 → out.
/// Keys: <c>fc1.*</c> [hidden, in(,1,1)], <c>norm.*</c>?, <c>fc2.*</c> [out, hidden/2(,1,1)].
/// </remarks>
public sealed class GluMlp : torch.nn.Module<Tensor, Tensor>
{
    private readonly long _chunkDim;
    private readonly bool _gateLast;

    /// <summary>Projection in → hidden (both halves).</summary>
    public readonly nn.Module<Tensor, Tensor> fc1;

    /// <summary>Gate activation (default Sigmoid).</summary>
    public readonly nn.Module<Tensor, Tensor> act;

    /// <summary>Dropout after gating.</summary>
    public readonly Dropout drop1;

    /// <summary>Optional norm over hidden/2 features (Identity when none).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Projection hidden/2 → out.</summary>
    public readonly nn.Module<Tensor, Tensor> fc2;

    /// <summary>Dropout after fc2.</summary>
    public readonly Dropout drop2;

    /// <summary>Creates a GluMlp.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="hiddenFeatures">Width of fc1's output, both halves together (default: <paramref name="inFeatures"/>); must be even.</param>
    /// <param name="outFeatures">Output features (default: <paramref name="inFeatures"/>).</param>
    /// <param name="actLayer">Gate activation factory (default: Sigmoid).</param>
    /// <param name="normLayer">Factory of a norm over hidden/2 features (default: none).</param>
    /// <param name="bias">Whether fc1 and fc2 have biases.</param>
    /// <param name="drop">Dropout probability of drop1 and drop2.</param>
    /// <param name="useConv">Use 1x1 Conv2d (NCHW) instead of Linear.</param>
    /// <param name="gateLast">Gate with the second half (<c>x1 * act(x2)</c>) when true, else <c>act(x1) * x2</c>.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public GluMlp(
        int inFeatures,
        int? hiddenFeatures = null,
        int? outFeatures = null,
        Func<nn.Module<Tensor, Tensor>>? actLayer = null,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        bool bias = true,
        double drop = 0.0,
        bool useConv = false,
        bool gateLast = true,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(GluMlp))
    {
        int outF = outFeatures ?? inFeatures;
        int hidden = hiddenFeatures ?? inFeatures;
        if (hidden % 2 != 0) throw new ArgumentException($"hiddenFeatures must be even, got {hidden}.", nameof(hiddenFeatures));
        _chunkDim = useConv ? 1 : -1;
        _gateLast = gateLast;
        fc1 = Mlp.Projection(inFeatures, hidden, bias, useConv, device, dtype);
        act = actLayer is null ? nn.Sigmoid() : actLayer();
        drop1 = nn.Dropout(drop);
        norm = normLayer is null ? nn.Identity() : normLayer(hidden / 2);
        fc2 = Mlp.Projection(hidden / 2, outF, bias, useConv, device, dtype);
        drop2 = nn.Dropout(drop);
        RegisterComponents();
    }

    private static Tensor Project(nn.Module<Tensor, Tensor> layer, Tensor x)
        => layer is Conv2d conv ? PointwiseConv.Forward(conv, x) : layer.forward(x);

    /// <summary>Applies the gated MLP.</summary>
    /// <param name="x">[B, in, H, W] when <c>useConv</c>, else [..., in].</param>
    /// <returns>[B, out, H, W] when <c>useConv</c>, else [..., out].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = Project(fc1, x);
        var halves = h.chunk(2, _chunkDim);
        var gated = _gateLast ? halves[0] * act.forward(halves[1]) : act.forward(halves[0]) * halves[1];
        gated = drop1.forward(gated);
        gated = norm.forward(gated);
        var y = Project(fc2, gated);
        y = drop2.forward(y);
        return y.MoveToOuterDisposeScope();
    }
}
