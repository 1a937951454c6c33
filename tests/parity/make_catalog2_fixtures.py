#!/usr/bin/env python3
"""Parity fixtures for the catalog's second part: Mamba-2 (Hugging Face) and gated linear attention (fla).

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the same three files as
make_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json):

  mamba2_causal_lm  transformers Mamba2ForCausalLM, torch_forward (pure torch, CPU), fp32, eval
  gla_layer         fla GatedLinearAttention (fla/layers/gla.py), fp32, eval
  gla_causal_lm     fla GLAForCausalLM (fla/models/gla), fp32, eval
  hydra_layer       goombalab/hydra Hydra (hydra/modules/hydra.py), fp32, eval, CPU
  softs             Secilia-Cxy/SOFTS Model (models/SOFTS.py, STAR mixer), fp32, eval, CPU
  mamba2_layer      state-spaces/mamba Mamba2 (mamba_ssm/modules/mamba2.py, use_mem_eff_path=False), fp32, eval, CPU

fla is not installed on the GPU host: pass the folder that holds its `fla` package with --fla (the script imports the
official code from there; the project never contains it). The GLA layer's recurrence runs through fla's own pure-torch
reference `fla.ops.gla.naive.naive_recurrent_gla` (patched in for the Triton `fused_recurrent_gla` the layer picks for
T <= 64), in float32; fla's Triton gated RMSNorm and RMSNorm run on the GPU (elementwise, no TF32 dot products). The
unpatched Triton recurrence is run as well and its difference from the stored output is recorded in the config.
Hydra's official forward calls mamba_ssm's Triton SSD and gated RMSNorm; with --mamba and --hydra (folders holding the
mamba_ssm and hydra packages, imported without their package __init__ files, which need CUDA extensions) the fixture
is made by the official Hydra.forward with those two calls routed to mamba_ssm's own pure-torch references,
ssd_minimal_discrete (the chunked SSD of the paper) and rms_norm_ref, on the CPU; the unpatched Triton path on the
GPU is compared and its difference recorded.
Every parameter is re-drawn (A_log, D, dt_bias, norm weights and biases included) so no test can pass on constants.
"""
import argparse
import importlib
import json
import math
import os
import sys
import traceback
import types

import torch

try:
    from safetensors.torch import load_file, save_file
