"""Whole-model PyTorch baselines for Mix.Benchmarks.Gpu's model cases (same shapes, same timing method).

Usage: python3 pytorch_models.py [--out DIR] [--budget SECONDS] [--only vision|mamba|mamba-first|fusion|all] [--dtype float32|bfloat16|all]
                                 [--fusion-rows MODEL-PREFIX:BATCH,...]
                                 [--no-compile] [--reduce-overhead]

- PoolFormer-S12 and ConvFormer-S18 written in plain PyTorch with timm's math (timm is not installed on the GPU host),
  224x224, batch 1/32/128, float32 and bfloat16 weights and inputs, eager and torch.compile (default mode).
- Mamba LM of mamba-130m's shape through Hugging Face transformers' MambaForCausalLM (slow path: no mamba_ssm
  kernels on the host): prefill at L = 512/2K/8K, batch 1, and greedy decode token by token. torch.compile of the
  prefill is not attempted (the slow path's scan is a Python loop over L, which dynamo would unroll L x 24 times);
  the decode step is also written in plain PyTorch (same math as HF's cached slow path) and compiled.
Every sample is one call between torch.cuda.synchronize()s (host clock), after warm-up; the median is reported.
Work that would not fit the time budget is skipped and listed in the JSON's "skipped".
"""
import argparse, json, math, os, statistics, sys, time, traceback
import torch
import torch.nn as nn
import torch.nn.functional as F

dev = "cuda"
results, parts, skipped, notes, profiles = [], [], [], [], {}
T0 = time.perf_counter()
BUDGET = 1e9
OUTDIR = "."


def dump():
    with open(os.path.join(OUTDIR, "models_pytorch.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, device=torch.cuda.get_device_name(), results=results, parts=parts,
                       profiles=profiles, skipped=skipped, notes=notes), f, indent=1)


def left():
    return BUDGET - (time.perf_counter() - T0)


def time_ms(fn, target_s=1.2, min_samples=5, max_samples=60, warmup=3):
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


def add(model, impl, dtype, batch, L, t, work, unit, extra=None):
    med, mn, n = t
    r = dict(model=model, impl=impl, dtype=dtype, batch=batch, seq_len=L, median_ms=med, min_ms=mn, samples=n,
             throughput=work / (med / 1e3), unit=unit)
    if extra:
        r.update(extra)
    results.append(r)
    print(f"{model:16s} {impl:34s} {dtype:9s} b{batch:<4d} L{L:<5d} {med:10.3f} ms (min {mn:.3f}, n={n:2d}) "
          f"{r['throughput']:12.1f} {unit}" + (f"  {extra}" if extra else ""), flush=True)
    dump()


# ---- MetaFormer (timm metaformer.py math) ---------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):  # timm LayerNorm2d: LayerNorm over C of NCHW
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerNorm2dNoBias(LayerNorm2d):
    def __init__(self, c, eps=1e-5):
        super().__init__(c, eps=eps)
        self.bias = None


class GroupNorm1(nn.GroupNorm):
    def __init__(self, c, eps=1e-5):
        super().__init__(1, c, eps=eps)


class StarReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.scale * F.relu(x) ** 2 + self.bias


class SquaredReLU(nn.Module):
    def forward(self, x):
        return torch.square(F.relu(x))


class Scale(nn.Module):
    def __init__(self, dim, init):
        super().__init__()
        self.scale = nn.Parameter(init * torch.ones(dim))

    def forward(self, x):
        return x * self.scale.view(-1, 1, 1)


class Pooling(nn.Module):
    def __init__(self, pool_size=3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


class SepConv(nn.Module):
    def __init__(self, dim, expansion=2, k=7):
        super().__init__()
        mid = int(expansion * dim)
        self.pwconv1 = nn.Conv2d(dim, mid, 1, bias=False)
        self.act1 = StarReLU()
        self.dwconv = nn.Conv2d(mid, mid, k, padding=k // 2, groups=mid, bias=False)
        self.pwconv2 = nn.Conv2d(mid, dim, 1, bias=False)

    def forward(self, x):
        return self.pwconv2(self.dwconv(self.act1(self.pwconv1(x))))


class ConvMlp(nn.Module):
    def __init__(self, dim, hidden, act, bias):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1, bias=bias)
        self.act = act()
        self.fc2 = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, mixer, norm, act, bias, ls, rs):
        super().__init__()
        self.norm1 = norm(dim)
        self.token_mixer = mixer(dim)
        self.layer_scale1 = Scale(dim, ls) if ls is not None else nn.Identity()
        self.res_scale1 = Scale(dim, rs) if rs is not None else nn.Identity()
        self.norm2 = norm(dim)
        self.mlp = ConvMlp(dim, 4 * dim, act, bias)
        self.layer_scale2 = Scale(dim, ls) if ls is not None else nn.Identity()
        self.res_scale2 = Scale(dim, rs) if rs is not None else nn.Identity()

    def forward(self, x):
        x = self.res_scale1(x) + self.layer_scale1(self.token_mixer(self.norm1(x)))
        return self.res_scale2(x) + self.layer_scale2(self.mlp(self.norm2(x)))


