"""The official PyTorch models of the catalog's third part, timed as Mix.Benchmarks.Gpu --only catalog3 times ours.

Usage: python3 catalog3_models.py [--src .cat3-src] [--out DIR] [--budget SECONDS] [--dtype float32|bfloat16|all]
                                  [--models NAME,NAME] [--no-compile] [--quick] [--jobs N]
       python3 catalog3_models.py --check-imports [--src .cat3-src] [--timm DIR] [--einops DIR]

- mambaout_femto: timm's own (timm.create_model; timm is installed on the GPU host).
- rcvit_xs (Tianfang-Zhang/CAS-ViT), iformer_small (sail-sg/iFormer), ffnet_1 (ysj9909/FFNet), raft_mlp_s
  (okojoalg/raft-mlp, configs/settings/imagenet-raft-mlp-cross-mlp-emb-s.yaml), ms_mlp_tiny (JegZheng/MS-MLP,
  configs/msmlp_tiny_patch4_shift5_224.yaml) and wavemix (pranavphoenix/WaveMix, Saved_weights/ImageNet/
  wavemix_28M_75.06.py: WaveMix-192/16, level 3, "pachify" stem): imported from the official files in --src (a folder
  built by make_cat3_src.sh, the files only), each built at the zoo model's configuration with random weights.
Images/s at batch 32 and 128, float32 and bfloat16 weights and inputs, at 224x224 (ffnet_1: 256x256, its registry
size), eval, torch.no_grad(), torch.backends.cudnn.benchmark = True: PyTorch eager, then torch.compile
(mode="default": Inductor without CUDA graphs or max-autotune), compiled once per model and dtype with the batch
dimension marked dynamic (one compile serves both batches; where a model specialises the batch anyway, batch 128
recompiles and its first_call_s shows it). Every sample is one call between torch.cuda.synchronize()s (host
clock), after warm-up; the median is reported (as ModelBench.TimeMs; --quick: 0.4 s or 30 samples per row instead of 1 s / 60).

Time: compiling dominates (Inductor lowers each graph in one Python thread; Triton compiles its kernels in worker
processes). --jobs N first compiles every (model, dtype) in N parallel worker processes (this script with
--compile-worker; their logs go to a temporary folder, a failure's tail to the notes), which only fill Inductor's
on-disk caches (FX graph, AOTAutograd and Triton caches under /tmp/torchinductor_$USER); no timing runs meanwhile. The timed compiles that follow in this process then load from those
caches (Dynamo still traces). Phases, each under the one --budget (seconds for the whole script): (1) parallel compiles,
until 45 % of the budget at most (workers still running then are stopped, and their compiles are redone here if time
allows); (2) eager rows for every model and dtype; (3) compiled rows, bfloat16 first. A compile starts only where the
time left covers its estimate (15 s where a worker finished it, else 60 s) plus its rows, and SIGALRM stops one that
overruns what is left; whatever is not measured is listed in the JSON's "skipped" / "notes", with the reason.

What the official files import but a built model never calls is provided where the installed packages lack it:
timm.models.layers.helpers (iFormer; timm 1.x moved it to timm.layers.helpers), timm.models._builder's
_update_default_kwargs (FFNet's registered functions, bypassed here by building FFNet directly), pywt (WaveMix's db1
filters; make_catalog3d_fixtures.py's stand-in, pywavelets' values) and numpy.lib.function_base (WaveMix imports hamming
from it; numpy 2 renamed it). --check-imports builds every official model on the CPU (the build machine's torch 1.13,
no timm or einops: --timm and --einops name their source folders, and timm is stubbed as the parity fixture scripts
stub it), counts its parameters against the zoo's, and runs one forward at batch 1.
"""
import argparse, importlib, importlib.util, json, os, signal, subprocess, sys, tempfile, time, traceback, types


