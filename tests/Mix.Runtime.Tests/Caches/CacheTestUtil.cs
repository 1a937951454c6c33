using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Mix.Runtime.Caches;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests.Caches;

internal static class CacheTestUtil
{
    /// <summary>max|a − b| / max|b|.</summary>
    public static double RelErr(Tensor actual, Tensor expected)
    {
        using var scope = torch.NewDisposeScope();
        var a = actual.to_type(ScalarType.Float64);
        var b = expected.to_type(ScalarType.Float64);
        return (a - b).abs().max().item<double>() / Math.Max(b.abs().max().item<double>(), 1e-30);
    }

    /// <summary>‖a − b‖₂ / ‖b‖₂.</summary>
    public static double RelNorm(Tensor actual, Tensor expected)
    {
        using var scope = torch.NewDisposeScope();
        var a = actual.to_type(ScalarType.Float64);
        var b = expected.to_type(ScalarType.Float64);
        return (a - b).norm().item<double>() / Math.Max(b.norm().item<double>(), 1e-30);
    }

    /// <summary>Random split of <paramref name="total"/> into chunks of 1..maxChunk.</summary>
    public static List<int> Chunks(int total, int seed, int maxChunk = 5)
    {
        var rng = new Random(seed);
        var list = new List<int>();
        for (int done = 0; done < total;)
        {
            int c = Math.Min(total - done, rng.Next(1, maxChunk + 1));
            list.Add(c);
            done += c;
        }
        return list;
    }

    /// <summary>Runs <paramref name="step"/> over consecutive chunks along axis 1 and concatenates the results on axis 1.</summary>
    public static Tensor RunChunked(Tensor x, IEnumerable<int> chunks, Func<Tensor, Tensor> step)
    {
        var outs = new List<Tensor>();
        long at = 0;
        foreach (int c in chunks)
        {
            using var part = x.narrow(1, at, c);
            outs.Add(step(part));
            at += c;
        }
        var y = torch.cat(outs, 1);
        foreach (var o in outs) o.Dispose();
        return y;
    }

    public static Tensor RandomIds(long batch, long length, long vocab, int seed)
    {
        var rng = new Random(seed);
        var ids = new long[batch * length];
        for (int i = 0; i < ids.Length; i++) ids[i] = rng.Next(1, (int)vocab);
        return torch.tensor(ids).reshape(batch, length);
    }

    /// <summary>Appends an observed bound to a log for the report (tests run in parallel: appends are serialised).</summary>
    public static void Record(string line)
    {
        lock (Gate) File.AppendAllText(Path.Combine(Path.GetTempPath(), "mix-cache-quant-bounds.txt"), line + Environment.NewLine);
    }

    private static readonly object Gate = new();
}
