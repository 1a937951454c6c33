using System;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Argument list of one kernel launch: each value is copied into an 8-byte slot of unmanaged memory and
    /// <see cref="Pointers"/> is the <c>void**</c> array <c>cuLaunchKernel</c> takes. Tensors are checked (device,
    /// dtype, contiguity) as they are added; the caller keeps them alive until the launch has been queued.
    /// </summary>
    public sealed unsafe class KernelArguments : IDisposable
    {
        private const int MaxArgs = 48;
        private readonly long* _slots;
        private readonly void** _pointers;
        private int _count;
        private System.Collections.Generic.List<IntPtr>? _blocks;

        /// <summary>The CUDA device ordinal every tensor argument must be on.</summary>
        public int Device { get; }

        /// <summary>Creates an empty list for device <paramref name="device"/>.</summary>
        /// <param name="device">CUDA device ordinal.</param>
        public KernelArguments(int device)
        {
            Device = device;
            _slots = (long*)NativeMemory.AllocZeroed((nuint)(MaxArgs * sizeof(long)));
            _pointers = (void**)NativeMemory.AllocZeroed((nuint)(MaxArgs * sizeof(void*)));
        }

        /// <summary>Number of arguments added.</summary>
        public int Count => _count;

        /// <summary>The <c>void**</c> parameter array.</summary>
        public void** Pointers => _pointers;

        private long* Next()
        {
            if (_count >= MaxArgs) throw new InvalidOperationException("too many kernel arguments");
            var slot = _slots + _count;
            *slot = 0;
            _pointers[_count] = slot;
            _count++;
            return slot;
        }

        /// <summary>Adds a tensor's device pointer (checked: contiguous, <paramref name="dtype"/>, this device).</summary>
        /// <param name="t">The tensor.</param>
        /// <param name="dtype">Required dtype.</param>
        /// <param name="what">Name for error messages.</param>
        public KernelArguments Add(Tensor t, ScalarType dtype, string what)
        {
            *(IntPtr*)Next() = TensorPointers.Get(t, dtype, Device, what);
            return this;
        }

        /// <summary>Adds the pointer of a tensor the caller knows to be dense (any dimension order; see <see cref="TensorPointers.GetDense"/>).</summary>
        /// <param name="t">The tensor.</param>
        /// <param name="dtype">Required dtype.</param>
        /// <param name="what">Name for error messages.</param>
        public KernelArguments AddDense(Tensor t, ScalarType dtype, string what)
        {
            *(IntPtr*)Next() = TensorPointers.GetDense(t, dtype, Device, what);
            return this;
        }

        /// <summary>Adds an optional tensor: its pointer, or a null pointer.</summary>
        /// <param name="t">The tensor or null.</param>
        /// <param name="dtype">Required dtype.</param>
        /// <param name="what">Name for error messages.</param>
        public KernelArguments AddOptional(Tensor? t, ScalarType dtype, string what)
        {
            var p = t is null ? IntPtr.Zero : TensorPointers.Get(t, dtype, Device, what);
            *(IntPtr*)Next() = p;
            return this;
        }

        /// <summary>Adds a 32-bit integer.</summary>
        /// <param name="value">Value.</param>
        public KernelArguments Add(int value) { *(int*)Next() = value; return this; }

        /// <summary>Adds a 64-bit integer.</summary>
        /// <param name="value">Value.</param>
        public KernelArguments Add(long value) { *Next() = value; return this; }

        /// <summary>Adds a 32-bit float.</summary>
        /// <param name="value">Value.</param>
        public KernelArguments Add(float value) { *(float*)Next() = value; return this; }

        /// <summary>Adds a struct passed by value (a kernel parameter of a struct type; its layout must match the kernel's).</summary>
        /// <param name="value">The struct.</param>
        public KernelArguments AddBlock<T>(in T value) where T : unmanaged
        {
            if (_count >= MaxArgs) throw new InvalidOperationException("too many kernel arguments");
            var p = (T*)NativeMemory.Alloc((nuint)sizeof(T));
            *p = value;
            (_blocks ??= new()).Add((IntPtr)p);
            _pointers[_count++] = p;
            return this;
        }

        /// <inheritdoc />
        public void Dispose()
        {
            if (_blocks is not null) foreach (var b in _blocks) NativeMemory.Free((void*)b);
            _blocks = null;
            NativeMemory.Free(_slots);
            NativeMemory.Free(_pointers);
            GC.SuppressFinalize(this);
        }
    }
}
