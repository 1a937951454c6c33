"""The official PyTorch models of the catalog's third part, timed as Mix.Benchmarks.Gpu --only catalog3 times ours.

Usage: python3 catalog3_models.py [--src .cat3-src] [--out DIR] [--budget SECONDS] [--dtype float32|bfloat16|all]
                                  [--models NAME,NAME] [--no-compile]
       python3 catalog3_models.py --check-imports [--src .cat3-src] [--timm DIR] [--einops DIR]

- mambaout_femto: timm's own (timm.create_model; timm is installed on the GPU host).
- rcvit_xs (Tianfang-Zhang/CAS-ViT), iformer_small (sail-sg/iFormer), ffnet_1 (ysj9909/FFNet), raft_mlp_s
  (okojoalg/raft-mlp, configs/settings/imagenet-raft-mlp-cross-mlp-emb-s.yaml), ms_mlp_tiny (JegZheng/MS-MLP,
  configs/msmlp_tiny_patch4_shift5_224.yaml) and wavemix (pranavphoenix/WaveMix, Saved_weights/ImageNet/
  wavemix_28M_75.06.py: WaveMix-192/16, level 3, "pachify" stem): imported from the official files in --src (a folder
  built by make_cat3_src.sh, the files only), each built at the zoo model's configuration with random weights.
Images/s at batch 32 and 128, float32 and bfloat16 weights and inputs, at 224x224 (ffnet_1: 256x256, its registry
size), eval, torch.no_grad(), torch.backends.cudnn.benchmark = True: PyTorch eager, then torch.compile (default mode),
compiled once per model and dtype with the batch dimension marked dynamic (one compile serves both batches). Eager rows
come first for every model; compiles follow (bfloat16 first) while the time budget lasts; one whose compile fails, or
that no longer fits the budget, is listed in the JSON's "skipped" / "notes". Every sample is one call between
torch.cuda.synchronize()s (host clock), after warm-up; the median is reported (as ModelBench.TimeMs).

What the official files import but a built model never calls is provided where the installed packages lack it:
timm.models.layers.helpers (iFormer; timm 1.x moved it to timm.layers.helpers), timm.models._builder's
_update_default_kwargs (FFNet's registered functions, bypassed here by building FFNet directly), pywt (WaveMix's db1
filters; make_catalog3d_fixtures.py's stand-in, pywavelets' values) and numpy.lib.function_base (WaveMix imports hamming
from it; numpy 2 renamed it). --check-imports builds every official model on the CPU (the build machine's torch 1.13,
no timm or einops: --timm and --einops name their source folders, and timm is stubbed as the parity fixture scripts
stub it), counts its parameters against the zoo's, and runs one forward at batch 1.
"""
import argparse, importlib, importlib.util, json, os, sys, time, traceback, types
import torch

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

def time_ms(fn, target_s=1.0, min_samples=5, max_samples=60, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples, t_start = [], time.perf_counter()
    while len(samples) < max_samples and (len(samples) < min_samples or time.perf_counter() - t_start < target_s):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
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


def bench(src, names, dtypes, compile_ok, dev="cuda"):
    torch.backends.cudnn.benchmark = True
    built = {}
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
            torch.cuda.empty_cache()
    if not compile_ok:
        return
    # compiles, bfloat16 first: one per model and dtype, the batch dimension dynamic
    for dt in sorted(dtypes, key=lambda d: d != torch.bfloat16):
        dts = str(dt).replace("torch.", "")
        for name in names:
            if left() < 75:
                skipped.append(f"{name} {dts} torch.compile (budget: {left():.0f} s left)")
                print(skipped[-1], flush=True)
                continue
            side = MODELS[name][0]
            try:
                torch.manual_seed(0)
                m = build(name, src).to(dev).to(dt).eval()
                cm = torch.compile(m)
                for b in (32, 128):
                    x = torch.randn(b, 3, side, side, device=dev, dtype=dt)
                    # a hint, not a constraint: where the model specialises the batch, the second batch recompiles
                    getattr(torch._dynamo, "maybe_mark_dynamic", torch._dynamo.mark_dynamic)(x, 0)
                    with torch.no_grad():
                        t = time.perf_counter()
                        ref = m(x)
                        y = cm(x)
                        torch.cuda.synchronize()
                        ct = time.perf_counter() - t
                        err = ((y.double() - ref.double()).norm() / ref.double().norm()).item()
                        add(name, "official, torch.compile (cudnn.benchmark)", dts, b, time_ms(lambda: cm(x)),
                            dict(first_call_s=round(ct, 1), rel_err_vs_eager=err))
            except Exception as ex:
                notes.append(f"{name} {dts} torch.compile failed (skipped): {type(ex).__name__}: {str(ex)[:300]}")
                skipped.append(f"{name} {dts} torch.compile (failed, see notes)")
                print(notes[-1], flush=True)
            finally:
                torch._dynamo.reset()
                torch.cuda.empty_cache()


def main():
    global BUDGET, OUTDIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=".cat3-src", help="the official files (make_cat3_src.sh)")
    ap.add_argument("--out", default=".")
    ap.add_argument("--budget", type=float, default=240, help="seconds for the whole run (no compile starts with < 75 s left)")
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
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing timed (--check-imports checks the imports on a CPU)")
        return 2
    BUDGET, OUTDIR = a.budget, a.out
    os.makedirs(a.out, exist_ok=True)
    notes.append(f"timm: {source}")
    dts = [torch.float32, torch.bfloat16] if a.dtype == "all" else [getattr(torch, a.dtype)]
    try:
        bench(a.src, names, dts, not a.no_compile)
    except Exception as ex:
        notes.append(f"failed: {type(ex).__name__}: {ex}")
        traceback.print_exc()
    dump()
    print("skipped:", skipped)
    print("notes:", notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
