using System;
using Mix.Runtime.Cuda;
using Mix.Runtime.Fused;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Caches;

/// <summary>
/// The token-id check of a decoding step whose ids are already on the GPU (a device-side greedy or sampling loop), done
/// without making the host wait for the GPU: one small kernel writes the ids clamped to the vocabulary (what the step
/// embeds, so a bad id can never trip a device-side assert and poison the CUDA context) and, the first time an id is
/// out of range, a report of the id, its position and the step; the report is copied to pinned host memory behind the
/// step's work. Each later step reads the host copy (no synchronisation) and throws if it shows an error.
/// </summary>
/// <remarks>
/// Why deferred: checking CUDA ids on the host copies them back, and that copy waits for the previous step to finish, so
/// per token the host's launch time and the GPU's time add up instead of overlapping. The price is that an error
/// surfaces one or more steps late (or at <see cref="InferenceCache.ThrowIfBadTokenIds"/>, which waits), after the bad
/// step ran with the clamped id; from then on every step of that cache throws until it is reset. CPU ids (the
/// library's own <see cref="TextGenerator"/> loop) are still checked immediately, and
/// <see cref="InferenceCache.DeferDeviceTokenIdCheck"/> = false restores the immediate check for CUDA ids too.
/// </remarks>
internal sealed class DeferredTokenIdCheck : IDisposable
{
    // report: [0] 1 once an error was seen, [1] the id, [2] its row, [3] its column, [4] the step (since the last reset)
    private const string Source = """
#if MIX_ID == 1
typedef int id_t;
#else
typedef long long id_t;
#endif
#define NO_POSITION 0x7fffffffffffffffLL

// one block of 256 threads (a decoding step has few ids): clamped copy, first bad position, report once
extern "C" __global__ void __launch_bounds__(256) token_ids_check(
    const id_t* __restrict__ ids, id_t* __restrict__ out, long long n, long long cols, long long V, long long step,
    long long* __restrict__ report)
{
  __shared__ long long first[256];
  long long mine = NO_POSITION;
  for (long long i = threadIdx.x; i < n; i += 256) {
    const id_t v = ids[i];
    const bool bad = v < 0 || v >= V;
    if (bad && i < mine) mine = i;
    out[i] = bad ? (v < 0 ? (id_t)0 : (id_t)(V - 1)) : v;
  }
  first[threadIdx.x] = mine;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s && first[threadIdx.x + s] < first[threadIdx.x]) first[threadIdx.x] = first[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0 && first[0] != NO_POSITION && report[0] == 0) {
    report[1] = (long long)ids[first[0]];
    report[2] = first[0] / cols;
    report[3] = first[0] % cols;
    report[4] = step;
    report[0] = 1;
  }
}
""";

    /// <summary>Most ids one step may have here (one block scans them; longer prompts take the immediate check).</summary>
    internal const long MaxIds = 1 << 16;

    private static readonly CudaKernelSpec Int64Spec = new("mix_token_ids", Source, "-DMIX_ID=0");
    private static readonly CudaKernelSpec Int32Spec = new("mix_token_ids", Source, "-DMIX_ID=1");

    private readonly Tensor report;      // device, int64 [5]
    private readonly Tensor hostReport;  // pinned host mirror, refreshed asynchronously after every step
    private readonly int device;
    private long step;
    private (string Layer, long Vocab) checkedAgainst;   // what the steps' ids were checked against, for the message

    private DeferredTokenIdCheck(Tensor report, Tensor hostReport, int device)
    {
        this.report = report;
        this.hostReport = hostReport;
        this.device = device;
    }

    /// <summary>A check for ids on <paramref name="device"/>, or null where the kernel is unavailable (warned once by
    /// the kernel runtime; the caller then checks immediately).</summary>
    internal static DeferredTokenIdCheck? TryCreate(Device device)
    {
        if (device.type != DeviceType.CUDA) return null;
        int index = device.index < 0 ? 0 : device.index;
        if (KernelRuntime.Shared.TryGetFunction(Int64Spec, "token_ids_check", index) is null) return null;
        Tensor? report = null, host = null;
        try
        {
            report = torch.zeros(5, dtype: ScalarType.Int64, device: device);
            host = torch.zeros(5, dtype: ScalarType.Int64).pin_memory();
            return new DeferredTokenIdCheck(report, host, index);
        }
        catch (Exception e)
        {
            // no pinned memory (or no room for 40 bytes on the device): the immediate check still works
            report?.Dispose();
            host?.Dispose();
            KernelLog.WarnOnce("token_ids:" + e.GetType().Name, $"Mix.Runtime: token ids on {device} are checked on the host before each step ({e.Message}).");
            return null;
        }
    }

    /// <summary>Whether this check serves <paramref name="ids"/>: contiguous integer ids on its device, few enough for one block.</summary>
    internal bool Serves(Tensor ids) =>
        ids.device_type == DeviceType.CUDA && FusedOps.DeviceIndex(ids) == device
        && (ids.dtype is ScalarType.Int64 or ScalarType.Int32) && ids.is_contiguous() && ids.numel() <= MaxIds;

    /// <summary>
    /// Throws if an earlier step's ids were reported out of range (as far as the host copy shows: no waiting), then
    /// queues this step's check and returns the ids to embed (clamped; the caller disposes them).
    /// </summary>
    internal Tensor Check(Tensor ids, long vocabSize, string layer)
    {
        ThrowIfReported();
        checkedAgainst = (layer, vocabSize);
        var fn = KernelRuntime.Shared.GetFunction(ids.dtype == ScalarType.Int32 ? Int32Spec : Int64Spec, "token_ids_check", device);
        var output = torch.empty_like(ids);
        using (var args = new KernelArguments(device))
        {
            args.Add(ids, ids.dtype, "token ids").Add(output, ids.dtype, "clamped ids")
                .Add(ids.numel()).Add(ids.size(-1)).Add(vocabSize).Add(++step).Add(report, ScalarType.Int64, "report");
            fn.Launch(new Dim3(1), new Dim3(256), 0, args);
        }
        hostReport.copy_(report, true);   // non-blocking: pinned destination
        return output;
    }

    /// <summary>Throws if the host copy of the report shows an error (no synchronisation).</summary>
    internal void ThrowIfReported()
    {
        // pinned memory the copy engine writes behind the GPU's work: read as it is, a late report shows up next time
        var r = hostReport.data<long>();
        if (r[0] == 0) return;
        long id = r[1], row = r[2], col = r[3], at = r[4];
        var (layer, vocabSize) = checkedAgainst;
        throw new ArgumentOutOfRangeException("ids", id,
            $"token id {id} at [{row}, {col}] of step {at} (counted since the cache was created or reset) is outside the " +
            $"vocabulary of {layer}: ids must lie in [0, {vocabSize}). The ids were on the GPU and were checked there without " +
            "waiting for it, so that step ran with the id clamped to the vocabulary and this cache's state is not valid: " +
            "Reset() the cache (or set InferenceCache.DeferDeviceTokenIdCheck = false to check CUDA ids before each step).");
    }

    /// <summary>Waits for the GPU, then <see cref="ThrowIfReported"/>.</summary>
    internal void Synchronize()
    {
        hostReport.copy_(report);   // a blocking copy: waits for every queued step
        ThrowIfReported();
    }

    /// <summary>Forgets any report (waits once for queued copies, so that none lands after the reset).</summary>
    internal void Reset()
    {
        report.zero_();
        hostReport.copy_(report);
        step = 0;
    }

    public void Dispose()
    {
        report.Dispose();
        hostReport.Dispose();
    }
}
