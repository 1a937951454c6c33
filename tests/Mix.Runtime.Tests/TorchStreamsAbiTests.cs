using System;
using System.IO;
using System.Runtime.InteropServices;
using Mix.Runtime.Cuda;
using Mix.Tests.Shared;
using Xunit;

namespace Mix.Runtime.Tests;

/// <summary>
/// <see cref="TorchStreams"/> binds c10's C++ stream functions by their mangled names and passes
/// <c>c10::cuda::CUDAStream</c> by value as two registers. Checked without libtorch: a stand-in library built by g++
/// from the same declarations (the namespaces, <c>DeviceIndex = int8_t</c>, a 16-byte trivially copyable stream value
/// with constructors of its own, as c10's) exports the same symbols; setting a stream through the binding and restoring
/// the previous one must arrive there intact (the stream pointer as the id, the device index, the device type). The
/// real library is exercised on the GPU host by the decoding-graph tests.
/// </summary>
public class TorchStreamsAbiTests
{
    private const string StandIn = """
#include <cstdint>
struct CUstream_st;
namespace c10 {
using DeviceIndex = int8_t;
using StreamId = int64_t;
enum class DeviceType : int8_t { CPU = 0, CUDA = 1 };
class Device { public: Device(DeviceType t, DeviceIndex i) : type_(t), index_(i) {} DeviceType type_; DeviceIndex index_; };
class Stream { public: Stream(Device d, StreamId id) : device_(d), id_(id) {} Device device_; StreamId id_; };
namespace cuda {
class CUDAStream { public: explicit CUDAStream(Stream s) : stream_(s) {} Stream stream_; };
static thread_local CUDAStream current(Stream(Device(DeviceType::CUDA, 0), 0));
CUDAStream getStreamFromExternal(CUstream_st* s, DeviceIndex d) { return CUDAStream(Stream(Device(DeviceType::CUDA, d), (StreamId)(intptr_t)s)); }
void setCurrentCUDAStream(CUDAStream s) { current = s; }
CUDAStream getCurrentCUDAStream(DeviceIndex d) { (void)d; return current; }
}}
extern "C" int64_t standin_id() { return c10::cuda::current.stream_.id_; }
extern "C" int standin_device() { return c10::cuda::current.stream_.device_.index_; }
extern "C" int standin_type() { return (int)c10::cuda::current.stream_.device_.type_; }
""";

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate long LongGetter();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int IntGetter();

    [Fact]
    public void A_stream_set_and_restored_through_the_binding_arrives_intact()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64, "the binding is for x86-64 Linux");
        var gxx = CudaThreadEmulation.FindGxx();
        Assert.SkipWhen(gxx is null, "g++ is not installed");
        var dir = Directory.CreateTempSubdirectory("mix-c10").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "c10.cpp"), StandIn);
            var (cc, output) = CudaThreadEmulation.Run(gxx!, "-std=c++17 -O2 -shared -fPIC c10.cpp -o libc10_standin.so", dir);
            Assert.True(cc == 0, output);
            var path = Path.Combine(dir, "libc10_standin.so");
            var streams = TorchStreams.TryLoadFrom(path, out var error);
            Assert.True(streams is not null, error);
            Assert.Equal("c10::cuda::setCurrentCUDAStream", streams!.Binding);
            var lib = NativeLibrary.Load(path);
            var id = Marshal.GetDelegateForFunctionPointer<LongGetter>(NativeLibrary.GetExport(lib, "standin_id"));
            var device = Marshal.GetDelegateForFunctionPointer<IntGetter>(NativeLibrary.GetExport(lib, "standin_device"));
            var type = Marshal.GetDelegateForFunctionPointer<IntGetter>(NativeLibrary.GetExport(lib, "standin_type"));

            var previous = streams.Use(new IntPtr(0x7f12_3456_7890), 3);
            Assert.Equal(0x7f12_3456_7890L, id());
            Assert.Equal(3, device());
            Assert.Equal(1, type());
            // the previous stream came back as a value that restores exactly
            streams.Restore(previous);
            Assert.Equal(0L, id());
            Assert.Equal(0, device());
            Assert.Equal(1, type());
            // nested: a second stream over the first, restored in order
            var first = streams.Use(new IntPtr(0x1000), 1);
            var second = streams.Use(new IntPtr(0x2000), 1);
            Assert.Equal(0x2000L, id());
            streams.Restore(second);
            Assert.Equal(0x1000L, id());
            streams.Restore(first);
            Assert.Equal(0L, id());
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