class MlpHead(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = SquaredReLU()
        self.norm = nn.LayerNorm(4 * dim)
        self.fc2 = nn.Linear(4 * dim, classes)

    def forward(self, x):
        return self.fc2(self.norm(self.act(self.fc1(x))))


class MetaFormer(nn.Module):
    def __init__(self, depths, dims, mixer, norm, act, bias, ds_norm, ls, rs, mlp_head, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 7, 4, 2), ds_norm(dims[0]))
        stages = []
        for i, d in enumerate(depths):
            ds = nn.Identity() if i == 0 else nn.Sequential(ds_norm(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], 3, 2, 1))
            stages.append(nn.Sequential(ds, *[Block(dims[i], mixer, norm, act, bias, ls[i], rs[i]) for _ in range(d)]))
        self.stages = nn.Sequential(*stages)
        self.head_norm = LayerNorm2d(dims[-1])
        self.fc = MlpHead(dims[-1], classes) if mlp_head else nn.Linear(dims[-1], classes)

    def forward_head(self, x):
        x = x.mean((2, 3), keepdim=True)
        return self.fc(self.head_norm(x).flatten(1))

    def forward(self, x):
        return self.forward_head(self.stages(self.stem(x)))


def poolformer_s12():
    return MetaFormer([2, 2, 6, 2], [64, 128, 320, 512], lambda d: Pooling(3), GroupNorm1, nn.GELU, True,
                      lambda d: nn.Identity(), [1e-5] * 4, [None] * 4, False)


def convformer_s18():
    return MetaFormer([3, 3, 9, 3], [64, 128, 320, 512], lambda d: SepConv(d), LayerNorm2dNoBias, StarReLU, False,
                      LayerNorm2dNoBias, [None] * 4, [None, None, 1.0, 1.0], True)


def profile_top(fn, k=12):
    from torch.profiler import profile, ProfilerActivity
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        self_dev = getattr(e, "self_device_time_total", None)
        if self_dev is None:
            self_dev = getattr(e, "self_cuda_time_total", 0)
        rows.append((e.key, 0, self_dev / 5 / 1e3, e.count // 5))
    # kernels only (self device time), the rest double-counts
    rows = [r for r in rows if r[2] > 0]
    rows.sort(key=lambda r: -r[2])
    total = sum(r[2] for r in rows)
    return dict(total_kernel_ms=total, top=[dict(name=r[0][:90], self_ms=r[2], calls=r[3]) for r in rows[:k]])


def vision(compile_ok, dtypes):
    torch.backends.cudnn.benchmark = False  # PyTorch's default, as in the TorchSharp run
    for dt in dtypes:
        for name, mk in (("PoolFormer-S12", poolformer_s12), ("ConvFormer-S18", convformer_s18)):
            torch.manual_seed(0)
            m = mk().to(dev).to(dt).eval()
            nparams = sum(p.numel() for p in m.parameters())
            print(f"{name} {dt}: {nparams:,} parameters", flush=True)
            cm = torch.compile(m) if compile_ok else None
            dts = str(dt).replace("torch.", "")
            for b in (1, 32, 128):
                x = torch.randn(b, 3, 224, 224, device=dev, dtype=dt)
                with torch.no_grad():
                    add(name, "PyTorch eager", dts, b, 0, time_ms(lambda: m(x)), b, "img/s")
                    if cm is None:
                        continue
                    if left() < 100:
                        skipped.append(f"{name} {dts} b{b} torch.compile (budget)")
                        continue
                    try:
                        t = time.perf_counter()
                        ref = m(x)
                        y = cm(x)
                        torch.cuda.synchronize()
                        ct = time.perf_counter() - t
                        err = ((y.double() - ref.double()).norm() / ref.double().norm()).item()
                        add(name, "torch.compile", dts, b, 0, time_ms(lambda: cm(x)), b, "img/s",
                            dict(compile_s=round(ct, 1), rel_err_vs_eager=err))
                    except Exception as ex:
                        notes.append(f"{name} {dts} b{b} torch.compile failed: {type(ex).__name__}: {str(ex)[:200]}")
                        print(notes[-1], flush=True)
            # per-part eager times at batch 32 (compare with the TorchSharp run's parts) and a kernel profile
            with torch.no_grad():
                x = torch.randn(32, 3, 224, 224, device=dev, dtype=dt)
                h = x
                seq = [("stem", m.stem)] + [(f"stage {i}", s) for i, s in enumerate(m.stages)] + [("head", m.forward_head)]
                for part, f in seq:
                    inp = h
                    med, _, _ = time_ms(lambda: f(inp), target_s=0.4)
                    parts.append(dict(model=name, dtype=dts, batch=32, part=part, impl="PyTorch eager", median_ms=med))
                    h = f(inp)
                if left() > 45:
                    try:
                        profiles[f"{name} {dts} b32 eager"] = profile_top(lambda: m(x))
                        if cm is not None and any(r["model"] == name and r["dtype"] == dts and r["batch"] == 32 and r["impl"] == "torch.compile" for r in results):
                            profiles[f"{name} {dts} b32 torch.compile"] = profile_top(lambda: cm(x))
                    except Exception as ex:
                        notes.append(f"profile {name} {dts}: {ex}")
            del m, cm
            torch.cuda.empty_cache()


# ---- fusion planner (--only fusion) ------------------------------------------------------------------------------

class ChanRMSNorm(nn.Module):  # tests/Mix.Generator.Tests/Models/fusion.mix chan_rmsnorm
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, 1, 1))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(1, keepdim=True) + self.eps) * self.weight


