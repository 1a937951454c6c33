namespace Mix.Runtime.Fused
{
    /// <summary>Activation of the fused bias + activation epilogue.</summary>
    public enum FusedActivation
    {
        /// <summary>Identity (bias add only).</summary>
        None = 0,

        /// <summary>Exact GELU, <c>0.5·x·(1 + erf(x/√2))</c>.</summary>
        Gelu = 1,

        /// <summary>StarReLU (MetaFormer), <c>s·relu(x)² + b</c> with scalar learnable <c>s</c>, <c>b</c>.</summary>
        StarReLU = 2,

        /// <summary>Squared ReLU, <c>relu(x)²</c>.</summary>
        SquaredReLU = 3,
    }
}
