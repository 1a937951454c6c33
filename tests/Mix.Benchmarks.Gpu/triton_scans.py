"""The official Triton scans and layers, for Mix.Benchmarks.Gpu --only scans-vs-triton (same shapes, same JSON style).

Usage: python3 triton_scans.py --mamba DIR --fla DIR [--out DIR] [--budget SECONDS] [--only scans|decode|lm|all]
                               [--dtype float32|bfloat16|all] [--quick] [--check-imports]

--mamba DIR holds mamba_ssm/ (state-spaces/mamba's source: modules/mamba2.py, modules/ssd_minimal.py, ops/triton/,
distributed/, utils/torch.py, utils/determinism.py suffice) and --fla DIR holds fla/ (fla-org/flash-linear-attention).
Neither package is installed: mamba_ssm's package __init__ files import its CUDA extensions, so its packages are made
importable without running them, and causal_conv1d is absent (mamba_ssm then convolves with nn.Conv1d; its own
try/except), so only the pure-Python + Triton files run.

- Scans, L = 2K/4K/8K/16K, batch 1 and 4, float32 and bfloat16, forward time and tokens/s:
  SSD of Mamba-2-130m (24 heads x 64, 1 group, d_state 128): mamba_ssm's Triton mamba_chunk_scan_combined (chunk 256,
  dt bias + softplus, D, z) and its eager reference ssd_minimal_discrete (chunk 64; no D, z: a lower bound);
  GLA of a ~130M GLA (d_model 768, 6 heads: K 64, V 128): fla's chunk_gla and fused_recurrent_gla, and fla's eager
  naive_recurrent_gla (a Python loop over T).
- Decode step (one token, state given), batch 1 and 4: mamba_ssm's Triton selective_state_update in the Mamba-2 head
  layout (as Mamba2.step calls it) and fla's fused_recurrent_gla at T = 1.
- Whole LMs, prefill forward at L = 2K..16K, batch 1, bfloat16 and float32: mamba_ssm's Mamba2 layers (Triton scan,
  use_mem_eff_path=False since the fused conv path needs causal_conv1d) stacked as mamba2-130m (24 x pre-RMSNorm +
  residual, mamba_ssm's Triton RMSNorm, tied embedding, vocab 50288), and fla's GLAForCausalLM (d_model 768, 12 layers,
  6 heads, vocab 32000): the zoo's mamba2_lm and gla_lm at the same shapes are measured by the C# side.
Every sample is one call between torch.cuda.synchronize()s (host clock) after warm-up; the median is reported. Work
that would not fit the --budget is skipped and listed in the JSON's "skipped". Output: triton_scans.json.
--quick keeps the rows Mix.Benchmarks.Gpu --only scans-vs-triton --quick measures, so that both fit one device call:
bfloat16 only (unless --dtype says), L = 2K and 16K (scans at batch 1 and 4, LMs at batch 1), the decode steps at
batch 1, and only the official Triton paths (no eager or recurrent baselines). Triton's autotuning is left as it is.
"""
import argparse, importlib, json, math, os, sys, time, traceback, types

L_SET = (2048, 4096, 8192, 16384)
SSD = dict(h=24, p=64, g=1, n=128)          # Mamba-2-130m: d_model 768, expand 2, headdim 64
GLA = dict(h=6, K=64, V=128)                # d_model 768, expand_k 0.5, expand_v 1, 6 heads

results, skipped, notes = [], [], []
QUICK = False
OPS = ("ssd", "gla")
T0 = time.perf_counter()
BUDGET = 1e9
OUTDIR = "."


def fail(msg, code=2):
    print(f"triton_scans.py: {msg}", file=sys.stderr)
    sys.exit(code)


def stub_packages(root, names):
    """Makes packages importable from root without running their __init__ files (which import CUDA extensions)."""
    for name in names:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [os.path.join(root, *name.split("."))]
            sys.modules[name] = module


