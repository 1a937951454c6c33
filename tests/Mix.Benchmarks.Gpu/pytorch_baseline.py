"""PyTorch eager and torch.compile baselines for the ops of Mix.Benchmarks.Gpu (same shapes, same byte counts).

Usage: python3 pytorch_baseline.py [--out DIR] [--no-compile]
Times are the median of CUDA-event-timed batches after warm-up; GB/s counts each input read once and each
output written once; % copy is relative to a device-to-device copy measured here.
"""
import argparse, json, os, statistics, time
import torch
import torch.nn.functional as F

dev = "cuda"
results = []
copy_gbps = float("nan")


def bench(fn, target_s=1.0):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
    est = max(time.perf_counter() - t0, 1e-6)
    inner = int(min(max(0.002 / est, 1), 50))
    reps = int(min(max(target_s / (est * inner), 5), 40))
    samples = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(inner):
            fn()
        e.record(); torch.cuda.synchronize()
        samples.append(s.elapsed_time(e) * 1e3 / inner)
    return statistics.median(samples), min(samples), len(samples)


def record(op, shape, dtype, nbytes, impls):
    for name, fn in impls:
        try:
            med, mn, n = bench(fn)
        except Exception as ex:  # torch.compile failures are reported, not fatal
            print(f"{op} {name}: failed: {ex}")
            continue
        gbps = nbytes / med / 1e3
        results.append(dict(op=op, shape=shape, dtype=dtype, impl=name, median_us=med, min_us=mn, samples=n,
                            bytes=nbytes, gbps=gbps, pct_of_copy=100 * gbps / copy_gbps))
        print(f"{op:32s} {shape:26s} {dtype:9s} {name:16s} {med:11.1f} us {gbps:7.0f} GB/s {100*gbps/copy_gbps:5.1f}%")


def main():
    global copy_gbps
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    comp = (lambda f: torch.compile(f)) if not a.no_compile else None
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        n = 128 << 20
        x = torch.randn(n, device=dev); y = torch.empty_like(x)
        med, mn, s = bench(lambda: y.copy_(x))
        copy_gbps = 2 * n * 4 / med / 1e3
        results.append(dict(op="d2d copy (reference ceiling)", shape=f"[{n}]", dtype="float32", impl="copy_", median_us=med,
                            min_us=mn, samples=s, bytes=2 * n * 4, gbps=copy_gbps, pct_of_copy=100.0))
        print(f"copy {copy_gbps:.0f} GB/s"); del x, y

        def impls(f, *args):
            out = [("eager", lambda: f(*args))]
            if comp:
                cf = comp(f)
                out.append(("torch.compile", lambda: cf(*args)))
            return out

        def pooling(x, gw, gb, ls):
            nrm = F.group_norm(x, 1, gw, gb, 1e-5)
            return x + ls.view(1, -1, 1, 1) * (F.avg_pool2d(nrm, 3, 1, 1, count_include_pad=False) - nrm)
        for dt, shp in ((torch.float32, (32, 64, 112, 112)), (torch.bfloat16, (64, 64, 112, 112))):
            x = torch.randn(shp, device=dev, dtype=dt); C = shp[1]
            p = [torch.randn(C, device=dev, dtype=dt) for _ in range(3)]
            record("pooling sub-block (GN1+pool)", str(list(shp)), str(dt), 2 * x.numel() * x.element_size(), impls(pooling, x, *p))
            del x

        acts = {
            "Gelu": lambda x, b, s, c: F.gelu(x + b),
            "StarReLU": lambda x, b, s, c: s * F.relu(x + b) ** 2 + c,
            "SquaredReLU": lambda x, b, s, c: F.relu(x + b) ** 2,
        }
        for dt, act in ((torch.bfloat16, "Gelu"), (torch.float32, "Gelu"), (torch.bfloat16, "StarReLU"), (torch.bfloat16, "SquaredReLU")):
            x = torch.randn(16384, 3072, device=dev, dtype=dt); b = torch.randn(3072, device=dev, dtype=dt)
            s = torch.tensor([0.8], device=dev, dtype=dt); c = torch.tensor([-0.1], device=dev, dtype=dt)
            record(f"bias + {act}", "[16384,3072]", str(dt), 2 * x.numel() * x.element_size(), impls(acts[act], x, b, s, c))
            del x

        x = torch.randn(16384, 3072, device=dev, dtype=torch.bfloat16); r = torch.randn_like(x)
        ls = torch.randn(3072, device=dev, dtype=torch.bfloat16)
        record("layer-scale + residual", "[16384,3072]", "torch.bfloat16", 3 * x.numel() * 2, impls(lambda r, x, ls: r + ls * x, r, x, ls))
        del x, r

        spec = torch.randn(64, 56, 29, 384, device=dev, dtype=torch.complex64)
        w = torch.randn(56, 29, 384, 2, device=dev) * 0.02
        record("GFNet spectral multiply", "[64,56,29,384] c64", "complex64", 2 * spec.numel() * 8 + w.numel() * 4,
               impls(lambda s, w: s * torch.view_as_complex(w), spec, w))
        del spec

        x = torch.randn(64, 56, 56, 384, device=dev)
        def gf(x, w):
            X = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
            return torch.fft.irfft2(X * torch.view_as_complex(w), s=(56, 56), dim=(1, 2), norm="ortho")
        record("GFNet filter (rfft2+mul+irfft2)", "[64,56,56,384]", "float32", 2 * x.numel() * 4, impls(gf, x, w))
        del x

        # Selective scan: the per-step recurrence in eager PyTorch (torch.compile of a 2048-step Python loop is not
        # attempted: compile time would dominate).
        bsz, d, nst, L = 1, 1536, 16, 2048
        u, delta, z = (torch.randn(bsz, d, L, device=dev) for _ in range(3))
        A = -torch.rand(d, nst, device=dev) - 0.1
        Bm, Cm = torch.randn(bsz, nst, L, device=dev), torch.randn(bsz, nst, L, device=dev)
        D = torch.randn(d, device=dev); bias = torch.randn(d, device=dev) * 0.1
        def scan():
            dt = F.softplus(delta + bias[:, None])
            dA = torch.exp(dt.unsqueeze(-1) * A[:, None, :])
            dBu = (dt * u).unsqueeze(-1) * Bm.transpose(1, 2).unsqueeze(1)
            h = torch.zeros(bsz, d, nst, device=dev); ys = []
            for t in range(L):
                h = dA[:, :, t] * h + dBu[:, :, t]
                ys.append((h * Cm[:, None, :, t]).sum(-1))
            y = torch.stack(ys, -1) + u * D[:, None]
            return y * F.silu(z)
        nb = 4 * (4 * bsz * d * L + 2 * bsz * nst * L) + 4 * bsz * d * nst
        record("selective scan fwd", f"b{bsz} d{d} n{nst} L{L}", "float32", nb, [("eager per-step", scan)])

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "benchmarks_pytorch.json"), "w") as f:
        json.dump(dict(torch=torch.__version__, device=torch.cuda.get_device_name(), copy_gbps=copy_gbps, results=results), f, indent=1)


if __name__ == "__main__":
    main()
