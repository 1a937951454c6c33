using System;
using System.IO;
using System.Linq;
using Mix.Runtime.Cuda;
using Xunit;

namespace Mix.Runtime.Tests;

public class KernelCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mix-kcache-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static byte[] Key(string s = "src") => KernelCacheKey.Compute(s, new[] { "-DMIX_T=0" }, "sm_90a", "13.0");

    [Fact]
    public void KeyDependsOnEveryField()
    {
        var k = Key();
        Assert.Equal(32, k.Length);
        Assert.Equal(k, Key());
        Assert.NotEqual(k, Key("src2"));
        Assert.NotEqual(k, KernelCacheKey.Compute("src", new[] { "-DMIX_T=1" }, "sm_90a", "13.0"));
        Assert.NotEqual(k, KernelCacheKey.Compute("src", new[] { "-DMIX_T=0" }, "sm_90", "13.0"));
        Assert.NotEqual(k, KernelCacheKey.Compute("src", new[] { "-DMIX_T=0" }, "sm_90a", "12.8"));
        // Length prefixes: moving a character between adjacent fields changes the key.
        Assert.NotEqual(KernelCacheKey.Compute("ab", new[] { "c" }, "x", "1"), KernelCacheKey.Compute("a", new[] { "bc" }, "x", "1"));
        Assert.NotEqual(KernelCacheKey.Compute("a", new[] { "b", "c" }, "x", "1"), KernelCacheKey.Compute("a", new[] { "bc" }, "x", "1"));
        Assert.Matches("^[0-9a-f]{64}$", KernelCacheKey.ToHex(k));
    }

    [Fact]
    public void FileRoundTripsAndRejectsDamage()
    {
        var key = Key();
        var payload = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray();
        var data = KernelCacheFile.Encode(key, payload);
        Assert.True(KernelCacheFile.TryDecode(data, key, out var back));
        Assert.Equal(payload, back);

        Assert.False(KernelCacheFile.TryDecode(data.AsSpan(0, data.Length - 1), key, out _));        // truncated
        Assert.False(KernelCacheFile.TryDecode(data.AsSpan(0, 10), key, out _));                      // header cut
        Assert.False(KernelCacheFile.TryDecode(data.Concat(new byte[] { 1 }).ToArray(), key, out _)); // extended
        Assert.False(KernelCacheFile.TryDecode(data, Key("other"), out _));                           // other key
        for (int at = 0; at < data.Length; at += 37)
        {
            if (at >= 12 && at < 16) continue; // reserved bytes
            var bad = (byte[])data.Clone();
            bad[at] ^= 0x40;
            Assert.False(KernelCacheFile.TryDecode(bad, key, out _), $"flip at {at} accepted");
        }
        Assert.True(KernelCacheFile.TryDecode(KernelCacheFile.Encode(key, Array.Empty<byte>()), key, out var empty));
        Assert.Empty(empty!);
    }

    [Fact]
    public void DiskCacheStoresAtomicallyAndTreatsCorruptFilesAsMisses()
    {
        var cache = new KernelDiskCache(_dir);
        var key = Key();
        Assert.Null(cache.TryLoad(key));
        var payload = new byte[] { 1, 2, 3, 4, 5 };
        Assert.True(cache.Store(key, payload));
        Assert.Equal(payload, cache.TryLoad(key));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));

        // Truncate: a miss, not a crash; the next store repairs it.
        var path = cache.PathFor(key);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 2).ToArray());
        Assert.Null(cache.TryLoad(key));
        File.WriteAllBytes(path, new byte[] { 0x4d });
        Assert.Null(cache.TryLoad(key));
        Assert.True(cache.Store(key, payload));
        Assert.Equal(payload, cache.TryLoad(key));
    }

    [Fact]
    public void ConcurrentStoresOfOneKeyLeaveAnIntactFile()
    {
        var cache = new KernelDiskCache(_dir);
        var key = Key();
        var payload = Enumerable.Range(0, 100_000).Select(i => (byte)i).ToArray();
        System.Threading.Tasks.Parallel.For(0, 16, _ => cache.Store(key, payload));
        Assert.Equal(payload, cache.TryLoad(key));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void DefaultDirectoryHonoursMixKernelCache()
    {
        var old = Environment.GetEnvironmentVariable("MIX_KERNEL_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("MIX_KERNEL_CACHE", _dir);
            Assert.Equal(_dir, KernelDiskCache.DefaultDirectory());
            Environment.SetEnvironmentVariable("MIX_KERNEL_CACHE", null);
            Assert.EndsWith(Path.Combine("mix", "kernels"), KernelDiskCache.DefaultDirectory());
        }
        finally
        {
            Environment.SetEnvironmentVariable("MIX_KERNEL_CACHE", old);
        }
    }

    [Fact]
    public void ArchitectureIsExactWithSm90aOnlyForHopper()
    {
        Assert.Equal("sm_90a", KernelRuntime.ArchitectureName(9, 0));
        Assert.Equal("sm_80", KernelRuntime.ArchitectureName(8, 0));
        Assert.Equal("sm_86", KernelRuntime.ArchitectureName(8, 6));
        Assert.Equal("sm_100", KernelRuntime.ArchitectureName(10, 0));
        var opts = KernelRuntime.CompileOptions(new CudaKernelSpec("k", "x", "-DA=1"), "sm_90a");
        Assert.Contains("--gpu-architecture=sm_90a", opts);
        Assert.Equal("-DA=1", opts[0]);
    }
}
