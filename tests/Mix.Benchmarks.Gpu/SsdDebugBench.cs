using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Mix.Runtime.Fused;
using Mix.Runtime.Scans;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Benchmarks.Gpu;

/// <summary>
/// <c>--only ssd-debug</c>: where half-precision SSD's chunked kernels go non-finite (issue 15). For bfloat16 and float16
/// and a few shapes, each way <see cref="CudaScanKernels.TrySsd"/> can run (tensor-core chunked, float32-FMA chunked,
/// recurrent; float32 chunked and recurrent on the same inputs upcast) prints the non-finite count, first non-finite
/// index and relative L2 error against float64 references of the output, the final state and the chunked kernels' stage
/// workspaces (each chunk's own state after chunk_state, the chunk decays, the entering states after chunk_state_pass);
/// then the tensor-core run again after the caching allocator's free blocks were filled with NaN and with zeros (a
/// result that changes with them reads memory no kernel wrote). Not a timing: correctness only.
/// </summary>
internal static class SsdDebugBench
{
    private sealed record Inputs(string Name, Tensor X, Tensor Dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? Z, Tensor? Bias,
        bool Softplus, Tensor? H0);

    public static void Run()
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine("ssd-debug: nf = non-finite count / size, first = first non-finite index, err = rel L2 vs float64, " +
                          "max = largest finite |value|, zero = exact zeros / size");
        Guard(Resources);
        foreach (var io in new[] { ScalarType.BFloat16, ScalarType.Float16 })
            foreach (var make in Shapes())
                Guard(() =>
                {
                    using var scope = torch.NewDisposeScope();
                    One(make(io));
                });
        Console.WriteLine($"ssd-debug done in {clock.Elapsed.TotalSeconds:F1} s");
    }

    // As compiled for this device: a launch of 256 threads needs max threads ≥ 256; static shared memory ≤ 48 KiB.
    private static void Resources()
    {
        foreach (int code in new[] { 0, 1, 2 })
        {
            var spec = new Mix.Runtime.Cuda.CudaKernelSpec("mix_chunk_scan", FusedKernelSources.Prelude + ChunkScanKernelSources.Source, $"-DMIX_T={code}");
            var names = code == 0
                ? new[] { "chunk_state", "chunk_state_pass", "chunk_output" }
                : new[] { "chunk_state", "chunk_state_pass", "chunk_output", "chunk_state_ssd_tc", "chunk_output_ssd_tc", "chunk_state_gla_tc", "chunk_output_gla_tc" };
            foreach (var name in names)
            {
                var f = Mix.Runtime.Cuda.KernelRuntime.Shared.GetFunction(spec, name, 0);
                int Attr(int a) => f.Driver.GetFunctionAttribute(f.Handle, a);
                Console.WriteLine($"  MIX_T={code} {name,-20} max threads {Attr(0)}, static shared {Attr(1)} B, local {Attr(3)} B, " +
                                  $"{Attr(4)} registers, PTX {Attr(5)}, binary {Attr(6)}");
            }
        }
    }

    private static IEnumerable<Func<ScalarType, Inputs>> Shapes()
    {
        yield return io => Simple(io, 64, 64);
        yield return io => Simple(io, 300, 64);
        yield return io => Simple(io, 300, 128);
        // SsdKernelMatchesTheReference(bf16, 2, 129, 8, 64, 1, 128, false): its seed and inputs
        yield return io => Random(io, 2, 129, 8, 64, 1, 128, false, 2 * 1000 + 129 * 10 + 128);
        // ChunkedSsdKernelsMatchTheReference(bf16, 1, 100, 2, 70, 1, 130, true)
        yield return io => Random(io, 1, 100, 2, 70, 1, 130, true, 1 * 1000 + 100 * 10 + 130 + 1);
    }

    private static Inputs Simple(ScalarType io, long L, long n)
    {
        var dev = torch.CUDA;
        return new Inputs($"b1 h1 L{L} n{n} p64 g1 simple (x,B,C 0.5, dt 0.1, A -0.5)",
            torch.full(new long[] { 1, L, 1, 64 }, 0.5, device: dev).to_type(io),
            torch.full(new long[] { 1, L, 1 }, 0.1, device: dev).to_type(io),
            torch.full(new long[] { 1 }, -0.5, device: dev),
            torch.full(new long[] { 1, L, 1, n }, 0.5, device: dev).to_type(io),
            torch.full(new long[] { 1, L, 1, n }, 0.5, device: dev).to_type(io),
            null, null, null, false, null);
    }

    // as ScanKernelGpuTests builds them
    private static Inputs Random(ScalarType io, int batch, int L, int heads, int p, int groups, int n, bool full, long seed)
    {
        var dev = torch.CUDA;
        torch.manual_seed(seed);
        Tensor R(params long[] shape) => torch.randn(shape, device: dev).to_type(io);
        var x = R(batch, L, heads, p);
        var dt = full ? R(batch, L, heads) : (torch.rand(batch, L, heads, device: dev) * 0.2 + 0.01).to_type(io);
        var A = -torch.rand(heads, device: dev) * 2 - 0.1;
        var B = R(batch, L, groups, n) * 0.5;
        var C = R(batch, L, groups, n) * 0.5;
        var D = full ? torch.randn(heads, device: dev) : null;
        var z = full ? R(batch, L, heads, p) : null;
        var bias = full ? torch.randn(heads, device: dev) * 0.1 - 1.0 : null;
        var h0 = full ? torch.randn(batch, heads, p, n, device: dev) : null;
        return new Inputs($"b{batch} h{heads} L{L} n{n} p{p} g{groups} random{(full ? " full (D, z, softplus bias, h0)" : "")}",
            x, dt, A, B, C, D, z, bias, full, h0);
    }

    private static Tensor? F64(Tensor? t) => t?.to_type(ScalarType.Float64);

    private static void One(Inputs a)
    {
        var io = a.X.dtype;
        Console.WriteLine($"== {io} {a.Name}");
        var (yRef, hRef) = SsdScan.ChunkedScan(F64(a.X)!, F64(a.Dt)!, F64(a.A)!, F64(a.B)!, F64(a.C)!, 64, F64(a.D), F64(a.Z),
            F64(a.Bias), a.Softplus, F64(a.H0));
        var up = a with
        {
            X = a.X.to_type(ScalarType.Float32), Dt = a.Dt.to_type(ScalarType.Float32), B = a.B.to_type(ScalarType.Float32),
            C = a.C.to_type(ScalarType.Float32), Z = a.Z?.to_type(ScalarType.Float32),
        };
        Variant("tc chunked", a, true, true, yRef, hRef);
        Variant("tc chunked (same call again)", a, true, true, yRef, hRef);
        Variant("fma chunked", a, true, false, yRef, hRef);
        Variant("recurrent", a, false, true, yRef, hRef);
        Variant("f32 chunked", up, true, true, yRef, hRef);
        Variant("f32 recurrent", up, false, true, yRef, hRef);
        // which launcher-side difference of the half call matters: dt already float32 (no temporary), B and C in
        // float32 (converted by the launcher), a device synchronisation before the call
        Variant("tc chunked, dt given as float32", a with { Dt = up.Dt }, true, true, yRef, hRef);
        Variant("tc chunked, B and C given as float32", a with { B = up.B, C = up.C }, true, true, yRef, hRef);
        Variant("tc chunked after a device sync", a, true, true, yRef, hRef, syncBefore: true);
        // one stage at a time: the workspace after chunk_state (or after the pass) replaced by the float64 reference's
        Variant("tc chunked, chunk_state out := reference", a, true, true, yRef, hRef, Replace.ChunkState);
        Variant("tc chunked, entering states := reference", a, true, true, yRef, hRef, Replace.Entering);
        Variant("fma chunked, chunk_state out := reference", a, true, false, yRef, hRef, Replace.ChunkState);
        Variant("fma chunked, entering states := reference", a, true, false, yRef, hRef, Replace.Entering);
        // one input at a time set to zero (the references follow): which operand the non-finite values need
        foreach (var (label, zeroed) in new (string, Inputs)[]
                 {
                     ("x := 0", a with { X = torch.zeros_like(a.X) }), ("B := 0", a with { B = torch.zeros_like(a.B) }),
                     ("C := 0", a with { C = torch.zeros_like(a.C) }), ("dt := 0", a with { Dt = torch.zeros_like(a.Dt), Bias = null, Softplus = false }),
                 })
        {
            var (y0, h0) = SsdScan.ChunkedScan(F64(zeroed.X)!, F64(zeroed.Dt)!, F64(zeroed.A)!, F64(zeroed.B)!, F64(zeroed.C)!, 64,
                F64(zeroed.D), F64(zeroed.Z), F64(zeroed.Bias), zeroed.Softplus, F64(zeroed.H0));
            Variant($"tc chunked, {label}", zeroed, true, true, y0, h0);
        }
        Poison(double.NaN);
        Variant("tc chunked after NaN-filled free memory", a, true, true, yRef, hRef);
        Poison(0.0);
        Variant("tc chunked after zero-filled free memory", a, true, true, yRef, hRef);
    }

    private enum Replace { None, ChunkState, Entering }

    // Fills blocks of the caching allocator's small (≤ 1 MiB, 2 MiB segments) and large pools with a value and frees
    // them, so that the next torch.empty of those sizes likely returns memory holding it.
    private static void Poison(double value)
    {
        using var scope = torch.NewDisposeScope();
        var blocks = new List<Tensor>();
        foreach (long floats in new long[] { 1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18 })
            for (int i = 0; i < 16; i++) blocks.Add(torch.full(floats, value, device: torch.CUDA));
        for (int i = 0; i < 4; i++) blocks.Add(torch.full(16L << 20, value, device: torch.CUDA));
        torch.cuda.synchronize();
    }

    private static void Variant(string name, Inputs a, bool chunked, bool tensorCores, Tensor yRef, Tensor hRef,
        Replace replace = Replace.None, bool syncBefore = false)
    {
        using var scope = torch.NewDisposeScope();
        bool half = a.X.dtype != ScalarType.Float32;
        int cl = half && tensorCores ? CudaScanKernels.SsdTensorCoreChunkSize : CudaScanKernels.ChunkSize;
        var (contrib, decays, entering, last) = StageReference(a, cl);
        var stages = new Dictionary<string, Tensor>();
        CudaScanKernels.UseSsdTensorCores = tensorCores;
        CudaScanKernels.StageProbe = (stage, t) =>
        {
            stages[stage] = t.to_type(ScalarType.Float64).DetachFromDisposeScope();
            if (replace == Replace.ChunkState && stage == "chunk_state") t.copy_(contrib);
            if (replace == Replace.ChunkState && stage == "decays") t.copy_(decays.unsqueeze(-1));
            if (replace == Replace.Entering && stage == "chunk_state_pass") t.copy_(entering);
        };
        (Tensor y, Tensor finalState)? r = null;
        if (syncBefore) torch.cuda.synchronize();
        try
        {
            r = CudaScanKernels.TrySsd(a.X, a.Dt, a.A, a.B, a.C, a.D, a.Z, a.Bias, a.Softplus, a.H0, chunked: chunked);
            torch.cuda.synchronize();
        }
        finally
        {
            CudaScanKernels.UseSsdTensorCores = true;
            CudaScanKernels.StageProbe = null;
        }
        if (r is null)
        {
            Console.WriteLine($"  {name,-42} declined (null)");
            return;
        }
        string kernels = !chunked ? "gated_scan" : half && tensorCores ? "chunk_state_ssd_tc/pass/chunk_output_ssd_tc" : "chunk_state/pass/chunk_output";
        Console.WriteLine($"  {name} [{kernels}]");
        var firstBad = Line("y", r.Value.y, yRef);
        if (firstBad is { } fb && chunked)
            Console.WriteLine($"      first non-finite y at step {fb[1]}: chunk {fb[1] / cl}, row block {fb[1] % cl / 64}, row {fb[1] % 64}, " +
                              $"head {fb[2]}, column {fb[3]} (value tile {fb[3] / 64})");
        Line("final state", r.Value.finalState, hRef);
        if (stages.Count > 0)
        {
            Line("(stage reference's own final)", last.reshape(hRef.shape[0], hRef.shape[1], hRef.shape[3], hRef.shape[2]).transpose(-1, -2), hRef);
            if (stages.TryGetValue("chunk_state", out var cs)) Line($"chunk_state out (CL {cl})", cs, contrib);
            if (stages.TryGetValue("decays", out var d)) Line("chunk decays", d.flatten(1), decays);
            if (stages.TryGetValue("chunk_state_pass", out var ps)) Line("entering states (pass)", ps, entering);
        }
        foreach (var t in stages.Values) t.Dispose();
    }

    private static long[]? Line(string what, Tensor got, Tensor reference)
    {
        using var scope = torch.NewDisposeScope();
        var g = got.to(ScalarType.Float64, torch.CPU);
        var rf = reference.to(ScalarType.Float64, torch.CPU);
        var bad = g.isfinite().logical_not();
        long nf = bad.sum().item<long>(), size = g.numel();
        string first = "-";
        long[]? at = null;
        if (nf > 0)
        {
            var idx = bad.nonzero()[0];
            at = Enumerable.Range(0, (int)idx.shape[0]).Select(i => idx[i].item<long>()).ToArray();
            first = "[" + string.Join(",", at) + "]";
        }
        var finite = torch.where(bad, torch.zeros_like(g), g);
        double max = size == 0 ? 0 : finite.abs().max().item<double>();
        long zeros = g.eq(0).sum().item<long>();
        string err;
        if (!g.shape.SequenceEqual(rf.shape)) err = $"shape {string.Join("x", g.shape)} vs {string.Join("x", rf.shape)}";
        else
        {
            double num = (g - rf).norm().item<double>(), den = rf.norm().item<double>();
            err = den > 0 ? $"{num / den:E2}" : $"abs {num:E2}";   // a zero reference: the absolute L2 error
        }
        Console.WriteLine($"    {what,-28} nf {nf}/{size} first {first,-16} err {err,-10} max {max:E2} zero {zeros}/{size}");
        return at;
    }

    // float64 stage references in the kernels' layouts for chunks of cl steps: each chunk's own contribution
    // [b·h, chunks, n, p], the chunk decays [b·h, chunks], the state entering each chunk [b·h, chunks, n, p] and the
    // final state [b·h, n, p] (printed against SsdScan.ChunkedScan's: a check of this reference itself).
    private static (Tensor contrib, Tensor decays, Tensor entering, Tensor final) StageReference(Inputs a, int cl)
    {
        long b = a.X.shape[0], L = a.X.shape[1], h = a.X.shape[2], p = a.X.shape[3], g = a.B.shape[2], n = a.B.shape[3];
        long nc = (L + cl - 1) / cl, lp = nc * cl;
        var d = a.Dt.to_type(ScalarType.Float64);
        if (a.Bias is not null) d = d + a.Bias.to_type(ScalarType.Float64);
        if (a.Softplus) d = torch.nn.functional.softplus(d);
        Tensor Pad(Tensor t)
        {
            var shape = t.shape.ToArray();
            shape[1] = lp;
            var z = torch.zeros(shape, dtype: ScalarType.Float64, device: t.device);
            z.narrow(1, 0, L).copy_(t.to_type(ScalarType.Float64));
            return z;
        }
        var dp = Pad(d).reshape(b, nc, cl, h);
        var G = (dp * a.A.to_type(ScalarType.Float64)).cumsum(2);
        var gEnd = G.narrow(2, cl - 1, 1);
        var w = torch.exp(gEnd - G) * dp;                                                         // [b, c, s, h]
        var Bh = Pad(a.B).reshape(b, nc, cl, g, n).repeat_interleave(h / g, 3);                   // [b, c, s, h, n]
        var X = Pad(a.X).reshape(b, nc, cl, h, p);
        var contrib = torch.einsum("bcshn,bcsh,bcshp->bhcnp", Bh, w, X).reshape(b * h, nc, n, p);
        var decays = torch.exp(gEnd.squeeze(2)).permute(0, 2, 1).reshape(b * h, nc);
        var S = a.H0 is null
            ? torch.zeros(new[] { b * h, n, p }, dtype: ScalarType.Float64, device: a.X.device)
            : a.H0.to_type(ScalarType.Float64).transpose(-1, -2).reshape(b * h, n, p);
        var entering = new List<Tensor>();
        for (long c = 0; c < nc; c++)
        {
            entering.Add(S);
            S = decays.select(1, c).reshape(b * h, 1, 1) * S + contrib.select(1, c);
        }
        return (contrib, decays, torch.stack(entering, 1), S);
    }

    private static void Guard(Action a)
    {
        try { a(); }
        catch (Exception e) { Console.WriteLine($"  case failed: {e.GetType().Name}: {e.Message}"); }
    }
}
