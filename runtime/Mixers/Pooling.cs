using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// PoolFormer token mixer (timm metaformer <c>Pooling</c>): <c>avgpool(x) - x</c> with a <c>poolSize</c> window,
/// stride 1, padding <c>poolSize / 2</c> and <c>count_include_pad = false</c> (border averages only count real
/// positions).
/// </summary>
/// <remarks>Shape contract: [B, C, H, W] in, the same shape out (odd <c>poolSize</c>). No parameters.</remarks>
public sealed class Pooling : torch.nn.Module<Tensor, Tensor>
{
    /// <summary>The average pooling (mirrors timm's <c>pool</c> submodule).</summary>
    public readonly AvgPool2d pool;

    /// <summary>The pooling window.</summary>
    public int PoolSize { get; }

    /// <summary>Creates a Pooling mixer.</summary>
    /// <param name="poolSize">Pooling window (odd keeps the spatial size).</param>
    public Pooling(int poolSize = 3) : base(nameof(Pooling))
    {
        PoolSize = poolSize;
        pool = nn.AvgPool2d(poolSize, stride: 1, padding: poolSize / 2, count_include_pad: false);
        RegisterComponents();
    }

    /// <summary>Returns <c>avgpool(x) - x</c>.</summary>
    /// <param name="x">[B, C, H, W].</param>
    /// <returns>[B, C, H, W].</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = pool.forward(x) - x;
        return y.MoveToOuterDisposeScope();
    }
}