class GatedDwconv(nn.Module):  # fusion.mix gated_dwconv: proj(silu(a) * dwconv(b))
    def __init__(self, dim, expansion=2, kernel_size=7):
        super().__init__()
        inner = expansion * dim
        self.pw = nn.Conv2d(dim, 2 * inner, 1)
        self.dwconv = nn.Conv2d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner)
        self.proj = nn.Conv2d(inner, dim, 1)

    def forward(self, x):
        a, b = self.pw(x).chunk(2, 1)
        return self.proj(F.silu(a) * self.dwconv(b))


def gated_mixer(dim=128, depth=4):  # fusion.mix fusion_gated(dim = 128, depth = 4)
    return nn.Sequential(*[m for _ in range(depth) for m in (ChanRMSNorm(dim), GatedDwconv(dim))])


FUSION_ROWS = ()
# --reduce-overhead: the fusion rows also under torch.compile(mode="reduce-overhead"), PyTorch's CUDA graphs, next to
# Mix.Benchmarks.Gpu's "one CUDA graph a forward" rows (graphs against graphs)
REDUCE_OVERHEAD = False


def wanted(name, b):
    # --fusion-rows ConvFormer:128,gated:1 keeps those (model-name prefix, batch) rows only: torch.compile takes 20-40 s per
    # model and batch on a fresh host, so a shared device call picks the rows that decide a comparison
    return not FUSION_ROWS or any(name.startswith(p) and (bb == "*" or int(bb) == b) for p, bb in FUSION_ROWS)


