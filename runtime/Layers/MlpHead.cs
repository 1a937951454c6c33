using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// MLP classification head (timm metaformer <c>MlpHead</c>): <c>fc1 → act → norm → head_drop → fc2</c>,
/// with act = SquaredReLU and norm = LayerNorm(eps 1e-6) by default.
/// </summary>
/// <remarks>
/// Shape contract: [B, dim] → [B, numClasses] (any leading dims work). Keys: <c>fc1.weight</c>
/// [mlpRatio·dim, dim], <c>fc1.bias</c>, <c>norm.weight</c>, <c>norm.bias</c> [mlpRatio·dim], <c>fc2.weight</c>
/// [numClasses, mlpRatio·dim], <c>fc2.bias</c>.
/// </remarks>
public sealed class MlpHead : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>Projection dim → hidden.</summary>
    public readonly Linear fc1;

    /// <summary>Activation (default SquaredReLU).</summary>
    public readonly nn.Module<Tensor, Tensor> act;

    /// <summary>Norm over the hidden features (default LayerNorm with weight and bias, eps 1e-6).</summary>
    public readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>Projection hidden → numClasses.</summary>
    public readonly Linear fc2;

    /// <summary>Dropout applied before fc2.</summary>
    public readonly Dropout head_drop;

    /// <summary>Creates an MlpHead.</summary>
    /// <param name="dim">Input features.</param>
    /// <param name="numClasses">Output classes.</param>
    /// <param name="mlpRatio">Hidden width as a multiple of <paramref name="dim"/> (truncated to an integer).</param>
    /// <param name="actLayer">Activation factory (default: SquaredReLU).</param>
    /// <param name="normLayer">Norm factory, given the hidden width (default: LayerNorm, eps 1e-6).</param>
    /// <param name="dropRate">Dropout probability before fc2.</param>
    /// <param name="bias">Whether fc1 and fc2 have biases.</param>
    /// <param name="device">Device of the parameters.</param>
    /// <param name="dtype">Element type of the parameters.</param>
    public MlpHead(
        int dim,
        int numClasses = 1000,
        double mlpRatio = 4,
        Func<nn.Module<Tensor, Tensor>>? actLayer = null,
        Func<int, nn.Module<Tensor, Tensor>>? normLayer = null,
        double dropRate = 0.0,
        bool bias = true,
        Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(MlpHead))
    {
        int hidden = (int)(mlpRatio * dim);
        fc1 = nn.Linear(dim, hidden, hasBias: bias, device: device, dtype: dtype);
        act = actLayer is null ? new SquaredReLU() : actLayer();
        norm = normLayer is null ? nn.LayerNorm(hidden, eps: 1e-6, device: device, dtype: dtype) : normLayer(hidden);
        fc2 = nn.Linear(hidden, numClasses, hasBias: bias, device: device, dtype: dtype);
        head_drop = nn.Dropout(dropRate);
        RegisterComponents();
    }

    /// <summary>Applies the head.</summary>
    /// <param name="x">[B, dim].</param>
    /// <returns>[B, numClasses].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = act.forward(fc1.forward(x));
        h = norm.forward(h);
        h = head_drop.forward(h);
        var y = fc2.forward(h);
        return y.MoveToOuterDisposeScope();
    }
}