def _compile_threads():
    """Inductor's compile worker count, set before torch is imported and equal in the parallel workers and this process
    (its config is part of what the caches compare): the cores shared among --jobs workers."""
    if "--jobs" in sys.argv[:-1]:
        jobs = int(sys.argv[sys.argv.index("--jobs") + 1])
        if jobs > 0:
            os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(max(2, (os.cpu_count() or 8) // jobs)))


_compile_threads()
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = os.path.join(HERE, "..", "parity")

# name -> (input side, the zoo model's parameter count from docs/models.md)
MODELS = {
    "mambaout_femto": (224, 7_304_536),
    "rcvit_xs": (224, 3_200_700),
    "iformer_small": (224, 19_866_344),
    "ffnet_1": (256, 13_775_656),
    "raft_mlp_s": (224, 9_868_768),
    "ms_mlp_tiny": (224, 28_656_232),
    "wavemix": (224, 27_857_608),
}

results, skipped, notes = [], [], []
T0 = time.perf_counter()
BUDGET = 1e9
OUTDIR = "."


def dump():
    with open(os.path.join(OUTDIR, "catalog3_pytorch.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                       cudnn_benchmark=torch.backends.cudnn.benchmark, results=results, skipped=skipped, notes=notes), f, indent=1)


def left():
    return BUDGET - (time.perf_counter() - T0)


# ---- importing the official code ---------------------------------------------------------------------------------

def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks the defining module up in sys.modules
    spec.loader.exec_module(module)
    return module


def _timm_installed():
    try:
        import timm  # noqa: F401
        import timm.layers  # noqa: F401
        return True
    except Exception:
        return False


def prepare_imports(timm_dir=None, einops_dir=None):
    """Makes the official files importable: the installed timm with its moved names aliased, or (no timm: the build
    machine) timm's source files and stubs as tests/parity's fixture scripts use them; pywt and numpy's old name."""
    if einops_dir:
        sys.path.insert(0, os.path.abspath(einops_dir))
    sys.path.insert(0, os.path.abspath(PARITY))
    if _timm_installed():
        import timm.layers.helpers
        try:
            import timm.models.layers.helpers  # noqa: F401
        except ImportError:
            sys.modules["timm.models.layers.helpers"] = timm.layers.helpers
        import timm.models._builder as builder
        if not hasattr(builder, "_update_default_kwargs"):
            builder._update_default_kwargs = lambda *a, **k: None  # called only by FFNet's registered functions
        source = "timm " + importlib.import_module("timm").__version__
    else:
        if not timm_dir:
            raise SystemExit("timm is not installed: --timm must name timm's source folder (huggingface/pytorch-image-models)")
        from make_catalog3c_fixtures import _stub_timm  # timm's layers files and stubs, as for the parity fixtures
        _stub_timm(timm_dir)
        source = "timm source " + os.path.abspath(timm_dir) + " (layers imported alone, registry and builders stubbed)"
    from make_catalog3d_fixtures import shim_pywt
    if importlib.util.find_spec("pywt") is None:
        shim_pywt()
    try:
        import numpy.lib.function_base  # noqa: F401
    except ImportError:
        import numpy as np
        sys.modules["numpy.lib.function_base"] = types.SimpleNamespace(hamming=np.hamming)
    return source


def build(name, src):
    """The official model `name` at the zoo's configuration (random weights, eval)."""
    src = os.path.abspath(src)
    if name == "mambaout_femto":
        try:
            import timm
            if not getattr(sys.modules.get("timm.models._builder"), "__stub__", False):
                return timm.create_model("mambaout_femto", pretrained=False)
        except Exception:
            pass
        from make_catalog3_fixtures import import_mambaout  # the source fallback (no timm)
        mambaout, _ = import_mambaout(None)
        return mambaout.MambaOut(depths=(3, 3, 9, 3), dims=(48, 96, 192, 288))
    if name == "rcvit_xs":
        if importlib.util.find_spec("einops") is None:
            stub = types.ModuleType("einops")
            stub.rearrange = stub.repeat = None  # imported, never called by RCViT
            sys.modules["einops"] = stub
        return _load("rcvit", os.path.join(src, "CAS-ViT", "classification", "model", "rcvit.py")).rcvit_xs()
    if name == "iformer_small":
        return _load("inception_transformer", os.path.join(src, "iFormer", "models", "inception_transformer.py")).iformer_small()
    if name == "ffnet_1":
        m = _load("ffnet", os.path.join(src, "FFNet", "models", "ffnet.py"))
        # ffnet_1's arguments; the registered function also resolves a pretrained config, not needed to build it
        return m.FFNet(depth=[2, 2, 8, 2], embed_dim=[80, 160, 320, 640], in_dim=64, kernel_sizes=[3, 3, 3, 3],
                       kernel_sizes1=[3, 3, 7, 7], kernel_sizes2=[3, 3, 7, 7], expansion_ratios=[3, 3, 3, 3],
                       drop_path_rate=0.1)
    if name == "raft_mlp_s":
        sys.path.insert(0, os.path.join(src, "raft-mlp"))
        from libs.models import RaftMLP
        layers = [dict(depth=2, dim=64, patch_size=4, raft_size=2, embedding_kernels=[4, 8]),
                  dict(depth=2, dim=128, patch_size=2, raft_size=2, embedding_kernels=[2, 4]),
                  dict(depth=6, dim=256, patch_size=2, raft_size=2, embedding_kernels=[2, 4]),
                  dict(depth=2, dim=512, patch_size=2, raft_size=2, embedding_kernels=[2])]
        return RaftMLP(layers=layers, in_channels=3, pretrained_image_size=224, num_classes=1000,
                       token_expansion_factor=2, channel_expansion_factor=4, dropout=0.0, token_mixing_type="ser_pm",
                       embedding_type="emb_cross_mlp", shortcut=False, drop_path_rate=0.1)
    if name == "ms_mlp_tiny":
        m = _load("ms_mlp", os.path.join(src, "MS-MLP", "models", "ms_mlp.py"))
        return m.MS_MLP(img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96, depths=[3, 3, 9, 3],
                        shift_size=5, shift_dist=[-2, -1, 0, 1, 2],
                        mix_size=[[1, 1, 3, 5, 7], [1, 3, 3, 5, 7], [1, 5, 5, 5, 7], [1, 7, 7, 7, 7]], mlp_ratio=4.0,
                        drop_rate=0.0, drop_path_rate=0.1, patch_norm=True)
    if name == "wavemix":
        sys.path.insert(0, os.path.join(src, "WaveMix"))
        from wavemix.classification import WaveMix
        return WaveMix(num_classes=1000, depth=16, mult=2, ff_channel=192, final_dim=192, dropout=0.5, level=3,
                       initial_conv="pachify", patch_size=4, stride=2)
    raise KeyError(name)


def count(model):
    return sum(p.numel() for p in model.parameters())


def check_imports(src, names):
    """CPU: every official model built, its parameter count against the zoo's, one forward at batch 1."""
    failed = 0
    for name in names:
        side, expected = MODELS[name]
        try:
            torch.manual_seed(0)
            model = build(name, src).eval()
            n = count(model)
            with torch.no_grad():
                y = model(torch.randn(1, 3, side, side))
            ok = n == expected and tuple(y.shape) == (1, 1000) and bool(torch.isfinite(y).all())
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:15s} {type(model).__name__:22s} {n:>11,} parameters "
                  f"(zoo {expected:,}), output {list(y.shape)}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    return failed


# ---- timing ------------------------------------------------------------------------------------------------------

QUICK = False
DEVICE = "cuda"
WORKER_ARGS = []  # --timm / --einops, passed on to the compile workers


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, target_s=None, min_samples=5, max_samples=None, warmup=3):
    target_s = target_s if target_s is not None else (0.4 if QUICK else 1.0)
    max_samples = max_samples if max_samples is not None else (30 if QUICK else 60)
    for _ in range(warmup):
        fn()
    sync()
    samples, t_start = [], time.perf_counter()
    while len(samples) < max_samples and (len(samples) < min_samples or time.perf_counter() - t_start < target_s):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    return samples[len(samples) // 2], samples[0], len(samples)


def add(model, impl, dtype, batch, t, extra=None):
    med, mn, n = t
    r = dict(model=model, impl=impl, dtype=dtype, batch=batch, median_ms=med, min_ms=mn, samples=n,
             throughput=batch / (med / 1e3), unit="img/s")
    if extra:
        r.update(extra)
    results.append(r)
    print(f"{model:15s} {impl:44s} {dtype:9s} b{batch:<4d} {med:10.3f} ms (min {mn:.3f}, n={n:2d}) "
          f"{r['throughput']:10.1f} img/s" + (f"  {extra}" if extra else ""), flush=True)
    dump()


class CompileTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CompileTimeout()


def _example(name, b, dt, dev):
    side = MODELS[name][0]
    x = torch.randn(b, 3, side, side, device=dev, dtype=dt)
    # a hint, not a constraint: where the model specialises the batch, the second batch recompiles
    dynamo = getattr(torch, "_dynamo", None)  # absent before torch 2 (the build machine's smoke run)
    if dynamo is not None:
        getattr(dynamo, "maybe_mark_dynamic", dynamo.mark_dynamic)(x, 0)
    return x


def compile_worker(src, name, dts):
    """--compile-worker: one (model, dtype) compiled and called at batch 32 (the batch dimension dynamic, so batch 128
    reuses the graph; at batch 32 the worker's GPU memory stays small next to the others'), nothing timed."""
    dev = DEVICE
    torch.backends.cudnn.benchmark = True
    dt = getattr(torch, dts)
    t = time.perf_counter()
    torch.manual_seed(0)
    m = build(name, src).to(dev).to(dt).eval()
    cm = torch.compile(m, mode="default")
    with torch.no_grad():
        cm(_example(name, 32, dt, dev))
    sync()
    print(f"compiled {name} {dts} in {time.perf_counter() - t:.1f} s", flush=True)
    return 0


def precompile(src, names, dtypes, jobs, until_s):
    """Phase 1: every (model, dtype) compiled by `jobs` worker processes at once, to fill Inductor's on-disk caches;
    workers still running after `until_s` seconds are stopped. Returns the (name, dtype name) pairs compiled."""
    todo = [(n, str(dt).replace("torch.", "")) for dt in sorted(dtypes, key=lambda d: d != torch.bfloat16) for n in names]
    total, running, done = len(todo), {}, set()
    t0 = time.perf_counter()
    logdir = tempfile.mkdtemp(prefix="cat3_compile_")  # not under --out: the device call brings back only a few files
    while todo or running:
        if time.perf_counter() - t0 > until_s:
            for (name, dts), (p, log, started) in running.items():
                p.kill()
                p.wait()
                log.close()
                notes.append(f"precompile {name} {dts}: stopped after {time.perf_counter() - started:.0f} s (phase limit {until_s:.0f} s)")
                print(notes[-1], flush=True)
            notes.extend(f"precompile {name} {dts}: not started (phase limit {until_s:.0f} s)" for name, dts in todo)
            break
        while todo and len(running) < jobs:
            name, dts = todo.pop(0)
            log = open(os.path.join(logdir, f"{name}_{dts}.txt"), "w")
            cmd = [sys.executable, os.path.abspath(__file__), "--compile-worker", name, "--dtype", dts, "--src", src,
                   "--device", DEVICE] + WORKER_ARGS
            running[(name, dts)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, time.perf_counter())
        for key, (p, log, started) in list(running.items()):
            if p.poll() is None:
                continue
            log.close()
            del running[key]
            took = time.perf_counter() - started
            if p.returncode == 0:
                done.add(key)
                print(f"precompile {key[0]} {key[1]}: done in {took:.0f} s", flush=True)
            else:
                with open(log.name) as f:
                    tail = f.read()[-600:].strip().replace("\n", " | ")
                notes.append(f"precompile {key[0]} {key[1]}: failed (exit {p.returncode}) after {took:.0f} s: ...{tail}")
                print(notes[-1], flush=True)
        time.sleep(0.5)
    notes.append(f"precompile phase: {len(done)} of {total} compiled by {jobs} workers in {time.perf_counter() - t0:.0f} s")
    print(notes[-1], flush=True)
    return done


def bench(src, names, dtypes, compile_ok, jobs=0):
    dev = DEVICE
    torch.backends.cudnn.benchmark = True
    cached = precompile(src, names, dtypes, jobs, 0.45 * BUDGET) if compile_ok and jobs > 0 else set()
    for dt in dtypes:
        dts = str(dt).replace("torch.", "")
        for name in names:
            side = MODELS[name][0]
            try:
                torch.manual_seed(0)
                m = build(name, src).to(dev).to(dt).eval()
            except Exception as ex:
                notes.append(f"{name} {dts}: build failed: {type(ex).__name__}: {str(ex)[:300]}")
                print(notes[-1], flush=True)
                continue
            print(f"{name} {dts}: {count(m):,} parameters, {side}x{side}", flush=True)
            for b in (32, 128):
                if left() < 10:
                    skipped.append(f"{name} {dts} b{b} eager (budget)")
                    continue
                try:
                    x = torch.randn(b, 3, side, side, device=dev, dtype=dt)
                    with torch.no_grad():
                        add(name, "official, PyTorch eager (cudnn.benchmark)", dts, b, time_ms(lambda: m(x)))
                except Exception as ex:
                    notes.append(f"{name} {dts} b{b} eager failed: {type(ex).__name__}: {str(ex)[:300]}")
                    print(notes[-1], flush=True)
            del m
            if dev == "cuda":
                torch.cuda.empty_cache()
    if not compile_ok:
        return
    # compiles, bfloat16 first: one per model and dtype, the batch dimension dynamic
    signal.signal(signal.SIGALRM, _on_alarm)
    for dt in sorted(dtypes, key=lambda d: d != torch.bfloat16):
        dts = str(dt).replace("torch.", "")
        for name in names:
            estimate = (15 if (name, dts) in cached else 60) + (6 if QUICK else 12)
            if left() < estimate:
                skipped.append(f"{name} {dts} torch.compile (budget: {left():.0f} s left, estimate {estimate} s)")
                print(skipped[-1], flush=True)
                continue
            side = MODELS[name][0]
            try:
                signal.alarm(max(1, int(left() - 3)))
                torch.manual_seed(0)
                m = build(name, src).to(dev).to(dt).eval()
                cm = torch.compile(m, mode="default")
                for b in (32, 128):
                    x = _example(name, b, dt, dev)
                    with torch.no_grad():
                        ref = m(x)
                        sync()
                        t = time.perf_counter()
                        y = cm(x)
                        sync()
                        ct = time.perf_counter() - t
                        err = ((y.double() - ref.double()).norm() / ref.double().norm()).item()
                        add(name, "official, torch.compile (cudnn.benchmark)", dts, b, time_ms(lambda: cm(x)),
                            dict(first_call_s=round(ct, 1), rel_err_vs_eager=err, caches_filled=(name, dts) in cached))
            except CompileTimeout:
                notes.append(f"{name} {dts} torch.compile stopped: the budget ran out during it")
                skipped.append(f"{name} {dts} torch.compile (stopped at the budget)")
                print(notes[-1], flush=True)
            except Exception as ex:
                notes.append(f"{name} {dts} torch.compile failed (skipped): {type(ex).__name__}: {str(ex)[:300]}")
                skipped.append(f"{name} {dts} torch.compile (failed, see notes)")
                print(notes[-1], flush=True)
            finally:
                signal.alarm(0)
                if hasattr(torch, "_dynamo"):
                    torch._dynamo.reset()
                if dev == "cuda":
                    torch.cuda.empty_cache()


def main():
    global BUDGET, OUTDIR, QUICK, DEVICE
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=".cat3-src", help="the official files (make_cat3_src.sh)")
    ap.add_argument("--out", default=".")
    ap.add_argument("--budget", type=float, default=240, help="seconds for the whole run (phases and guards: see the module doc)")
    ap.add_argument("--quick", action="store_true", help="0.4 s / 30 samples per row instead of 1 s / 60")
    ap.add_argument("--jobs", type=int, default=0, help="compile every (model, dtype) first in N parallel processes (fills the caches)")
    ap.add_argument("--compile-worker", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a smoke run of the phases on the build machine
    ap.add_argument("--dtype", default="all", help="float32, bfloat16 or all")
    ap.add_argument("--models", default="all", help="comma-separated names, or all: " + ", ".join(MODELS))
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--check-imports", action="store_true", help="CPU: build each official model, count, one forward")
    ap.add_argument("--timm", help="timm's source folder, where timm is not installed (--check-imports)")
    ap.add_argument("--einops", help="einops' source folder, where einops is not installed (--check-imports)")
    a = ap.parse_args()
    names = list(MODELS) if a.models == "all" else a.models.split(",")
    source = prepare_imports(a.timm, a.einops)
    print(f"torch {torch.__version__}; {source}", flush=True)
    if a.check_imports:
        return 1 if check_imports(a.src, names) else 0
    DEVICE = a.device
    WORKER_ARGS[:] = (["--timm", a.timm] if a.timm else []) + (["--einops", a.einops] if a.einops else [])
    if a.compile_worker:
        return compile_worker(a.src, a.compile_worker, a.dtype)
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: nothing timed (--check-imports checks the imports on a CPU)")
        return 2
    BUDGET, OUTDIR, QUICK = a.budget, a.out, a.quick
    os.makedirs(a.out, exist_ok=True)
    notes.append(f"timm: {source}")
    dts = [torch.float32, torch.bfloat16] if a.dtype == "all" else [getattr(torch, a.dtype)]
    try:
        bench(a.src, names, dts, not a.no_compile, a.jobs)
    except Exception as ex:
        notes.append(f"failed: {type(ex).__name__}: {ex}")
        traceback.print_exc()
    dump()
    print("skipped:", skipped)
    print("notes:", notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