def fusion(compile_ok, dtypes):
    # timm's own models under torch.compile with cudnn.benchmark (the fastest stock setting), and the test-only gated
    # mixer in plain PyTorch, eager and compiled; Mix.Benchmarks.Gpu --only fusion measures ours in the same device call.
    torch.backends.cudnn.benchmark = True
    try:
        import timm
    except ImportError as ex:
        timm = None
        notes.append(f"timm unavailable: {ex}")
    cases = []
    if timm is not None:
        for name, tname in (("PoolFormer-S12", "poolformer_s12"), ("ConvFormer-S18", "convformer_s18"), ("CAFormer-S18", "caformer_s18")):
            cases.append((name, lambda t=tname: timm.create_model(t, pretrained=False), lambda b: (b, 3, 224, 224), (1, 32, 128), "timm"))
    cases.append(("gated mixer (test .mix)", gated_mixer, lambda b: (b, 128, 56, 56), (1, 32), "PyTorch"))
    for dt in dtypes:
        dts = str(dt).replace("torch.", "")
        for name, mk, shape, batches, who in cases:
            batches = [b for b in batches if wanted(name, b)]
            if not batches:
                continue
            torch.manual_seed(0)
            m = mk().to(dev).to(dt).eval()
            cm = torch.compile(m) if compile_ok else None
            for b in batches:
                x = torch.randn(*shape(b), device=dev, dtype=dt)
                with torch.no_grad():
                    add(name, f"{who} eager (cudnn.benchmark)", dts, b, 0, time_ms(lambda: m(x)), b, "img/s")
                    if cm is None:
                        continue
                    if left() < 60:
                        skipped.append(f"{name} {dts} b{b} torch.compile (budget)")
                        continue
                    try:
                        t = time.perf_counter()
                        ref = m(x)
                        y = cm(x)
                        torch.cuda.synchronize()
                        ct = time.perf_counter() - t
                        err = ((y.double() - ref.double()).norm() / ref.double().norm()).item()
                        add(name, f"{who} torch.compile (cudnn.benchmark)", dts, b, 0, time_ms(lambda: cm(x)), b, "img/s",
                            dict(compile_s=round(ct, 1), rel_err_vs_eager=err))
                    except Exception as ex:
                        notes.append(f"{name} {dts} b{b} torch.compile failed: {type(ex).__name__}: {str(ex)[:200]}")
                        print(notes[-1], flush=True)
                    if REDUCE_OVERHEAD:
                        if left() < 60:
                            skipped.append(f"{name} {dts} b{b} torch.compile reduce-overhead (budget)")
                            continue
                        try:
                            torch._dynamo.reset()
                            gm = torch.compile(m, mode="reduce-overhead")
                            t = time.perf_counter()
                            for _ in range(3):   # cudagraph trees record after warm-up calls
                                y = gm(x)
                            torch.cuda.synchronize()
                            ct = time.perf_counter() - t
                            err = ((y.double() - m(x).double()).norm() / m(x).double().norm()).item()
                            add(name, f"{who} torch.compile mode=reduce-overhead (CUDA graphs, cudnn.benchmark)", dts, b, 0,
                                time_ms(lambda: gm(x)), b, "img/s", dict(compile_s=round(ct, 1), rel_err_vs_eager=err))
                            del gm
                        except Exception as ex:
                            notes.append(f"{name} {dts} b{b} torch.compile reduce-overhead failed: {type(ex).__name__}: {str(ex)[:200]}")
                            print(notes[-1], flush=True)
            del m, cm
            torch.cuda.empty_cache()


DECODE_ONLY = False
DECODE_CONFIGS = ""

# ---- Mamba ---------------------------------------------------------------------------------------------------

