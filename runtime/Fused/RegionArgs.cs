using System.Runtime.InteropServices;

namespace Mix.Runtime.Fused
{
    /// <summary>The argument block of a fused region's kernel, passed by value; the layout of <c>mix_args</c> in
    /// <see cref="RegionKernelSources.Head"/> (840 bytes; the kernel's <c>static_assert</c> checks the same size).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct RegionArgs
    {
        public const int MaxInputs = 8, MaxDims = 8, MaxScalars = 8;

        public fixed long In[MaxInputs];
        public long Out;
        public long N;
        public long RowLen;
        public fixed long Size[MaxDims];
        public fixed long Stride[(MaxInputs + 1) * MaxDims];
        public fixed long AxisStride[MaxInputs + 1];
        public int NDim;
        public int Split;
        public fixed float S[MaxScalars];
    }
}
