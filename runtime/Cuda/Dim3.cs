namespace Mix.Runtime.Cuda
{
    /// <summary>A CUDA grid or block size.</summary>
    /// <param name="X">Extent in x.</param>
    /// <param name="Y">Extent in y.</param>
    /// <param name="Z">Extent in z.</param>
    public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1);
}