def mamba(compile_ok):
    from transformers import MambaConfig, MambaForCausalLM
    cfg = MambaConfig(vocab_size=50280, hidden_size=768, state_size=16, num_hidden_layers=24, expand=2, conv_kernel=4,
                      use_bias=False, use_conv_bias=True, residual_in_fp32=True)
    torch.manual_seed(0)
    m = MambaForCausalLM(cfg).to(dev).eval()
    nparams = sum(p.numel() for p in m.parameters())
    import transformers
    print(f"HF MambaForCausalLM (transformers {transformers.__version__}): {nparams:,} parameters", flush=True)
    with torch.no_grad():
        for L in (() if DECODE_ONLY else (512, 2048, 8192)):
            ids = torch.randint(0, 50280, (1, L), device=dev)
            # one timed estimate decides how many samples fit
            torch.cuda.synchronize(); t = time.perf_counter(); m(input_ids=ids); torch.cuda.synchronize()
            est = time.perf_counter() - t
            if left() < 4 * est + 30:
                skipped.append(f"Mamba HF eager prefill L{L} (budget; one call took {est:.1f} s)")
                continue
            n = 5 if est < 2 else 3
            add("Mamba-130m", "HF transformers eager (slow path)", "float32", 1, L,
                time_ms(lambda: m(input_ids=ids), target_s=0, min_samples=n, max_samples=n, warmup=1), L, "tok/s")

        # decode: HF's own cached forward, if its API takes it
        prompt = torch.randint(0, 50280, (1, 16), device=dev)
        steps = 64
        try:
            if DECODE_ONLY:
                raise RuntimeError("--decode-only: HF's own cached decode not measured")
            out = m(input_ids=prompt, use_cache=True)
            cache0 = out.cache_params
            first = out.logits[:, -1].argmax(-1, keepdim=True)

            def hf_run():
                import copy
                cache = copy.deepcopy(cache0)
                tok = first
                for s in range(steps):
                    o = m(input_ids=tok, cache_params=cache, use_cache=True,
                          cache_position=torch.tensor([16 + s], device=dev))
                    cache = o.cache_params
                    tok = o.logits[:, -1].argmax(-1, keepdim=True)
            add("Mamba-130m", "HF transformers eager decode (cache)", "float32", 1, steps,
                time_ms(hf_run, target_s=2, min_samples=3, max_samples=10, warmup=1), steps, "tok/s")
        except Exception as ex:
            notes.append(f"HF cached decode failed: {type(ex).__name__}: {str(ex)[:300]}")
            print(notes[-1], flush=True)

        # decode in plain PyTorch (HF slow path's cached step, same math), eager and torch.compile
        layers = m.backbone.layers
        R, N = layers[0].mixer.time_step_rank, 16
        di = layers[0].mixer.intermediate_size

        def make_step(dt_):
            # weights in dt_, states and the state update in float32 (as HF's slow path and the Mix step keep them)
            W = []
            for lyr in layers:
                mx = lyr.mixer
                W.append(dict(nw=lyr.norm.weight.to(dt_), eps=lyr.norm.variance_epsilon, inw=mx.in_proj.weight.to(dt_),
                              cw=mx.conv1d.weight.squeeze(1).float(), cb=mx.conv1d.bias.float(), xw=mx.x_proj.weight.to(dt_),
                              dtw=mx.dt_proj.weight.to(dt_), dtb=mx.dt_proj.bias.to(dt_),
                              A=-torch.exp(mx.A_log.float()), D=mx.D.float(), ow=mx.out_proj.weight.to(dt_)))
            emb, nf_w = m.backbone.embeddings.weight.to(dt_), m.backbone.norm_f.weight.to(dt_)
            nf_eps, head = m.backbone.norm_f.variance_epsilon, emb

            def rms(x, w, eps):
                x32 = x.float()
                return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(w.dtype)

            def step(tok, convs, ssms):
                h = emb[tok]                                   # [b, 768]
                new_c, new_s = [], []
                for i, w in enumerate(W):
                    xz = F.linear(rms(h, w["nw"], w["eps"]), w["inw"])
                    x, z = xz.chunk(2, -1)
                    c = torch.cat([convs[i][:, :, 1:], x.float().unsqueeze(-1)], -1)
                    xc = F.silu((c * w["cw"]).sum(-1) + w["cb"])
                    dbc = F.linear(xc.to(dt_), w["xw"])
                    dt, Bm, Cm = torch.split(dbc.float(), [R, N, N], -1)
                    dt = F.softplus(F.linear(dt.to(dt_), w["dtw"], w["dtb"]).float())
                    s = torch.exp(w["A"][None] * dt[..., None]) * ssms[i] + (dt * xc)[..., None] * Bm[:, None, :]
                    y = (s * Cm[:, None, :]).sum(-1) + w["D"] * xc
                    h = h + F.linear((y * F.silu(z.float())).to(dt_), w["ow"])
                    new_c.append(c); new_s.append(s)
                logits = F.linear(rms(h, nf_w, nf_eps), head)
                return logits.argmax(-1), new_c, new_s
            return step

        def run(fn, batch, graphs=False):
            convs0 = [torch.randn(batch, di, 4, device=dev) for _ in layers]
            ssms0 = [torch.randn(batch, di, N, device=dev) * 0.1 for _ in layers]
            tok0 = torch.randint(0, 50280, (batch,), device=dev)

            def go():
                tok, c, s = tok0, convs0, ssms0
                for _ in range(steps):
                    if graphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    tok, c, s = fn(tok, c, s)
            return go, (tok0, convs0, ssms0)

        step32 = make_step(torch.float32)
        go, _ = run(step32, 1)
        add("Mamba-130m", "plain PyTorch step, eager", "float32", 1, steps,
            time_ms(go, target_s=2, min_samples=3, max_samples=10, warmup=1), steps, "tok/s")
        if compile_ok:
            # batch 1 in both modes; the best mode (CUDA graphs) also for bf16 and larger batches
            configs = [("default", torch.float32, 1), ("reduce-overhead", torch.float32, 1), ("reduce-overhead", torch.bfloat16, 1),
                       ("reduce-overhead", torch.float32, 4), ("reduce-overhead", torch.float32, 16),
                       ("reduce-overhead", torch.float32, 64), ("reduce-overhead", torch.bfloat16, 16)]
            if DECODE_CONFIGS:
                # e.g. "reduce-overhead:float32:1,reduce-overhead:bfloat16:1": the rows a short device call can afford
                want = {tuple(c.split(":")) for c in DECODE_CONFIGS.split(",")}
                configs = [c for c in configs if (c[0], "float32" if c[1] == torch.float32 else "bfloat16", str(c[2])) in want]
            for mode, dt_, batch in configs:
                name = "float32" if dt_ == torch.float32 else "bfloat16"
                if left() < 90:
                    skipped.append(f"Mamba decode torch.compile mode={mode} {name} b{batch} (budget)")
                    continue
                try:
                    t = time.perf_counter()
                    torch._dynamo.reset()
                    base = step32 if dt_ == torch.float32 else make_step(dt_)
                    cs = torch.compile(base, mode=None if mode == "default" else mode)
                    go, args = run(cs, batch, mode != "default")
                    for _ in range(3):
                        if mode != "default":
                            torch.compiler.cudagraph_mark_step_begin()
                        cs(*args)
                    torch.cuda.synchronize()
                    ct = time.perf_counter() - t
                    a = base(*args)[0]
                    if mode != "default":
                        torch.compiler.cudagraph_mark_step_begin()
                    b = cs(*args)[0].clone()
                    add("Mamba-130m", f"plain PyTorch step, torch.compile ({mode})", name, batch, steps,
                        time_ms(go, target_s=2, min_samples=3, max_samples=10, warmup=1), steps * batch, "tok/s",
                        dict(compile_s=round(ct, 1), same_tokens=bool((a == b).all().item())))
                except Exception as ex:
                    notes.append(f"decode torch.compile {mode} {name} b{batch} failed: {type(ex).__name__}: {str(ex)[:300]}")
                    print(notes[-1], flush=True)

        # where HF's prefill time goes (L = 512): kernel profile
        if left() > 30:
            try:
                ids = torch.randint(0, 50280, (1, 512), device=dev)
                profiles["Mamba HF eager prefill L512"] = profile_top(lambda: m(input_ids=ids))
            except Exception as ex:
                notes.append(f"profile mamba: {ex}")


