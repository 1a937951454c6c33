using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using Xunit;

namespace Mix.Runtime.Tests.Checkpoints;

/// <summary>What a checkpoint reader does with files that change under it or are not files at all: a file shortened
/// while open is a <see cref="CheckpointFormatException"/> (it used to be a fatal access violation through the mapping);
/// FIFOs, devices and links to them are refused before anything is opened (a FIFO used to block forever).</summary>
public sealed class CheckpointReaderTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    private static void Truncate(string path, long length)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        fs.SetLength(length);
    }

    [Fact]
    public void ASafetensorsFileTruncatedWhileOpenThrowsAFormatExceptionOnRead()
    {
        var path = _files.PathOf("big.safetensors");
        using (var a = torch.arange(0, 64 * 1024, dtype: torch.ScalarType.Float32))
        using (var b = torch.ones(256 * 1024, dtype: torch.ScalarType.Float32))
            SafeTensors.Save(path, new[] { ("a", a), ("b", b) });
        using var file = SafeTensorsFile.Open(path);
        var lastName = file.Names.OrderBy(n => file.Info(n).ByteOffset).Last();
        var last = file.Info(lastName);
        Skip.IfTruncationIsNotPossible(() => Truncate(path, last.ByteOffset + last.ByteLength / 2));

        var e = Assert.Throws<CheckpointFormatException>(() => file.Read(lastName));
        Assert.Equal(lastName, e.TensorName);
        Assert.Contains("truncated or rewritten while being read", e.Message);
        Assert.Contains($"is now {last.ByteOffset + last.ByteLength / 2}", e.Message);

        // The part still on disk reads as before.
        var firstName = file.Names.Single(n => n != lastName);
        using var first = file.Read(firstName);
        Assert.Equal(file.Info(firstName).ElementCount, first.numel());
    }

    [Fact]
    public void ATorchSharpFileTruncatedWhileOpenThrowsAFormatExceptionOnRead()
    {
        var path = _files.PathOf("big.dat");
        using (var w = torch.randn(300, 400))
            TorchSharpCheckpointFile.Save(path, new[] { ("w", w) });
        using var file = TorchSharpCheckpointFile.Open(path);
        Skip.IfTruncationIsNotPossible(() => Truncate(path, 100));
        var e = Assert.Throws<CheckpointFormatException>(() => file.Read("w"));
        Assert.Equal("w", e.TensorName);
    }

    [Fact]
    public void AFifoIsRefusedWithoutBlocking()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "named pipes made with mkfifo are tested on Linux");
        var fifo = _files.PathOf("pipe.safetensors");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        Assert.True(File.Exists(fifo), "mkfifo did not create the pipe");
        using var net = new TestNet(1);
        var load = Task.Run(() => CheckpointLoader.Load(net, fifo));
        if (!((IAsyncResult)load).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(20)))
        {
            // Unblock the reader (opening the write end pairs with it) so the test host does not hang, then fail.
            using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
            Assert.Fail("loading a FIFO blocked");
        }
        var e = Assert.IsType<CheckpointFormatException>(load.Exception!.InnerException);
        Assert.Contains("a FIFO (named pipe), not a regular file", e.Message);
        Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(fifo));
        Assert.Throws<CheckpointFormatException>(() => TorchSharpCheckpointFile.Open(fifo));
    }

    [Fact]
    public void ADeviceAndALinkToOneAreRefused()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/dev/zero and statx are Linux's");
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open("/dev/zero"));
        Assert.Contains("a character device", e.Message);
        var link = _files.PathOf("zero.safetensors");
        File.CreateSymbolicLink(link, "/dev/zero");
        using var net = new TestNet(1);
        e = Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.Load(net, link));
        Assert.Contains("a character device", e.Message);
        var dat = _files.PathOf("zero.dat");
        File.CreateSymbolicLink(dat, "/dev/zero");
        Assert.Throws<CheckpointFormatException>(() => CheckpointLoader.Load(net, dat));
    }

    [Fact]
    public void ALinkToARegularFileStillLoads()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "symbolic links need privileges on Windows");
        var path = _files.PathOf("net.safetensors");
        using (var saved = new TestNet(1)) CheckpointLoader.Save(saved, path);
        var link = _files.PathOf("link.safetensors");
        File.CreateSymbolicLink(link, path);
        using var net = new TestNet(2);
        Assert.Equal(5, CheckpointLoader.Load(net, link).LoadedKeys.Count);
    }

    [Fact]
    public void AShardIndexThatIsAFifoIsRefused()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "named pipes made with mkfifo are tested on Linux");
        var fifo = _files.PathOf("model.safetensors.index.json");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var open = Task.Run(() => ShardedSafeTensors.Open(fifo));
        if (!((IAsyncResult)open).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(20)))
        {
            using (new FileStream(fifo, FileMode.Open, FileAccess.Write)) { }
            Assert.Fail("opening a FIFO index blocked");
        }
        Assert.IsType<CheckpointFormatException>(open.Exception!.InnerException);
    }

    private static class Skip
    {
        /// <summary>Windows refuses to shorten a file another handle has open; there the case cannot arise.</summary>
        public static void IfTruncationIsNotPossible(Action truncate)
        {
            try
            {
                truncate();
            }
            catch (IOException) when (OperatingSystem.IsWindows())
            {
                Assert.Skip("Windows does not let a file be truncated while it is open");
            }
        }
    }
}