except ImportError:  # a machine without the safetensors package: the same file format, written here
    load_file = None

    def save_file(tensors: dict, path: str, metadata: dict = None) -> None:
        names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL"}
        header, blobs, offset = {}, [], 0
        if metadata:
            header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
        for key in sorted(tensors):
            t = tensors[key].detach().cpu().contiguous()
            data = t.numpy().tobytes()
            header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(path, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for b in blobs:
                f.write(b)

SEED = 4321


def randomize_(model: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            def randn(scale=1.0, shift=0.0):
                return torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale + shift

            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=generator, dtype=p.dtype) * 15.0 + 1.0))
            elif name == "D" or name.endswith(".D"):
                p.copy_(randn(0.5, 1.0))
            elif name.endswith("dt_bias"):
                u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
                dt = torch.exp(u * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(randn(0.2, 1.0))
            elif name.endswith("bias"):
                p.copy_(randn(0.3))
            elif p.dim() >= 2:
                p.copy_(randn(1.0 / math.sqrt(p.numel() // p.shape[0])))
            else:
                p.copy_(randn(0.5))


def state_dict_copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().to(torch.float32 if v.is_floating_point() else v.dtype).contiguous().clone()
            for k, v in model.state_dict().items()}


def versions() -> dict:
    found = {"torch": torch.__version__, "python": sys.version.split()[0]}
    for name in ("transformers", "triton", "einops"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
        found[name] = "not installed (import stub)" if getattr(module, "__stub__", False) else getattr(module, "__version__", "?")
    return found


class _Permissive:
    """Stands for any attribute of a missing triton: decorators return a never-launched kernel, anything else another
    stub; autotune keeps its configs (mamba_ssm reads their block sizes at import)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Permissive(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        if self._name == "triton.autotune":
            configs = list(kwargs.get("configs") or (args[0] if args else []))
            return lambda f: _Kernel(getattr(f, "fn", f), configs)
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return _Kernel(getattr(args[0], "fn", args[0]), getattr(args[0], "configs", []))
        return _Permissive(f"{self._name}()")

    def __getitem__(self, item):
        return _Permissive(f"{self._name}[]")

    def __iter__(self):
        return iter(())


class _Kernel:
    """A decorated kernel of the stub: never launched."""

    def __init__(self, fn, configs):
        self.fn = fn
        self.configs = configs

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Permissive(f"kernel.{attr}")

    def __getitem__(self, item):
        return _Permissive("kernel[]")


class _Config:
    def __init__(self, kwargs=None, **options):
        self.kwargs = dict(kwargs or {})
        self.num_warps = options.get("num_warps", 4)
        self.num_stages = options.get("num_stages", 2)
        self.pre_hook = options.get("pre_hook")


def _stub_attribute(module: str, attr: str):
    if attr.startswith("__") or f"{module}.{attr}" == "triton.runtime":  # no driver: callers fall back to the CPU
        raise AttributeError(attr)
    return _Config if f"{module}.{attr}" == "triton.Config" else _Permissive(f"{module}.{attr}")


def stub_triton() -> None:
    """Lets mamba_ssm's Triton files be imported on a machine without triton, for their pure-torch references only
    (ssd_minimal_discrete, rms_norm_ref); no kernel can run then."""
    try:
        importlib.import_module("triton")
        return
    except ImportError:
        pass
    for name in ("triton", "triton.language", "triton.language.extra"):
        module = types.ModuleType(name)
        module.__getattr__ = (lambda n: (lambda attr: _stub_attribute(n, attr)))(name)
        module.__version__ = "3.0.0"
        module.__stub__ = True
        sys.modules[name] = module
    sys.modules["triton"].language = sys.modules["triton.language"]


def write_fixture(out_dir, name, model, config: dict, inputs: dict, outputs: dict, extra: dict) -> None:
    weights = state_dict_copy(model)
    meta = {"fixture": name, "class": type(model).__name__, "seed": str(SEED)}
    save_file(weights, os.path.join(out_dir, f"{name}.weights.safetensors"), metadata=meta)
    io = {k: v.detach().cpu().contiguous().clone() for k, v in {**inputs, **outputs}.items()}
    save_file(io, os.path.join(out_dir, f"{name}.io.safetensors"), metadata=meta)
    info = {
        "fixture": name, "class": type(model).__name__, "seed": SEED, "dtype": "float32", "mode": "eval",
        **versions(),
        "inputs": {k: list(v.shape) for k, v in inputs.items()},
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
        "weights": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(weights.items())},
        **extra,
        "config": config,
    }
    with open(os.path.join(out_dir, f"{name}.config.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"[{name}] {type(model).__name__}: {len(weights)} weights, io {sorted(io)}, extra {extra}")


def make_mamba2(out_dir) -> None:
    from transformers import Mamba2Config, Mamba2ForCausalLM
    name = "mamba2_causal_lm"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    # 4 heads of 16 (intermediate 64), 2 groups of B/C, chunk 4 < L = 7: two chunks, the last one padded.
    config = Mamba2Config(
        vocab_size=64, hidden_size=32, state_size=8, num_heads=4, head_dim=16, n_groups=2, expand=2, conv_kernel=4,
        chunk_size=4, num_hidden_layers=2, use_bias=True, use_conv_bias=True, layer_norm_epsilon=1e-5,
        residual_in_fp32=True, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    model = Mamba2ForCausalLM(config).eval()
    randomize_(model, g)
    input_ids = torch.randint(0, config.vocab_size, (2, 7), generator=g, dtype=torch.long)

    def run(m, ids):
        with torch.no_grad():
            out = m(input_ids=ids, output_hidden_states=True, use_cache=False)
        result = {f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)}
        result["logits"] = out.logits
        return result

    outputs = run(model, input_ids)

    # Which channels does HF's gated norm normalize together? (It has ignored n_groups in 4.x/5.x.)
    mixer = model.backbone.layers[0].mixer
    x = torch.randn(2, 3, 64, generator=g)
    z = torch.randn(2, 3, 64, generator=g)
    with torch.no_grad():
        got = mixer.norm(x, z)
        h = x * torch.nn.functional.silu(z)
        groups = {}
        for ng in (1, config.n_groups):
            hg = h.view(2, 3, ng, -1)
            ref = (hg * torch.rsqrt(hg.pow(2).mean(-1, keepdim=True) + config.layer_norm_epsilon)).view(2, 3, 64)
            groups[ng] = float((ref * mixer.norm.weight - got).abs().max())
    norm_groups = min(groups, key=groups.get)
    extra = {"hf_gated_norm_groups": norm_groups, "hf_gated_norm_check": {str(k): v for k, v in groups.items()},
             "forward": "torch_forward (CPU)"}
    write_fixture(out_dir, name, model, json.loads(config.to_json_string()), {"input_ids": input_ids}, outputs, extra)

    fresh = Mamba2ForCausalLM(config).eval()
    fresh.load_state_dict(load_file(os.path.join(out_dir, f"{name}.weights.safetensors")), strict=True)
    again = run(fresh, input_ids)
    assert all(torch.equal(again[k], outputs[k]) for k in outputs), "mamba2 reload does not reproduce the outputs"
    print(f"[{name}] reload check passed")


def import_fla(fla_dir):
    sys.path.insert(0, fla_dir)
    from fla.ops.gla.naive import naive_recurrent_gla
    gla_layer = importlib.import_module("fla.layers.gla")
    return gla_layer, naive_recurrent_gla


def patched_naive(gla_layer, naive):
    """Routes the layer's recurrent kernel to fla's pure-torch naive_recurrent_gla (same arguments, [B, T, H, *])."""
    original = gla_layer.fused_recurrent_gla

    def recurrent(q, k, v, gk, initial_state=None, output_final_state=False, **kwargs):
        return naive(q, k, v, gk, initial_state=initial_state, output_final_state=output_final_state)

    return original, recurrent


def make_gla_layer(out_dir, fla_dir, device) -> None:
    gla_layer, naive = import_fla(fla_dir)
    name = "gla_layer"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 1)
    kwargs = dict(mode="chunk", hidden_size=32, expand_k=0.5, expand_v=1.0, num_heads=2, gate_low_rank_dim=8,
                  norm_eps=1e-5, gate_logit_normalizer=16, fuse_norm=True, layer_idx=0)
    layer = gla_layer.GatedLinearAttention(**kwargs).eval()
    randomize_(layer, g)
    x = torch.randn(2, 9, 32, generator=g)
    layer = layer.to(device)
    original, recurrent = patched_naive(gla_layer, naive)
    with torch.no_grad():
        gla_layer.fused_recurrent_gla = recurrent
        try:
            o = layer(x.to(device))[0].cpu()
        finally:
            gla_layer.fused_recurrent_gla = original
        triton = float((layer(x.to(device))[0].cpu() - o).abs().max()) if device == "cuda" else None
    extra = {"recurrence": "fla.ops.gla.naive.naive_recurrent_gla (patched in for fused_recurrent_gla)",
             "device": device, "max_abs_diff_vs_triton_fused_recurrent": triton}
    config = {k: v for k, v in kwargs.items()}
    write_fixture(out_dir, name, layer, config, {"x": x}, {"o": o}, extra)


def make_gla_lm(out_dir, fla_dir, device) -> None:
    gla_layer, naive = import_fla(fla_dir)
    from fla.models.gla import GLAConfig, GLAForCausalLM
    name = "gla_causal_lm"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 2)
    config = GLAConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_heads=4, num_kv_heads=2, expand_k=0.5,
                       expand_v=1.0, intermediate_size=48, norm_eps=1e-6, tie_word_embeddings=False,
                       fuse_cross_entropy=False, attn_mode="chunk")
    model = GLAForCausalLM(config).eval()
    randomize_(model, g)
    input_ids = torch.randint(0, 64, (2, 7), generator=g, dtype=torch.long)
    model = model.to(device)
    original, recurrent = patched_naive(gla_layer, naive)
    with torch.no_grad():
        gla_layer.fused_recurrent_gla = recurrent
        try:
            logits = model(input_ids=input_ids.to(device), use_cache=False).logits.float().cpu()
        finally:
            gla_layer.fused_recurrent_gla = original
        triton = float((model(input_ids=input_ids.to(device), use_cache=False).logits.float().cpu() - logits).abs().max())
    extra = {"recurrence": "fla.ops.gla.naive.naive_recurrent_gla (patched in for fused_recurrent_gla)",
             "device": device, "max_abs_diff_vs_triton_fused_recurrent": triton}
    write_fixture(out_dir, name, model, json.loads(config.to_json_string()), {"input_ids": input_ids},
                  {"logits": logits}, extra)


def stub_packages(root, names):
    """Makes packages importable from root without running their __init__ files (which import CUDA extensions)."""
    for name in names:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [os.path.join(root, *name.split("."))]
            sys.modules[name] = module


def make_hydra(out_dir, mamba_dir, hydra_dir, device) -> None:
    stub_triton()
    stub_packages(mamba_dir, ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton", "mamba_ssm.utils", "mamba_ssm.modules"])
    stub_packages(hydra_dir, ["hydra", "hydra.modules"])
    hydra_module = importlib.import_module("hydra.modules.hydra")
    from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete
    from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref
    name = "hydra_layer"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 3)
    kwargs = dict(d_model=16, d_state=8, d_conv=3, expand=2, headdim=8, ngroups=1, chunk_size=4)
    layer = hydra_module.Hydra(**kwargs).eval()
    randomize_(layer, g)
    x = torch.randn(2, 7, 16, generator=g)

    def reference_scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
                       dt_softplus=False, **kwargs):
        # Hydra passes dt already softplus-ed, no D, z or bias; heads read their group's B and C.
        assert D is None and z is None and dt_bias is None and not dt_softplus and initial_states is None
        b, l, h, p = x.shape
        B = B.repeat_interleave(h // B.shape[2], dim=2)
        C = C.repeat_interleave(h // C.shape[2], dim=2)
        pad = (-l) % chunk_size  # zero steps (dt = 0) change nothing; ssd_minimal needs whole chunks
        X = torch.nn.functional.pad(x * dt[..., None], (0, 0, 0, 0, 0, pad))
        a = torch.nn.functional.pad(A * dt, (0, 0, 0, pad))
        B = torch.nn.functional.pad(B, (0, 0, 0, 0, 0, pad))
        C = torch.nn.functional.pad(C, (0, 0, 0, 0, 0, pad))
        y, _ = ssd_minimal_discrete(X, a, B, C, chunk_size)
        return y[:, :l]

    norm = layer.norm

    def reference_norm(x, z=None):
        return rms_norm_ref(x, norm.weight, norm.bias, z=z, eps=norm.eps, group_size=norm.group_size,
                            norm_before_gate=norm.norm_before_gate)

    original = hydra_module.mamba_chunk_scan_combined
    with torch.no_grad():
        hydra_module.mamba_chunk_scan_combined = reference_scan
        norm.forward = reference_norm
        try:
            o = layer(x)
        finally:
            hydra_module.mamba_chunk_scan_combined = original
            del norm.forward
        triton = None
        if device == "cuda":
            try:
                triton = float((layer.to(device)(x.to(device)).cpu() - o).abs().max())
            except Exception as e:  # the record is informative only
                triton = f"failed: {type(e).__name__}: {e}"
            layer = layer.cpu()
    extra = {"ssd": "mamba_ssm.modules.ssd_minimal.ssd_minimal_discrete (patched in for mamba_chunk_scan_combined)",
             "norm": "mamba_ssm.ops.triton.layernorm_gated.rms_norm_ref (patched in for RMSNormGated.forward)",
             "device": "cpu", "max_abs_diff_vs_triton_on_gpu": triton}
    write_fixture(out_dir, name, layer, dict(kwargs), {"x": x}, {"o": o}, extra)


def ssd_reference(ssd_minimal_discrete):
    """mamba_chunk_scan_combined's contract on mamba_ssm's pure-torch chunked SSD (ssd_minimal_discrete): dt bias and
    softplus, heads reading their group's B and C, the D skip; zero steps pad to whole chunks (dt = 0 changes nothing)."""
    F = torch.nn.functional

    def scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False, initial_states=None,
             seq_idx=None, cu_seqlens=None, dt_limit=(0.0, float("inf")), return_final_states=False,
             return_varlen_states=False):
        assert z is None and initial_states is None and seq_idx is None and cu_seqlens is None
        assert dt_limit == (0.0, float("inf")) and not return_final_states and not return_varlen_states
        b, l, h, p = x.shape
        if dt_bias is not None:
            dt = dt + dt_bias
        if dt_softplus:
            dt = F.softplus(dt)
        Bh = B.repeat_interleave(h // B.shape[2], dim=2)
        Ch = C.repeat_interleave(h // C.shape[2], dim=2)
        pad = (-l) % chunk_size
        y, _ = ssd_minimal_discrete(F.pad(x * dt[..., None], (0, 0, 0, 0, 0, pad)), F.pad(A * dt, (0, 0, 0, pad)),
                                    F.pad(Bh, (0, 0, 0, 0, 0, pad)), F.pad(Ch, (0, 0, 0, 0, 0, pad)), chunk_size)
        y = y[:, :l]
        if D is not None:
            y = y + x * (D[:, None] if D.dim() == 1 else D)
        return y

    return scan


def make_mamba2_layer(out_dir, mamba_dir) -> None:
    stub_triton()
    stub_packages(mamba_dir, ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton", "mamba_ssm.utils",
                              "mamba_ssm.modules", "mamba_ssm.distributed"])
    if "huggingface_hub" not in sys.modules:
        try:
            importlib.import_module("huggingface_hub")
        except ImportError:  # only the mixin base class is imported; it adds hub methods, nothing to the forward
            hub = types.ModuleType("huggingface_hub")
            hub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
            sys.modules["huggingface_hub"] = hub
    mamba2 = importlib.import_module("mamba_ssm.modules.mamba2")
    from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete
    from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref
    name = "mamba2_layer"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 5)
    # d_ssm 16 < expand·d_model = 32 (a gated MLP part), 2 heads of 8 reading 2 groups, per-head D, per-group norm.
    kwargs = dict(d_model=16, d_state=8, d_conv=4, expand=2, headdim=8, d_ssm=16, ngroups=2, D_has_hdim=True,
                  chunk_size=4, use_mem_eff_path=False)
    layer = mamba2.Mamba2(**kwargs).eval()
    randomize_(layer, g)
    x = torch.randn(2, 7, 16, generator=g)
    norm = layer.norm

    def reference_norm(y, z=None):
        return rms_norm_ref(y, norm.weight, norm.bias, z=z, eps=norm.eps, group_size=norm.group_size,
                            norm_before_gate=norm.norm_before_gate)

    original = mamba2.mamba_chunk_scan_combined
    with torch.no_grad():
        mamba2.mamba_chunk_scan_combined = ssd_reference(ssd_minimal_discrete)
        norm.forward = reference_norm
        conv_fn = getattr(mamba2, "causal_conv1d_fn", None)
        mamba2.causal_conv1d_fn = None  # nn.Conv1d with the tail dropped, the module's own fallback
        try:
            o = layer(x)
        finally:
            mamba2.mamba_chunk_scan_combined = original
            mamba2.causal_conv1d_fn = conv_fn
            del norm.forward
    extra = {"ssd": "mamba_ssm.modules.ssd_minimal.ssd_minimal_discrete (patched in for mamba_chunk_scan_combined)",
             "norm": "mamba_ssm.ops.triton.layernorm_gated.rms_norm_ref (patched in for RMSNormGated.forward)",
             "norm_group_size": norm.group_size, "device": "cpu"}
    write_fixture(out_dir, name, layer, {k: v for k, v in kwargs.items()}, {"x": x}, {"o": o}, extra)


def make_softs(out_dir, softs_dir) -> None:
    stub_packages(softs_dir, ["models", "layers"])
    softs = importlib.import_module("models.SOFTS")
    name = "softs"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 4)
    config = dict(seq_len=16, pred_len=8, enc_in=5, d_model=16, d_core=8, d_ff=32, e_layers=2, dropout=0.0,
                  activation="gelu", use_norm=True)
    model = softs.Model(types.SimpleNamespace(**config)).eval()
    randomize_(model, g)
    t = torch.arange(16, dtype=torch.float32).view(1, 16, 1)
    x = (torch.randn(2, 16, 5, generator=g) * 1.5 + 0.7 + torch.sin(t / 2.0)).contiguous()
    with torch.no_grad():
        y = model(x, None, None, None)
    write_fixture(out_dir, name, model, config, {"x_enc": x}, {"y": y}, {"device": "cpu"})


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--fla", default=None, help="folder holding the fla package (flash-linear-attention)")
    parser.add_argument("--mamba", default=None, help="folder holding the mamba_ssm package (state-spaces/mamba)")
    parser.add_argument("--hydra", default=None, help="folder holding the hydra package (goombalab/hydra)")
    parser.add_argument("--path", action="append", default=[], help="extra folder for sys.path (e.g. einops' source)")
    parser.add_argument("--only", default=None, help="comma-separated fixture makers to run: mamba2,gla,hydra,softs,mamba2_layer")
    parser.add_argument("--softs", default=None, help="folder holding SOFTS's models/ and layers/ (Secilia-Cxy/SOFTS)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sys.path[:0] = args.path
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("versions:", versions(), "python", sys.version.split()[0], "device", device)

    only = set(args.only.split(",")) if args.only else {"mamba2", "gla", "hydra", "softs", "mamba2_layer"}
    makers = [lambda: make_mamba2(args.out)] if "mamba2" in only else []
    if args.fla and "gla" in only:
        makers += [lambda: make_gla_layer(args.out, args.fla, device), lambda: make_gla_lm(args.out, args.fla, device)]
    if args.mamba and args.hydra and "hydra" in only:
        makers.append(lambda: make_hydra(args.out, args.mamba, args.hydra, device))
    if args.mamba and "mamba2_layer" in only:
        makers.append(lambda: make_mamba2_layer(args.out, args.mamba))
    if args.softs and "softs" in only:
        makers.append(lambda: make_softs(args.out, args.softs))
    failures = 0
    for make in makers:
        try:
            make()
        except Exception:
            failures += 1
            traceback.print_exc()
    print(f"done; failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
