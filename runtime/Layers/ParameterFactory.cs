using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime;

/// <summary>
/// Helpers that create <see cref="Parameter"/>s owned by their module rather than by any enclosing
/// dispose scope, so modules may be constructed inside <c>torch.NewDisposeScope()</c>.
/// </summary>
internal static class ParameterFactory
{
    /// <summary>A parameter of the given shape filled with <paramref name="value"/>.</summary>
    public static Parameter Full(long[] shape, double value, bool requiresGrad, Device? device, ScalarType? dtype)
    {
        using var noGrad = torch.no_grad();
        var t = torch.full(shape, value, dtype: dtype ?? torch.get_default_dtype(), device: device ?? torch.CPU);
        var p = new Parameter(t, requiresGrad);
        p.DetachFromDisposeScope();
        return p;
    }

    /// <summary>Wraps an existing tensor (consumed) as a parameter.</summary>
    public static Parameter From(Tensor data, bool requiresGrad)
    {
        var p = new Parameter(data, requiresGrad);
        p.DetachFromDisposeScope();
        return p;
    }
}
