using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Mix.Runtime.Cuda;
using Xunit;

namespace Mix.Runtime.Tests;

/// <summary>Kernel-cache entries that are not regular files, or whose size is wrong, are misses that are never read
/// (a link to /dev/zero used to be read until memory ran out; a FIFO blocked). CPU only: the cache needs no GPU.</summary>
public sealed class KernelDiskCacheEntryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mix-kentry-" + Guid.NewGuid().ToString("N"));
    private readonly KernelDiskCache _cache;
    private readonly byte[] _key = KernelCacheKey.Compute("src", new[] { "-DMIX_T=0" }, "sm_90a", "13.0");
    private readonly byte[] _payload = Enumerable.Range(0, 5000).Select(i => (byte)(i * 13)).ToArray();

    public KernelDiskCacheEntryTests()
    {
        Directory.CreateDirectory(_dir);
        _cache = new KernelDiskCache(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>TryLoad and the bytes it allocated (on its own thread: tests run in parallel), failing the test
    /// (instead of hanging the host) if it blocks.</summary>
    private (byte[]? payload, long allocated) LoadWithin20s(string entry)
    {
        var load = Task.Run(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var payload = _cache.TryLoad(_key);
            return (payload, GC.GetAllocatedBytesForCurrentThread() - before);
        });
        if (!((IAsyncResult)load).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(20)))
        {
            using (new FileStream(entry, FileMode.Open, FileAccess.Write)) { }   // pair with a reader stuck on a FIFO
            Assert.Fail("TryLoad blocked");
        }
        return load.Result;
    }

    [Fact]
    public void AFifoEntryIsAMissAndTheNextStoreReplacesIt()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "named pipes made with mkfifo are tested on Linux");
        var entry = _cache.PathFor(_key);
        using (var mk = Process.Start("mkfifo", entry)) mk.WaitForExit();
        Assert.True(File.Exists(entry));
        Assert.Null(LoadWithin20s(entry).payload);
        Assert.True(_cache.Store(_key, _payload));
        Assert.Equal(_payload, _cache.TryLoad(_key));
    }

    [Fact]
    public void ALinkToDevZeroIsAMissAndIsNeverRead()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/dev/zero and statx are Linux's");
        var entry = _cache.PathFor(_key);
        File.CreateSymbolicLink(entry, "/dev/zero");
        var (payload, allocated) = LoadWithin20s(entry);
        Assert.Null(payload);
        Assert.True(allocated < 1 << 20, $"the device was read ({allocated} bytes allocated)");
        Assert.True(_cache.Store(_key, _payload));
        Assert.Equal(_payload, _cache.TryLoad(_key));
    }

    [Fact]
    public void AnOversizedEntryIsAMissWithoutBeingRead()
    {
        var entry = _cache.PathFor(_key);
        var data = KernelCacheFile.Encode(_key, _payload);
        using (var fs = new FileStream(entry, FileMode.Create, FileAccess.Write))
        {
            fs.Write(data);
            fs.SetLength(KernelDiskCache.MaxEntryBytes + 1);   // sparse: cheap to make
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Null(_cache.TryLoad(_key));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"the oversized entry was read ({allocated} bytes allocated)");
    }

    [Theory]
    [InlineData(+1)]
    [InlineData(-1)]
    [InlineData(1L << 40)]
    [InlineData(-5000 - 1)]
    public void AHeaderWhoseLengthDisagreesWithTheFileIsAMiss(long delta)
    {
        var data = KernelCacheFile.Encode(_key, _payload);
        BitConverter.TryWriteBytes(data.AsSpan(48), _payload.LongLength + delta);
        File.WriteAllBytes(_cache.PathFor(_key), data);
        Assert.Null(_cache.TryLoad(_key));
    }

    [Fact]
    public void ADirectoryOrAShortFileIsAMiss()
    {
        var entry = _cache.PathFor(_key);
        Directory.CreateDirectory(entry);
        Assert.Null(_cache.TryLoad(_key));
        Directory.Delete(entry);
        File.WriteAllBytes(entry, new byte[KernelCacheFile.HeaderSize - 1]);
        Assert.Null(_cache.TryLoad(_key));
        File.WriteAllBytes(entry, KernelCacheFile.Encode(_key, _payload));
        Assert.Equal(_payload, _cache.TryLoad(_key));
    }

    [Fact]
    public void StatedPayloadLengthReadsOnlyThisFormatsHeaders()
    {
        var data = KernelCacheFile.Encode(_key, _payload);
        Assert.Equal(_payload.LongLength, KernelCacheFile.StatedPayloadLength(data));
        Assert.Null(KernelCacheFile.StatedPayloadLength(data.AsSpan(0, KernelCacheFile.HeaderSize - 1)));
        data[0] ^= 1;
        Assert.Null(KernelCacheFile.StatedPayloadLength(data));
    }
}
