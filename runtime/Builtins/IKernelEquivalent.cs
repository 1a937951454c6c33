namespace Mix.Runtime.Builtins;

/// <summary>
/// A module generated from a standard-library <c>.mix</c> mixer declared <c>@kernel("name")</c>: it computes exactly
/// what that fused kernel computes (the library's parity tests hold it to the built-in module, ≤ 1e-6 relative), and
/// its children carry the built-in's names (<c>pwconv1</c>, <c>dwconv</c>, ...). The fused dispatch
/// (<c>Mix.Runtime.Fused.KernelModules</c>) recognizes it by <see cref="Kernel"/> as it recognizes the built-in type.
/// </summary>
public interface IKernelEquivalent
{
    /// <summary>The kernel's name: <c>"pooling"</c>, <c>"sepconv"</c>, <c>"global_filter"</c>, <c>"mamba"</c>.</summary>
    string Kernel { get; }

    /// <summary>The instance's .mix parameter <paramref name="name"/> (a long, double, bool or factory), or null.</summary>
    /// <param name="name">The parameter's .mix name, e.g. <c>pool_size</c>.</param>
    object? Argument(string name);
}