def main():
    global BUDGET, OUTDIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--budget", type=float, default=1e9)
    ap.add_argument("--only", default="all")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--decode-only", action="store_true", help="mamba: only the plain-PyTorch decode steps (no HF prefill/decode)")
    ap.add_argument("--dtype", default="all", help="vision dtypes: float32, bfloat16 or all")
    ap.add_argument("--fusion-rows", default="", help="fusion: only these rows, MODEL-PREFIX:BATCH[,...] (BATCH may be *)")
    ap.add_argument("--decode-configs", default="", help="mamba: only these compiled decode rows, mode:dtype:batch,...")
    ap.add_argument("--reduce-overhead", action="store_true", help="fusion: also torch.compile(mode='reduce-overhead') (CUDA graphs)")
    a = ap.parse_args()
    global DECODE_ONLY, DECODE_CONFIGS, FUSION_ROWS, REDUCE_OVERHEAD
    REDUCE_OVERHEAD = a.reduce_overhead
    FUSION_ROWS = tuple(tuple(r.split(":", 1)) for r in a.fusion_rows.split(",") if ":" in r)
    DECODE_ONLY = a.decode_only
    DECODE_CONFIGS = a.decode_configs
    BUDGET = a.budget
    OUTDIR = a.out
    os.makedirs(a.out, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    dts = [torch.float32, torch.bfloat16] if a.dtype == "all" else [getattr(torch, a.dtype)]
    order = ("mamba", "vision") if a.only == "mamba-first" else ("vision", "mamba", "fusion")
    for part in order:
        if a.only in ("all", "mamba-first", part) and not (part == "fusion" and a.only != "fusion"):
            try:
                if part == "fusion":
                    fusion(not a.no_compile, dts)
                elif part == "vision":
                    vision(not a.no_compile, dts)
                else:
                    mamba(not a.no_compile)
            except Exception as ex:
                notes.append(f"{part} failed: {type(ex).__name__}: {ex}")
                traceback.print_exc()
            dump()
    for k, p in profiles.items():
        print(f"\n{k}: kernel time {p['total_kernel_ms']:.2f} ms/iter")
        for r in p["top"][:8]:
            print(f"   {r['self_ms']:8.3f} ms  x{r['calls']:<4d} {r['name']}")
    print("skipped:", skipped)
    print("notes:", notes)


if __name__ == "__main__":
    main()
