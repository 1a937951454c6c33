using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Mix.Runtime.IO;

/// <summary>
/// Tells a regular file from a FIFO, a device, a socket or a directory <em>before</em> it is opened: opening a FIFO
/// for reading blocks until a writer appears, and reading a character device such as <c>/dev/zero</c> never ends, so
/// checkpoints and kernel-cache entries are opened only when this says they are regular files. Symbolic links are
/// followed (a link to <c>/dev/zero</c> is a character device).
/// </summary>
/// <remarks>
/// Linux asks <c>statx</c>, whose struct layout is the same on every architecture. Windows reads the file attributes
/// (devices carry <see cref="FileAttributes.Device"/>). Other Unix systems have no call .NET exposes for the file type,
/// so there a file must resolve to an existing non-directory with a positive length (FIFOs, devices and sockets report
/// length 0). The check and the open are two steps: a path replaced by a FIFO between them is not covered.
/// </remarks>
internal static unsafe partial class RegularFile
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1, StatxSize = 0x200;
    private const int ModeOffset = 28, SizeOffset = 40, StatxBytes = 256;
    private const int TypeMask = 0xF000;
    private static bool s_statxMissing;

    /// <summary>Null when <paramref name="path"/> (links followed) is a regular file, else what it is, in words
    /// (<c>"a FIFO (named pipe)"</c>, <c>"a character device"</c>, ...), for an error message.</summary>
    /// <param name="path">The path to look at.</param>
    /// <param name="length">The file's length when it is regular (0 otherwise).</param>
    public static string? Problem(string path, out long length)
    {
        length = 0;
        if (Directory.Exists(path)) return "a directory";
        if (!File.Exists(path)) return "missing";
        if (OperatingSystem.IsLinux() && !s_statxMissing)
        {
            var kind = Statx(path, out length);
            if (kind is not null) return kind.Length == 0 ? null : kind;
        }
        if (OperatingSystem.IsWindows())
        {
            var info = new FileInfo(path);
            if ((info.Attributes & FileAttributes.Device) != 0) return "a device";
            length = info.Length;
            return null;
        }
        var target = new FileInfo(path);
        if (target.LinkTarget is not null)
        {
            if (target.ResolveLinkTarget(returnFinalTarget: true) is not FileInfo final || !final.Exists) return "a broken link";
            target = final;
        }
        length = target.Length;
        return length > 0 ? null : "empty, or not a regular file (a FIFO, device or socket)";
    }

    /// <summary>"" for a regular file, a description otherwise; null when statx is unavailable or fails.</summary>
    private static string? Statx(string path, out long length)
    {
        length = 0;
        byte* buffer = stackalloc byte[StatxBytes];
        int rc;
        try
        {
            rc = statx(AtFdCwd, path, 0, StatxType | StatxSize, buffer);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            s_statxMissing = true;
            return null;
        }
        if (rc != 0) return null;
        var mode = *(ushort*)(buffer + ModeOffset);
        length = (long)*(ulong*)(buffer + SizeOffset);
        return (mode & TypeMask) switch
        {
            0x8000 => "",
            0x1000 => "a FIFO (named pipe)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            0x4000 => "a directory",
            _ => "not a regular file",
        };
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
