using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Mix.Runtime.Cuda
{
    /// <summary>
    /// Compiles CUDA C++ with NVRTC for the exact architecture of each device (<c>sm_90a</c> on compute capability 9.0,
    /// <c>sm_XY</c> otherwise), keeps the cubins in a <see cref="KernelDiskCache"/> keyed by
    /// <see cref="KernelCacheKey"/>, and keeps loaded modules and functions per device in memory. Thread-safe; two
    /// threads or processes compiling the same kernel at once is harmless.
    /// When the driver or NVRTC is missing, or a compile fails, one warning is logged (<see cref="KernelLog"/>) and
    /// <see cref="GetFunction"/> throws <see cref="CudaKernelUnavailableException"/> (<see cref="TryGetFunction"/>
    /// returns null), so callers can take the reference path.
    /// </summary>
    public sealed class KernelRuntime
    {
        private static readonly Lazy<KernelRuntime> SharedInstance =
            new(() => new KernelRuntime(new KernelDiskCache(KernelDiskCache.DefaultDirectory())), LazyThreadSafetyMode.ExecutionAndPublication);

        private readonly Lazy<(CudaDriver? driver, Nvrtc? nvrtc, string? reason)> _native;
        private readonly ConcurrentDictionary<(int device, CudaKernelSpec spec), Lazy<IntPtr>> _modules = new();
        private readonly ConcurrentDictionary<(int device, CudaKernelSpec spec, string entry), CudaFunction> _functions = new();
        private readonly ConcurrentDictionary<int, string> _arch = new();
        private int _compiles, _diskHits;

        /// <summary>The process-wide runtime (cache in <see cref="KernelDiskCache.DefaultDirectory"/>).</summary>
        public static KernelRuntime Shared => SharedInstance.Value;

        /// <summary>Creates a runtime over a given disk cache; the driver and NVRTC are loaded on first use.</summary>
        /// <param name="cache">Disk cache for cubins.</param>
        public KernelRuntime(KernelDiskCache cache)
        {
            Cache = cache ?? throw new ArgumentNullException(nameof(cache));
            _native = new Lazy<(CudaDriver?, Nvrtc?, string?)>(LoadNative, LazyThreadSafetyMode.ExecutionAndPublication);
        }

        /// <summary>The disk cache.</summary>
        public KernelDiskCache Cache { get; }

        /// <summary>The CUDA driver, or null when unavailable.</summary>
        public CudaDriver? Driver => _native.Value.driver;

        /// <summary>NVRTC, or null when unavailable.</summary>
        public Nvrtc? Nvrtc => _native.Value.nvrtc;

        /// <summary>Whether both the driver and NVRTC loaded.</summary>
        public bool IsAvailable => _native.Value.driver is not null && _native.Value.nvrtc is not null;

        /// <summary>Why the runtime is unavailable (null when it is available).</summary>
        public string? UnavailableReason => _native.Value.reason;

        /// <summary>Number of NVRTC compiles this runtime ran (disk-cache misses).</summary>
        public int CompileCount => _compiles;

        /// <summary>Number of cubins this runtime took from the disk cache.</summary>
        public int DiskCacheHits => _diskHits;

        private static (CudaDriver?, Nvrtc?, string?) LoadNative()
        {
            var driver = CudaDriver.TryLoad(out var driverError);
            if (driver is null)
            {
                KernelLog.WarnOnce("driver", $"{driverError}; fused CUDA kernels are disabled, the reference paths are used");
                return (null, null, driverError);
            }
            var nvrtc = Nvrtc.TryLoad(out var nvrtcError);
            if (nvrtc is null)
            {
                KernelLog.WarnOnce("nvrtc", $"{nvrtcError}; fused CUDA kernels are disabled, the reference paths are used (set MIX_NVRTC_PATH)");
                return (driver, null, nvrtcError);
            }
            return (driver, nvrtc, null);
        }

        /// <summary>NVRTC target name for a compute capability: <c>sm_90a</c> for 9.0 (Hopper-only instructions), else <c>sm_XY</c>.</summary>
        /// <param name="major">Major version.</param>
        /// <param name="minor">Minor version.</param>
        public static string ArchitectureName(int major, int minor) =>
            major == 9 && minor == 0 ? "sm_90a" : $"sm_{major}{minor}";

        /// <summary>The target architecture of a device (queried once through the driver).</summary>
        /// <param name="device">CUDA device ordinal.</param>
        public string ArchitectureOf(int device)
        {
            var driver = Driver ?? throw new CudaKernelUnavailableException(UnavailableReason ?? "CUDA driver unavailable");
            return _arch.GetOrAdd(device, d =>
            {
                var (major, minor) = driver.ComputeCapability(d);
                return ArchitectureName(major, minor);
            });
        }

        /// <summary>Full NVRTC option list for a spec and target.</summary>
        /// <param name="spec">The kernel spec.</param>
        /// <param name="arch">Target, e.g. <c>sm_90a</c>.</param>
        public static IReadOnlyList<string> CompileOptions(CudaKernelSpec spec, string arch) =>
            spec.Options.Concat(new[] { "--gpu-architecture=" + arch, "-std=c++17" }).ToArray();

        /// <summary>Returns the cubin of <paramref name="spec"/> for <paramref name="arch"/>, from the disk cache or compiled now (and stored).</summary>
        /// <param name="spec">Source and options.</param>
        /// <param name="arch">Target, e.g. <c>sm_90a</c>.</param>
        public byte[] GetCubin(CudaKernelSpec spec, string arch)
        {
            var nvrtc = Nvrtc ?? throw new CudaKernelUnavailableException(UnavailableReason ?? "NVRTC unavailable");
            var options = CompileOptions(spec, arch);
            var key = KernelCacheKey.Compute(spec.Source, options, arch, nvrtc.Version);
            var cached = Cache.TryLoad(key);
            if (cached is not null)
            {
                Interlocked.Increment(ref _diskHits);
                return cached;
            }
            var cubin = nvrtc.CompileToCubin(spec.Source, spec.Name, options);
            Interlocked.Increment(ref _compiles);
            Cache.Store(key, cubin);
            return cubin;
        }

        /// <summary>Loads (compiling if needed) <paramref name="entry"/> of <paramref name="spec"/> on <paramref name="device"/>.</summary>
        /// <param name="spec">Source and options.</param>
        /// <param name="entry">An <c>extern "C"</c> kernel name in the source.</param>
        /// <param name="device">CUDA device ordinal.</param>
        /// <exception cref="CudaKernelUnavailableException">No driver, no NVRTC, or the compile or load failed (warned once).</exception>
        public CudaFunction GetFunction(CudaKernelSpec spec, string entry, int device)
        {
            if (_functions.TryGetValue((device, spec, entry), out var f)) return f;
            if (!IsAvailable) throw new CudaKernelUnavailableException(UnavailableReason ?? "CUDA kernels unavailable");
            var module = _modules.GetOrAdd((device, spec), k => new Lazy<IntPtr>(() => LoadModule(k.spec, k.device),
                LazyThreadSafetyMode.ExecutionAndPublication));
            IntPtr handle;
            try
            {
                handle = module.Value; // a failure is cached by Lazy and rethrown
            }
            catch (CudaKernelUnavailableException e)
            {
                KernelLog.WarnOnce($"compile:{device}:{spec}", $"{spec} is unavailable on cuda:{device}; using the reference path. {e.Message}");
                throw;
            }
            var fn = new CudaFunction(Driver!, Driver!.GetFunction(handle, entry), entry, device);
            return _functions.GetOrAdd((device, spec, entry), fn);
        }

        /// <summary>Like <see cref="GetFunction"/> but returns null instead of throwing when kernels are unavailable.</summary>
        /// <param name="spec">Source and options.</param>
        /// <param name="entry">Kernel name.</param>
        /// <param name="device">CUDA device ordinal.</param>
        public CudaFunction? TryGetFunction(CudaKernelSpec spec, string entry, int device)
        {
            try { return GetFunction(spec, entry, device); }
            catch (CudaKernelUnavailableException) { return null; }
        }

        private IntPtr LoadModule(CudaKernelSpec spec, int device)
        {
            var cubin = GetCubin(spec, ArchitectureOf(device));
            return Driver!.LoadModule(device, cubin);
        }

        /// <summary>
        /// Compiles (in parallel) and loads every spec on <paramref name="device"/> so that later calls pay no compile
        /// time. Returns how many are ready; failures are warned once each and left to the reference paths.
        /// </summary>
        /// <param name="specs">Kernels to prepare.</param>
        /// <param name="device">CUDA device ordinal.</param>
        public int WarmUp(IEnumerable<CudaKernelSpec> specs, int device)
        {
            if (!IsAvailable) return 0;
            int ok = 0;
            var list = specs.Distinct().ToList();
            var arch = ArchitectureOf(device);
            // Compile in parallel (NVRTC is thread-safe per program), then load on this thread.
            Parallel.ForEach(list, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount / 2) }, s =>
            {
                try { GetCubin(s, arch); }
                catch (CudaKernelUnavailableException) { /* reported by the load below */ }
            });
            foreach (var s in list)
            {
                var module = _modules.GetOrAdd((device, s), k => new Lazy<IntPtr>(() => LoadModule(k.spec, k.device),
                    LazyThreadSafetyMode.ExecutionAndPublication));
                try
                {
                    _ = module.Value;
                    ok++;
                }
                catch (CudaKernelUnavailableException e)
                {
                    KernelLog.WarnOnce($"compile:{device}:{s}", $"{s} is unavailable on cuda:{device}; using the reference path. {e.Message}");
                }
            }
            return ok;
        }
    }
}
