using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// RandFormer token mixer (sail-sg metaformer <c>RandomMixing</c>; not in timm): tokens are mixed by a frozen
/// random row-stochastic matrix <c>random_matrix = softmax(rand(N, N), dim=-1)</c>:
/// <c>out[b, m, c] = Σ_n random_matrix[m, n] · x[b, n, c]</c> with N = H·W.
/// </summary>
/// <remarks>
/// Shape contract: channels last [B, H, W, C] (as sail-sg) when <c>useNchw</c> is false, or [B, C, H, W] when
/// true; the output has the input's shape. H·W must equal <c>numTokens</c>. Key: <c>random_matrix</c>
/// [numTokens, numTokens], a parameter with <c>requires_grad = false</c> (as in sail-sg, so it is in the state dict
/// and in the parameter count).
/// </remarks>
public sealed class RandomMixing : torch.nn.Module<Tensor, Tensor>
{
    private readonly bool _useNchw;

    /// <summary>The frozen mixing matrix [numTokens, numTokens]; each row sums to 1.</summary>
    public Parameter random_matrix;

    /// <summary>Creates a RandomMixing mixer.</summary>
    /// <param name="numTokens">Number of tokens N = H·W (196 for 14x14, 49 for 7x7).</param>
    /// <param name="useNchw">Accept [B, C, H, W] instead of sail-sg's channels-last [B, H, W, C].</param>
    /// <param name="device">Device of the matrix.</param>
    /// <param name="dtype">Element type of the matrix.</param>
    public RandomMixing(int numTokens = 196, bool useNchw = false, Device? device = null, ScalarType? dtype = null)
        : base(nameof(RandomMixing))
    {
        _useNchw = useNchw;
        using (torch.no_grad()) {
            using var r = torch.rand(numTokens, numTokens, dtype: dtype ?? torch.get_default_dtype(), device: device ?? torch.CPU);
            random_matrix = ParameterFactory.From(torch.softmax(r, -1), requiresGrad: false);
        }
        RegisterComponents();
    }

    /// <summary>Mixes the H·W tokens with <c>random_matrix</c>.</summary>
    /// <param name="x">[B, H, W, C] (default) or [B, C, H, W] (<c>useNchw</c>).</param>
    /// <returns>Same shape as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        Tensor y;
        if (_useNchw) {
            long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
            // [B, C, N] @ R^T -> out[b, c, m] = sum_n x[b, c, n] R[m, n]
            y = x.reshape(b, c, h * w).matmul(random_matrix.t()).reshape(b, c, h, w);
        } else {
            long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
            // R [N, N] @ [B, N, C] -> [B, N, C]
            y = random_matrix.matmul(x.reshape(b, h * w, c)).reshape(b, h, w, c);
        }
        return y.MoveToOuterDisposeScope();
    }
}
