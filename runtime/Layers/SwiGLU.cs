using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// SwiGLU MLP with separate gate and value projections (timm <c>SwiGLU</c>):
/// <c>y = drop2(fc2(norm(drop1(act(fc1_g(x)) * fc1_x(x)))))</c>, act defaulting to SiLU.
/// </summary>
/// <remarks>
/// Shape contract: [..., in] → [..., out]. Keys: <c>fc1_g.*</c> [hidden, in], <c>fc1_x.*</c> [hidden, in],
/// <c>norm.*</c>?, <c>fc2.*</c> [out, hidden]. The projections are typed as modules (they are <see cref="Linear"/>s when
/// built) so that weight quantization can swap them for quantized layers.
/// </remarks>
public sealed class SwiGLU : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Gate projection in → hidden.</summary>
    public readonly nn.Module<Tensor, Tensor> fc1_g;

    /// <summary>Value projection in → hidden.</summary>
    public readonly nn.Module<Tensor, Tensor> fc1_x;

    /// <summary>Gate activation (default SiLU).</summary>
    public readonly nn.Module<Tensor, Tensor> act;

    /// <summary>Dropout after gating.</summary>
    public readonly Dropout drop1;

    /// <summary>Optional norm over the hidden features (Identity when none).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Output projection hidden → out.</summary>
    public readonly nn.Module<Tensor, Tensor> fc2;

    /// <summary>Dropout after fc2.</summary>
    public readonly Dropout drop2;

    /// <summary>Creates a SwiGLU.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="hiddenFeatures">Hidden features (default: <paramref name="inFeatures"/>).</param>
    /// <param name="outFeatures">Output features (default: <paramref name="inFeatures"/>).</param>
    /// <param name="actLayer">Gate activation factory (default: SiLU).</param>
    /// <param name="normLayer">Factory of a norm over the hidden features (default: none).</param>
    /// <param name="bias">Whether the projections have biases.</param>
    /// <param name="drop">Dropout probability of drop1 and drop2.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public SwiGLU(
        int inFeatures,
        int? hiddenFeatures = null,
        int? outFeatures = null,
        Func<nn.Module<Tensor, Tensor>>? actLayer = null,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        bool bias = true,
        double drop = 0.0,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(SwiGLU))
    {
        int outF = outFeatures ?? inFeatures;
        int hidden = hiddenFeatures ?? inFeatures;
        fc1_g = nn.Linear(inFeatures, hidden, hasBias: bias, device: device, dtype: dtype);
        fc1_x = nn.Linear(inFeatures, hidden, hasBias: bias, device: device, dtype: dtype);
        act = actLayer is null ? nn.SiLU() : actLayer();
        drop1 = nn.Dropout(drop);
        norm = normLayer is null ? nn.Identity() : normLayer(hidden);
        fc2 = nn.Linear(hidden, outF, hasBias: bias, device: device, dtype: dtype);
        drop2 = nn.Dropout(drop);
        RegisterComponents();
    }

    /// <summary>Applies the SwiGLU MLP.</summary>
    /// <param name="x">[..., in].</param>
    /// <returns>[..., out].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = act.forward(fc1_g.forward(x)) * fc1_x.forward(x);
        h = drop1.forward(h);
        h = norm.forward(h);
        var y = drop2.forward(fc2.forward(h));
        return y.MoveToOuterDisposeScope();
    }
}