def stub_triton_for_import_check():
    """--check-imports on a machine without triton: triton's decorators keep the function (and autotune its configs,
    which mamba_ssm reads at import), anything else is a permissive placeholder, so that the official files' import
    graph and this script's package stubs can be checked; nothing can run then."""
    class P:
        def __getattr__(self, a):
            if a.startswith("__"): raise AttributeError(a)
            return P()
        def __call__(self, *a, **k): return P()
        def __getitem__(self, i): return P()
        def __iter__(self): return iter(())

    class Kernel(P):
        def __init__(self, fn, configs): self.fn, self.configs = fn, configs

    class Config:
        def __init__(self, kwargs=None, num_warps=4, num_stages=2, **options):
            self.kwargs, self.num_warps, self.num_stages, self.options = dict(kwargs or {}), num_warps, num_stages, options

    def decorator(configs=()):
        def wrap(f):
            k = f if isinstance(f, Kernel) else Kernel(f, [])
            k.configs = list(configs) or k.configs
            return k
        return wrap

    special = dict(Config=Config, autotune=lambda configs=(), **k: decorator(configs), heuristics=lambda *a, **k: decorator(),
                   jit=lambda fn=None, **k: Kernel(fn, []) if callable(fn) else decorator(),
                   cdiv=lambda a, b: -(-a // b), next_power_of_2=lambda n: 1 << max(0, (int(n) - 1).bit_length()))
    for name in ("triton", "triton.language", "triton.language.extra", "triton.language.extra.libdevice",
                 "triton.runtime", "triton.runtime.autotuner", "triton.compiler", "triton.testing"):
        m = types.ModuleType(name)
        table = special if name == "triton" else {}
        m.__getattr__ = (lambda t: lambda a: t[a] if a in t else (_raise(a) if a.startswith("__") else P()))(table)
        m.__version__ = "3.6.0"
        m.__path__ = []
        sys.modules[name] = m
    sys.modules["triton"].language = sys.modules["triton.language"]


def _raise(name):
    raise AttributeError(name)


def import_official(mamba_dir, fla_dir):
    stub_packages(mamba_dir, ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton", "mamba_ssm.modules",
                              "mamba_ssm.utils", "mamba_ssm.distributed"])
    sys.path.insert(0, fla_dir)
    mods = {}
    mods["ssd"] = importlib.import_module("mamba_ssm.ops.triton.ssd_combined")
    mods["ssu"] = importlib.import_module("mamba_ssm.ops.triton.selective_state_update")
    mods["ssd_minimal"] = importlib.import_module("mamba_ssm.modules.ssd_minimal")
    mods["mamba2"] = importlib.import_module("mamba_ssm.modules.mamba2")
    mods["rmsnorm"] = importlib.import_module("mamba_ssm.ops.triton.layer_norm")
    mods["gla"] = importlib.import_module("fla.ops.gla")
    mods["gla_naive"] = importlib.import_module("fla.ops.gla.naive")
    return mods


def lengths():
    return (L_SET[0], L_SET[-1]) if QUICK else L_SET


def left():
    return BUDGET - (time.perf_counter() - T0)


def time_ms(fn, target_s=0.8, min_samples=5, max_samples=50, warmup=3):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples, t0 = [], time.perf_counter()
    while len(samples) < max_samples and (len(samples) < min_samples or time.perf_counter() - t0 < target_s):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    return samples[len(samples) // 2], samples[0], len(samples)


def measure(op, impl, dtype, batch, L, fn, tokens, shape):
    """Times fn unless one call (estimated after a first run) would not fit the budget; records tokens/s."""
    import torch
    if left() < 5:
        skipped.append(f"{op} {impl} {dtype} b{batch} L{L} (budget)")
        return
    try:
        fn()  # the first call compiles and autotunes the Triton kernels: not an estimate of one call
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        once = time.perf_counter() - t
        if once * 10 > left():
            skipped.append(f"{op} {impl} {dtype} b{batch} L{L} (budget; one call took {once:.2f} s)")
            return
        med, mn, n = time_ms(fn, target_s=min(0.8, left() / 50))
    except Exception as ex:
        notes.append(f"{op} {impl} {dtype} b{batch} L{L} failed: {type(ex).__name__}: {ex}")
        traceback.print_exc()
        return
    r = dict(op=op, impl=impl, dtype=dtype, batch=batch, seq_len=L, shape=shape, median_ms=med, min_ms=mn, samples=n,
             tokens_per_s=tokens / (med / 1e3))
    results.append(r)
    print(f"{op:10s} {impl:42s} {dtype:9s} b{batch:<2d} L{L:<6d} {med * 1e3 if L == 1 else med:10.3f} "
          f"{'us' if L == 1 else 'ms'} (min {mn:.3f} ms, n={n:2d}) {r['tokens_per_s']:14.0f} tok/s", flush=True)


def scans(m, dts):
    import torch
    import torch.nn.functional as F
    ssd_combined = m["ssd"].mamba_chunk_scan_combined
    ssd_minimal = m["ssd_minimal"].ssd_minimal_discrete
    chunk_gla, fused_recurrent_gla = m["gla"].chunk_gla, m["gla"].fused_recurrent_gla
    naive_gla = m["gla_naive"].naive_recurrent_gla
    h, p, g, n = SSD["h"], SSD["p"], SSD["g"], SSD["n"]
    gh, K, V = GLA["h"], GLA["K"], GLA["V"]
    def gla_rows(b, L, dt, dts_):
        q = torch.randn(b, L, gh, K, device="cuda", dtype=dt)
        k = torch.randn(b, L, gh, K, device="cuda", dtype=dt)
        v = torch.randn(b, L, gh, V, device="cuda", dtype=dt)
        gk = (F.logsigmoid(torch.randn(b, L, gh, K, device="cuda")) / 16).to(dt)
        scale = K ** -0.5
        shape = f"b{b} T{L} h{gh} K{K} V{V}"
        with torch.no_grad():
            measure("gla_scan", "fla chunk_gla (Triton)", dts_, b, L,
                    lambda: chunk_gla(q, k, v, gk, scale=scale, output_final_state=True), b * L, shape)
            if not QUICK:
                measure("gla_scan", "fla fused_recurrent_gla (Triton)", dts_, b, L,
                        lambda: fused_recurrent_gla(q, k, v, gk=gk, scale=scale, output_final_state=True), b * L, shape)
            if L == L_SET[0] and not QUICK:
                measure("gla_scan", "fla naive_recurrent_gla (eager loop)", dts_, b, L,
                        lambda: naive_gla(q, k, v, gk, output_final_state=True), b * L, shape)
        del q, k, v, gk
        torch.cuda.empty_cache()

    for dt in dts:
        dts_ = str(dt).replace("torch.", "")
        for b in (1, 4):
            for L in lengths():
                torch.manual_seed(0)
                if "ssd" not in OPS:
                    gla_rows(b, L, dt, dts_)
                    continue
                x = torch.randn(b, L, h, p, device="cuda", dtype=dt)
                z = torch.randn(b, L, h, p, device="cuda", dtype=dt)
                dtv = torch.randn(b, L, h, device="cuda", dtype=dt)
                A = -torch.rand(h, device="cuda") * 4 - 0.5
                B = torch.randn(b, L, g, n, device="cuda", dtype=dt)
                C = torch.randn(b, L, g, n, device="cuda", dtype=dt)
                D = torch.randn(h, device="cuda")
                bias = torch.randn(h, device="cuda") * 0.1 - 2
                shape = f"b{b} L{L} h{h} p{p} g{g} n{n}"
                with torch.no_grad():
                    measure("ssd_scan", "mamba_ssm mamba_chunk_scan_combined (Triton)", dts_, b, L,
                            lambda: ssd_combined(x, dtv, A, B, C, 256, D=D, z=z, dt_bias=bias, dt_softplus=True), b * L, shape)
                    if not QUICK:
                        d = F.softplus(dtv.float() + bias)
                        Bh, Ch = B.repeat_interleave(h // g, dim=2), C.repeat_interleave(h // g, dim=2)
                        measure("ssd_scan", "mamba_ssm ssd_minimal_discrete (eager, no D/z)", dts_, b, L,
                                lambda: ssd_minimal(x * d.unsqueeze(-1).to(dt), (A * d).to(dt), Bh, Ch, 64), b * L, shape)
                del x, z, dtv, B, C
                if "gla" in OPS:
                    gla_rows(b, L, dt, dts_)


def decode(m, dts):
    import torch
    import torch.nn.functional as F
    ssu = m["ssu"].selective_state_update
    fused_recurrent_gla = m["gla"].fused_recurrent_gla
    h, p, g, n = SSD["h"], SSD["p"], SSD["g"], SSD["n"]
    gh, K, V = GLA["h"], GLA["K"], GLA["V"]
    for dt in dts:
        dts_ = str(dt).replace("torch.", "")
        for b in (1,) if QUICK else (1, 4):
            torch.manual_seed(0)
            state = torch.randn(b, h, p, n, device="cuda", dtype=dt)
            x = torch.randn(b, h, p, device="cuda", dtype=dt)
            z = torch.randn(b, h, p, device="cuda", dtype=dt)
            dtv = torch.randn(b, h, device="cuda", dtype=dt)
            A = -torch.rand(h, device="cuda") * 4 - 0.5
            B = torch.randn(b, g, n, device="cuda", dtype=dt)
            C = torch.randn(b, g, n, device="cuda", dtype=dt)
            D = torch.randn(h, device="cuda")
            bias = torch.randn(h, device="cuda") * 0.1 - 2
            # Mamba2.step's call: per-head scalars broadcast over the head dim with stride 0
            A_ = A[:, None, None].expand(h, p, n).to(torch.float32)
            dt_, bias_, D_ = dtv[:, :, None].expand(b, h, p), bias[:, None].expand(h, p), D[:, None].expand(h, p)
            with torch.no_grad():
                measure("ssd_step", "mamba_ssm selective_state_update (Triton)", dts_, b, 1,
                        lambda: ssu(state, x, dt_, A_, B, C, D=D_, z=z, dt_bias=bias_, dt_softplus=True), b,
                        f"b{b} h{h} p{p} g{g} n{n}")
            S = torch.randn(b, gh, K, V, device="cuda", dtype=torch.float32)
            q = torch.randn(b, 1, gh, K, device="cuda", dtype=dt)
            k = torch.randn(b, 1, gh, K, device="cuda", dtype=dt)
            v = torch.randn(b, 1, gh, V, device="cuda", dtype=dt)
            gk = (F.logsigmoid(torch.randn(b, 1, gh, K, device="cuda")) / 16).to(dt)
            with torch.no_grad():
                measure("gla_step", "fla fused_recurrent_gla T=1 (Triton)", dts_, b, 1,
                        lambda: fused_recurrent_gla(q, k, v, gk=gk, scale=K ** -0.5, initial_state=S, output_final_state=True),
                        b, f"b{b} h{gh} K{K} V{V}")


def lms(m, dts):
    import torch
    import torch.nn as nn
    Mamba2 = m["mamba2"].Mamba2
    RMSNorm = m["rmsnorm"].RMSNorm

    class Mamba2Stack(nn.Module):
        """mamba2-130m as MambaLMHeadModel stacks it: embedding, 24 x (x + Mamba2(RMSNorm(x))), RMSNorm, tied head."""
        def __init__(self, vocab=50288, d=768, n_layer=24):
            super().__init__()
            self.embedding = nn.Embedding(vocab, d)
            self.norms = nn.ModuleList(RMSNorm(d, eps=1e-5) for _ in range(n_layer))
            self.mixers = nn.ModuleList(Mamba2(d, d_state=128, d_conv=4, expand=2, headdim=64, ngroups=1, chunk_size=256,
                                               use_mem_eff_path=False, layer_idx=i) for i in range(n_layer))
            self.norm_f = RMSNorm(d, eps=1e-5)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.embedding.weight

        def forward(self, ids):
            x = self.embedding(ids)
            for norm, mixer in zip(self.norms, self.mixers):
                x = x + mixer(norm(x))
            return self.lm_head(self.norm_f(x))

    def gla_lm():
        from fla.models import GLAConfig, GLAForCausalLM
        cfg = GLAConfig(hidden_size=768, num_hidden_layers=12, num_heads=6, expand_k=0.5, expand_v=1.0, hidden_ratio=4,
                        vocab_size=32000, attn_mode="chunk", fuse_cross_entropy=False)
        return GLAForCausalLM(cfg)

    for name, make, vocab in (("mamba2_lm", Mamba2Stack, 50288), ("gla_lm", gla_lm, 32000)):
        for dt in dts:
            dts_ = str(dt).replace("torch.", "")
            try:
                model = make().to("cuda", dt).eval()
            except Exception as ex:
                notes.append(f"{name} {dts_} build failed: {type(ex).__name__}: {ex}")
                traceback.print_exc()
                continue
            params = sum(t.numel() for t in model.parameters())
            for L in lengths():
                ids = torch.randint(0, vocab, (1, L), device="cuda")
                fwd = (lambda: model(ids)) if name == "mamba2_lm" else (lambda: model(input_ids=ids, use_cache=False).logits)
                with torch.no_grad():
                    measure(name, f"official layers ({params / 1e6:.0f}M params)", dts_, 1, L, fwd, L, f"b1 L{L}")
            del model
            torch.cuda.empty_cache()


def dump():
    import torch
    with open(os.path.join(OUTDIR, "triton_scans.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, device=torch.cuda.get_device_name(), quick=QUICK, ssd=SSD, gla=GLA, results=results,
                       skipped=skipped, notes=notes, versions=VERSIONS), f, indent=1)


VERSIONS = {}


def main():
    global BUDGET, OUTDIR, QUICK
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mamba", required=True, help="folder holding mamba_ssm/ (state-spaces/mamba source)")
    ap.add_argument("--fla", required=True, help="folder holding fla/ (fla-org/flash-linear-attention source)")
    ap.add_argument("--out", default=".")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; work that would not fit is skipped")
    ap.add_argument("--only", default="all", choices=("scans", "decode", "lm", "all"))
    ap.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "all"),
                    help="default: all, or bfloat16 with --quick")
    ap.add_argument("--ops", default="ssd,gla", help="scans only: ssd, gla or ssd,gla (Triton's first autotuning of each costs minutes)")
    ap.add_argument("--quick", action="store_true", help="the rows of the C# side's --quick only (see above)")
    ap.add_argument("--check-imports", action="store_true",
                    help="import the official files (with a placeholder triton where none is installed) and stop")
    a = ap.parse_args()
    mamba_dir, fla_dir = os.path.abspath(a.mamba), os.path.abspath(a.fla)
    for path, what in ((os.path.join(mamba_dir, "mamba_ssm", "ops", "triton", "ssd_combined.py"), "--mamba"),
                       (os.path.join(fla_dir, "fla", "ops", "gla", "chunk.py"), "--fla")):
        if not os.path.isfile(path):
            fail(f"{what}: {path} not found (give the folder that holds the package folder)")
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed in this Python")
    if a.check_imports:
        try:
            importlib.import_module("triton")
        except ImportError:
            stub_triton_for_import_check()
        try:
            importlib.import_module("huggingface_hub")
        except ImportError:  # mamba2.py's base class only (transformers brings it on the GPU host)
            hub = types.ModuleType("huggingface_hub")
            hub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {"__init_subclass__": classmethod(lambda c, **k: None)})
            sys.modules["huggingface_hub"] = hub
        placeholder = getattr(sys.modules["triton"], "__version__", "") == "3.6.0" and "triton.testing" in sys.modules
        try:
            import_official(mamba_dir, fla_dir)
        except Exception as ex:
            traceback.print_exc()
            print("imported:", ", ".join(sorted(k for k in sys.modules if k.startswith(("mamba_ssm.", "fla.")))))
            fail(f"importing the official files failed: {type(ex).__name__}: {ex}"
                 + (" (with the placeholder triton: fla probes the device through triton's driver at import)" if placeholder else ""), 4)
        print("official files import:", ", ".join(sorted(k for k in sys.modules if k.startswith(("mamba_ssm.", "fla.ops.gla")))))
        return
    if not torch.cuda.is_available():
        fail(f"CUDA is not available to PyTorch {torch.__version__}: run this on the GPU host", 3)
    try:
        import triton
        VERSIONS["triton"] = triton.__version__
    except ImportError:
        fail("triton is not installed: the official kernels need it", 3)
    BUDGET, OUTDIR, QUICK = a.budget, a.out, a.quick
    global OPS
    OPS = tuple(o.strip() for o in a.ops.split(",") if o.strip())
    os.makedirs(OUTDIR, exist_ok=True)
    mods = import_official(mamba_dir, fla_dir)
    VERSIONS.update(torch=torch.__version__, fla=getattr(sys.modules.get("fla"), "__version__", "?"))
    print(f"torch {torch.__version__}, triton {VERSIONS['triton']}, fla {VERSIONS['fla']}, {torch.cuda.get_device_name()}", flush=True)
    dtype = a.dtype or ("bfloat16" if a.quick else "all")
    dts = [torch.bfloat16, torch.float32] if dtype == "all" else [getattr(torch, dtype)]
    for part, fn in (("scans", scans), ("decode", decode), ("lm", lms)):
        if a.only in ("all", part):
            try:
                fn(mods, dts)
            except Exception as ex:
                notes.append(f"{part} failed: {type(ex).__name__}: {ex}")
                traceback.print_exc()
            dump()
    print("skipped:", skipped)
    print("notes:", notes)


if __name__ == "__main__":
    main()
