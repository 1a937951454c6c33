using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MambaOut's Gated CNN block (yuweihao/MambaOut <c>GatedCNNBlock</c>), channels last:
/// <code>
/// g, i, c = split(fc1(norm(x)), [hidden, hidden - convChannels, convChannels], dim=-1)
/// c = dwconv_kxk(c)                       // depthwise, on NCHW-permuted c, padding k/2
/// y = x + drop_path(fc2(act(g) * cat(i, c)))
/// </code>
/// with hidden = (int)(expansionRatio·dim) and convChannels = (int)(convRatio·dim).
/// </summary>
/// <remarks>
/// Shape contract: [B, H, W, dim] in and out. Keys: <c>norm.weight</c>, <c>norm.bias</c> [dim] (default
/// LayerNorm, eps 1e-6), <c>fc1.weight</c> [2·hidden, dim], <c>fc1.bias</c>, <c>conv.weight</c>
/// [convChannels, 1, k, k], <c>conv.bias</c>, <c>fc2.weight</c> [dim, hidden], <c>fc2.bias</c>.
/// </remarks>
public sealed class GatedCnnBlock : torch.nn.Module<Tensor, Tensor>
{
    private readonly long[] _splitSizes;

    /// <summary>Norm over the channels (default LayerNorm, eps 1e-6).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Projection dim → 2·hidden (gate, identity part, conv part).</summary>
    public readonly Linear fc1;

    /// <summary>Gate activation (default GELU).</summary>
    public readonly nn.Module<Tensor, Tensor> act;

    /// <summary>Depthwise convolution on the conv part.</summary>
    public readonly Conv2d conv;

    /// <summary>Projection hidden → dim.</summary>
    public readonly Linear fc2;

    /// <summary>Stochastic depth on the residual branch (Identity when dropPath = 0).</summary>
    public readonly nn.Module<Tensor, Tensor> drop_path;

    /// <summary>Creates a Gated CNN block.</summary>
    /// <param name="dim">Channels.</param>
    /// <param name="expansionRatio">hidden = (int)(expansionRatio·dim) (MambaOut spells it <c>expension_ratio</c> in older versions).</param>
    /// <param name="kernelSize">Depthwise kernel size (padding kernelSize / 2).</param>
    /// <param name="convRatio">Fraction of channels that go through the depthwise conv.</param>
    /// <param name="normLayer">Norm factory, given <paramref name="dim"/> (default: LayerNorm, eps 1e-6).</param>
    /// <param name="actLayer">Activation factory (default: GELU).</param>
    /// <param name="dropPath">Stochastic-depth probability.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public GatedCnnBlock(
        int dim,
        double expansionRatio = 8.0 / 3.0,
        int kernelSize = 7,
        double convRatio = 1.0,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        Func<nn.Module<Tensor, Tensor>>? actLayer = null,
        double dropPath = 0.0,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(GatedCnnBlock))
    {
        int hidden = (int)(expansionRatio * dim);
        int convChannels = (int)(convRatio * dim);
        if (convChannels > hidden) throw new ArgumentException("convRatio·dim must not exceed expansionRatio·dim.", nameof(convRatio));
        _splitSizes = new long[] { hidden, hidden - convChannels, convChannels };
        norm = normLayer is null ? nn.LayerNorm(dim, eps: 1e-6, device: device, dtype: dtype) : normLayer(dim);
        fc1 = nn.Linear(dim, hidden * 2, device: device, dtype: dtype);
        act = actLayer is null ? nn.GELU() : actLayer();
        conv = nn.Conv2d(convChannels, convChannels, kernelSize, padding: kernelSize / 2, groups: convChannels, device: device, dtype: dtype);
        fc2 = nn.Linear(hidden, dim, device: device, dtype: dtype);
        drop_path = dropPath > 0.0 ? new DropPath(dropPath) : nn.Identity();
        RegisterComponents();
    }

    /// <summary>Applies the gated block with its residual.</summary>
    /// <param name="x">[B, H, W, dim].</param>
    /// <returns>[B, H, W, dim].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var parts = fc1.forward(norm.forward(x)).split(_splitSizes, -1);
        var g = parts[0];
        var i = parts[1];
        var c = conv.forward(parts[2].permute(0, 3, 1, 2)).permute(0, 2, 3, 1);
        var h = fc2.forward(act.forward(g) * torch.cat(new[] { i, c }, -1));
        var y = drop_path.forward(h) + x;
        return y.MoveToOuterDisposeScope();
    }
}
