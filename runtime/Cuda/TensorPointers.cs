using System;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Device pointers of TorchSharp tensors, through <c>THSTensor_data</c> exported by LibTorchSharp (the pointer
    /// includes the storage offset). Every call checks device, dtype and contiguity; pointers are never cached.
    /// </summary>
    public static class TensorPointers
    {
        [DllImport("LibTorchSharp")]
        private static extern IntPtr THSTensor_data(IntPtr handle);

        /// <summary>
        /// The data pointer of <paramref name="t"/> after checking that it is a contiguous CUDA tensor on device
        /// <paramref name="device"/> with dtype <paramref name="dtype"/>.
        /// </summary>
        /// <param name="t">The tensor.</param>
        /// <param name="dtype">Required dtype.</param>
        /// <param name="device">Required CUDA device ordinal.</param>
        /// <param name="what">Argument name for messages.</param>
        public static IntPtr Get(Tensor t, ScalarType dtype, int device, string what)
        {
            ArgumentNullException.ThrowIfNull(t);
            if (t.device_type != DeviceType.CUDA || t.device_index != device)
                throw new ArgumentException($"{what} must be on cuda:{device}, is on {t.device}", what);
            if (t.dtype != dtype) throw new ArgumentException($"{what} must be {dtype}, is {t.dtype}", what);
            if (!t.is_contiguous()) throw new ArgumentException($"{what} must be contiguous", what);
            var p = THSTensor_data(t.Handle);
            if (p == IntPtr.Zero && t.numel() > 0) throw new ArgumentException($"{what} has no storage", what);
            return p;
        }

        // The data address with no checks: identifies which buffer a tensor is (what a recorded graph reads or writes).
        internal static IntPtr Address(Tensor t) => THSTensor_data(t.Handle);

        /// <summary>
        /// The data pointer of a dense tensor in any dimension order (channels-last, say): device and dtype are checked,
        /// density is the caller's promise (kernels then walk its memory order).
        /// </summary>
        /// <param name="t">The tensor.</param>
        /// <param name="dtype">Required dtype.</param>
        /// <param name="device">Required CUDA device ordinal.</param>
        /// <param name="what">Argument name for messages.</param>
        public static IntPtr GetDense(Tensor t, ScalarType dtype, int device, string what)
        {
            ArgumentNullException.ThrowIfNull(t);
            if (t.device_type != DeviceType.CUDA || t.device_index != device)
                throw new ArgumentException($"{what} must be on cuda:{device}, is on {t.device}", what);
            if (t.dtype != dtype) throw new ArgumentException($"{what} must be {dtype}, is {t.dtype}", what);
            var p = THSTensor_data(t.Handle);
            if (p == IntPtr.Zero && t.numel() > 0) throw new ArgumentException($"{what} has no storage", what);
            return p;
        }
    }
}
