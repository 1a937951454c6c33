using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Mix.Runtime.Builtins;
using Mix.Runtime.Caches;
using Mix.Runtime.Cuda;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mix.Runtime.Fused
{
    /// <summary>
    /// The decoding step of a Mamba mixer (the standard library's <c>@kernel("mamba")</c> mixer, whose states live in a
    /// <see cref="StateCacheSlot"/>) as four kernel launches (<see cref="MambaStepKernelSources"/>): one token per row,
    /// on CUDA, without autograd, with full-precision weights. Inside a residual sub-block <c>x + mamba(rmsnorm(x))</c>
    /// the norm and the add run in the first and last launch, so a Mamba LM's layer costs four launches and one output
    /// allocation per token. Declines (null: the reference forward runs) for anything else: several tokens (prefill),
    /// a padding mask, quantized or rerouted projections, other dtypes or layouts.
    /// </summary>
    public static class FusedMambaStep
    {
        private static readonly ConcurrentDictionary<int, CudaKernelSpec> Specs = new();
        private static readonly ConditionalWeakTable<nn.Module, Parts?> s_parts = new();
        private static long s_steps;

        /// <summary>Fused steps run so far in this process (one per mixer per token batch): what tests and benchmarks check
        /// to know that the fused path, not the reference, ran.</summary>
        public static long Steps => Interlocked.Read(ref s_steps);

#pragma warning disable CA2255 // registering a hook at load is exactly what the runtime needs here
        [ModuleInitializer]
        internal static void Register()
        {
            MixDispatch.FusedCachedMixer ??= (mixer, x) => TryStep(null, mixer, x, residual: false);
            MixDispatch.FusedCachedResidual ??= TryResidual;
        }
#pragma warning restore CA2255

        /// <summary>The kernel spec for dtype code <paramref name="dtype"/> (0 float32, 1 float16, 2 bfloat16).</summary>
        /// <param name="dtype">dtype code.</param>
        public static CudaKernelSpec Spec(int dtype) =>
            Specs.GetOrAdd(dtype, d => new CudaKernelSpec("mix_mamba_step", FusedKernelSources.Prelude + MambaStepKernelSources.Source, $"-DMIX_T={d}"));

        /// <summary>The sub-block <c>x + mixer(norm(x))</c> as one fused step, or null to run the reference.</summary>
        /// <param name="parts">The sub-block's layers (no layer or residual scale).</param>
        /// <param name="x">Input <c>[B, 1, dim]</c>, the shortcut.</param>
        public static Tensor? TryResidual(ResidualParts parts, Tensor x)
        {
            if (!parts.BranchIsMixer || parts.LayerScale is not null || parts.ResScale is not null) return null;
            if (parts.Norm is not RMSNorm norm) return null;
            return TryStep(norm, parts.Branch, x, residual: true);
        }

        /// <summary>
        /// One decoding step of <paramref name="mixer"/> on <paramref name="x"/> <c>[B, 1, dim]</c> against its slot in the
        /// running <see cref="CausalModel"/> cache: <c>mixer(norm(x))</c>, plus <c>x</c> when <paramref name="residual"/>;
        /// null when the fused step does not apply.
        /// </summary>
        /// <param name="norm">An RMSNorm applied to <paramref name="x"/> first, or null.</param>
        /// <param name="mixer">The Mamba mixer.</param>
        /// <param name="x">Input.</param>
        /// <param name="residual">Add <paramref name="x"/> to the result.</param>
        public static Tensor? TryStep(RMSNorm? norm, nn.Module mixer, Tensor x, bool residual)
        {
            if (!KernelModules.IsMamba(mixer) || mixer is MambaMixer) return null;   // the C# built-in has its own slot type
            if (x.device_type != DeviceType.CUDA || torch.is_grad_enabled() || x.dim() != 3 || x.shape[1] != 1) return null;
            if (CacheScope.Current is not { Mask: null } scope || scope.StateSlot(mixer) is not { } slot) return null;
            int code = FusedKernels.DtypeCode(x.dtype);
            if (code < 0 || !KernelRuntime.Shared.IsAvailable) return null;
            if (s_parts.GetValue(mixer, Read) is not { } p) return null;
            var dtype = x.dtype;
            var wIn = Weight(p.InProj); var wX = Weight(p.XProj); var wOut = Weight(p.OutProj); var dtW = Weight(p.DtProj);
            if (wIn is null || wX is null || wOut is null || dtW is null) return null;
            var convW = p.Conv.weight!;
            var aLog = Param(mixer, "A_log"); var dSkip = Param(mixer, "D");
            if (aLog is null || dSkip is null) return null;
            long batch = x.shape[0], dim = x.shape[2], inner = wIn.shape[0] / 2, width = convW.shape[^1];
            long rank = dtW.shape[1], nState = aLog.shape[1], xRows = wX.shape[0];
            if (wIn.shape[1] != dim || wOut.shape[0] != dim || wOut.shape[1] != inner || wX.shape[1] != inner
                || xRows != rank + 2 * nState || dtW.shape[0] != inner || aLog.shape[0] != inner || convW.numel() != inner * width
                || batch > 65535 || inner > int.MaxValue / 2) return null;
            var normW = norm?.weight;
            var biasIn = Bias(p.InProj); var biasOut = Bias(p.OutProj);
            var convB = p.Conv.bias; var dtB = Bias(p.DtProj);
            foreach (var t in new[] { wIn, wX, wOut, convW, dtW, aLog, dSkip, normW, biasIn, biasOut, convB, dtB })
                if (t is not null && (t.dtype != dtype || t.device_type != DeviceType.CUDA || t.device_index != x.device_index || !t.is_contiguous())) return null;
            var convState = slot.Get("conv_state"); var ssmState = slot.Get("ssm_state");
            if (convState.dtype != ScalarType.Float32 || ssmState.dtype != ScalarType.Float32
                || !convState.shape.SequenceEqual(new[] { batch, inner, width - 1 })
                || !ssmState.shape.SequenceEqual(new[] { batch, inner, nState })) return null;
            int nbIn = RowsPerBlock(dim), nbInner = RowsPerBlock(inner);
            if (nbIn == 0 || nbInner == 0) return null;
            int dev = FusedOps.DeviceIndex(x);
            try
            {
                var spec = Spec(code);
                var rt = KernelRuntime.Shared;
                var inProj = rt.GetFunction(spec, "mamba_step_in_proj", dev);
                var xProj = rt.GetFunction(spec, "mamba_step_x_proj", dev);
                var scan = rt.GetFunction(spec, "mamba_step_scan", dev);
                var outProj = rt.GetFunction(spec, "mamba_step_out_proj", dev);

                var xin = x.is_contiguous() ? x : x.contiguous();
                var xz = slot.Workspace("mamba.xz", new[] { batch, 2 * inner }, ScalarType.Float32, x.device);
                var dbc = slot.Workspace("mamba.dbc", new[] { batch, xRows }, ScalarType.Float32, x.device);
                var y = slot.Workspace("mamba.y", new[] { batch, inner }, ScalarType.Float32, x.device);
                var convNext = slot.Spare("conv_state"); var ssmNext = slot.Spare("ssm_state");
                var output = torch.empty_like(xin);
                int vecIn = Vectorizable(dim, dtype), vecInner = Vectorizable(inner, dtype);
                var threads = new Dim3(MambaStepKernelSources.Threads);
                uint warps = MambaStepKernelSources.Threads / 32;

                using (var a = new KernelArguments(dev))
                {
                    a.Add(xin, dtype, "x").AddOptional(normW, dtype, "norm.weight").Add((float)(norm?.Eps ?? 0.0))
                        .Add(wIn, dtype, "in_proj.weight").AddOptional(biasIn, dtype, "in_proj.bias").Add(xz, ScalarType.Float32, "xz")
                        .Add((int)batch).Add((int)dim).Add((int)(2 * inner)).Add(nbIn).Add(vecIn);
                    inProj.Launch(new Dim3(Blocks(2 * inner, warps), Blocks(batch, (uint)nbIn)), threads, (uint)(nbIn * dim * sizeof(float)), a);
                }
                using (var a = new KernelArguments(dev))
                {
                    a.Add(xz, ScalarType.Float32, "xz").Add(convState, ScalarType.Float32, "conv_state").AddDense(convW, dtype, "conv1d.weight")
                        .AddOptional(convB, dtype, "conv1d.bias").Add(wX, dtype, "x_proj.weight").Add(dbc, ScalarType.Float32, "dbc")
                        .Add((int)batch).Add((int)inner).Add((int)width).Add((int)xRows).Add(nbInner).Add(vecInner);
                    xProj.Launch(new Dim3(Blocks(xRows, warps), Blocks(batch, (uint)nbInner)), threads, (uint)(nbInner * inner * sizeof(float)), a);
                }
                using (var a = new KernelArguments(dev))
                {
                    a.Add(xz, ScalarType.Float32, "xz").Add(convState, ScalarType.Float32, "conv_state").Add(convNext, ScalarType.Float32, "conv_state'")
                        .AddDense(convW, dtype, "conv1d.weight").AddOptional(convB, dtype, "conv1d.bias").Add(dbc, ScalarType.Float32, "dbc")
                        .Add(dtW, dtype, "dt_proj.weight").AddOptional(dtB, dtype, "dt_proj.bias").Add(aLog, dtype, "A_log").Add(dSkip, dtype, "D")
                        .Add(ssmState, ScalarType.Float32, "ssm_state").Add(ssmNext, ScalarType.Float32, "ssm_state'").Add(y, ScalarType.Float32, "y")
                        .Add((int)batch).Add((int)inner).Add((int)width).Add((int)rank).Add((int)nState);
                    scan.Launch(new Dim3(Blocks(inner, 256), (uint)batch), new Dim3(256), 0, a);
                }
                using (var a = new KernelArguments(dev))
                {
                    a.Add(y, ScalarType.Float32, "y").Add(wOut, dtype, "out_proj.weight").AddOptional(biasOut, dtype, "out_proj.bias")
                        .AddOptional(residual ? xin : null, dtype, "residual").Add(output, dtype, "out")
                        .Add((int)batch).Add((int)inner).Add((int)dim).Add(nbInner).Add(vecInner);
                    outProj.Launch(new Dim3(Blocks(dim, warps), Blocks(batch, (uint)nbInner)), threads, (uint)(nbInner * inner * sizeof(float)), a);
                }
                slot.Swap("conv_state");
                slot.Swap("ssm_state");
                Interlocked.Increment(ref s_steps);
                return output;
            }
            catch (CudaKernelUnavailableException)
            {
                return null;
            }
        }

        // Rows of the batch staged per block: as many as fit the 48 KiB of shared memory every CUDA device gives a block
        // without opting in, at most MaxRowsPerBlock; 0 when not even one row fits.
        private static int RowsPerBlock(long k) => (int)Math.Min(MambaStepKernelSources.MaxRowsPerBlock, 48 * 1024 / (k * sizeof(float)));

        // 16-byte weight loads need whole vectors per row (the allocations themselves are 256-byte aligned).
        private static int Vectorizable(long k, ScalarType dtype) => k % (16 / (dtype == ScalarType.Float32 ? 4 : 2)) == 0 ? 1 : 0;

        private static uint Blocks(long work, uint per) => (uint)Math.Clamp((work + per - 1) / per, 1, int.MaxValue);

        private static Tensor? Weight(nn.Module linear) => linear switch
        {
            QuantizableLinear { IsQuantized: false, IsRouted: false } q => q.weight,
            Linear l => l.weight,
            _ => null,
        };

        private static Tensor? Bias(nn.Module linear) => linear switch
        {
            QuantizableLinear q => q.bias,
            Linear l => l.bias,
            _ => null,
        };

        private static Tensor? Param(nn.Module module, string name)
        {
            foreach (var (n, t) in module.named_parameters(recurse: false))
                if (n == name) return t;
            return null;
        }

        private static Parts? Read(nn.Module mixer)
        {
            var c = mixer.named_children().ToDictionary(x => x.name, x => x.module);
            static bool IsLinear(nn.Module m) => m is QuantizableLinear or Linear;
            return c.TryGetValue("in_proj", out var inProj) && IsLinear(inProj)
                && c.TryGetValue("x_proj", out var xProj) && IsLinear(xProj)
                && c.TryGetValue("dt_proj", out var dtProj) && IsLinear(dtProj)
                && c.TryGetValue("out_proj", out var outProj) && IsLinear(outProj)
                && c.TryGetValue("conv1d", out var conv) && conv is Conv1d conv1d
                    ? new Parts(inProj, conv1d, xProj, dtProj, outProj)
                    : null;
        }

        // The mixer's layers (stable across dtype and device moves, which replace parameters, not modules).
        private sealed record Parts(nn.Module InProj, Conv1d Conv, nn.Module XProj, nn.Module DtProj, nn.Module OutProj);
    }
}
