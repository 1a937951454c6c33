#!/usr/bin/env python3
"""Parity fixtures for the catalog's second part, continued: Monarch Mixer (M2-BERT), LMUFormer and EfficientViM.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the files
NAME.weights.safetensors (the official state_dict, exact keys), NAME.io.safetensors (inputs and outputs) and
NAME.config.json (constructor arguments, versions, shapes), like make_catalog2_fixtures.py:

  m2_bert           HazyResearch/m2 bert/src/bert_layers.py BertModel (Monarch Mixer sequence mixing, bidirectional
                    filter, residual long conv, GLU MLP with BlockdiagLinear), add_pooling_layer=False, fp32, eval, CPU
  m2_mixer_causal   HazyResearch/m2 MonarchMixerSequenceMixing alone: causal filter, no residual long conv,
                    hyena_training_additions (input LayerNorm), hyena_w_mod 2, fp32, eval, CPU
  lmu_former        zeyuliu1037/LMUFormer src/lmu_rnn.py lmu_rnn_conv1d (ConvLMU: Tokenizer, LMU blocks with
                    LMUFFTCell, ConvFFN, head), fp32, eval, CPU
  lmu_cell          LMUFFTCell alone (input_size != hidden_size != memory_size), fp32, eval, CPU
  hsm_ssd           mlvlab/EfficientViM classification/models/EfficientViM.py HSMSSD alone (d_model 16, ssd_expand
                    1.5, state_dim 9, 5×5 tokens), both outputs y and h, fp32, eval, CPU
  efficientvim      EfficientViM (EfficientViM_M1's layout: stem, three stages, PatchMerging with timm's SqueezeExcite,
                    hidden-state fusion heads) at widths 16/20/24, 80×80 images, fp32, eval, CPU; the config also
                    records EfficientViM_M1's parameter count and state-dict size as the official code builds it

The official code is imported from the folders given (--m2: the repository's bert/ folder; --lmu: its src/ folder;
--evim: EfficientViM's classification/ folder, whose models/__init__.py is not run, with --timm: timm's source, whose
layers files give EfficientViM its SqueezeExcite and trunc_normal_ where timm is not installed, as in
make_catalog3_fixtures.py; fvcore, imported for a FLOPs helper, is stubbed),
never copied into the project. Missing third-party packages are replaced by import shims that the official forward
never reaches with a difference: transformers (m2 imports BertPreTrainedModel, ACT2FN and output classes; the shim's
BertPreTrainedModel is nn.Module holding the config, the others are never called), opt_einsum (imported, unused on
this path), timm (LMUFormer imports to_2tuple, trunc_normal_, DropPath, register_model, _cfg: only the init and the
registry use them) and scipy.signal.cont2discrete when scipy is not installed: then the zero-order hold is computed
here as scipy does it (the matrix exponential of [[A, B], [0, 0]]·dt, in float64: torch.linalg.matrix_exp) and the
config records it. einops is needed (its source on --path is enough).
Every parameter and every BatchNorm running statistic is re-drawn, so no test can pass on constants; the A, B, H and
fft_H buffers of the LMU cell are the official ones (a deterministic function of memory_size, theta and seq_len).
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_catalog2_fixtures import stub_packages, versions  # noqa: E402  (same folder)

SEED = 2468
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL",
          torch.complex64: "C64"}


def save_file(tensors: dict, path: str, metadata: dict = None) -> None:
    """safetensors, written here (complex64 included, which the fixtures of the LMU cell need for fft_H)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        data = t.numpy().tobytes()
        header[key] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_fixture(out_dir, name, model, config: dict, inputs: dict, outputs: dict, extra: dict) -> None:
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"fixture": name, "class": type(model).__name__, "seed": str(SEED)}
    save_file(weights, os.path.join(out_dir, f"{name}.weights.safetensors"), metadata=meta)
    save_file({**inputs, **outputs}, os.path.join(out_dir, f"{name}.io.safetensors"), metadata=meta)
    info = {
        "fixture": name, "class": type(model).__name__, "seed": SEED, "dtype": "float32", "mode": "eval", "device": "cpu",
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
    print(f"[{name}] {type(model).__name__}: {len(weights)} weights, io {sorted({**inputs, **outputs})}, extra {extra}")


def redraw_(model: torch.nn.Module, g: torch.Generator, special=None) -> None:
    """Every parameter (each shared one once) and BatchNorm statistic re-drawn; `special(name, p)` may return a value."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = special(name, p) if special else None
            if value is None:
                r = torch.randn(p.shape, generator=g)
                if ("norm" in name.lower() or name.endswith("_bn.weight") or ".bn" in name) and name.endswith("weight"):
                    value = r * 0.2 + 1.0
                elif name.endswith("bias"):
                    value = r * 0.3
                elif p.dim() >= 2:
                    value = r / math.sqrt(p.shape[-1] if p.dim() == 3 and "weight" in name else p.numel() // p.shape[0])
                else:
                    value = r * 0.5
            p.copy_(value)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def shim(name: str, **attrs) -> types.ModuleType:
    module = sys.modules.get(name) or types.ModuleType(name)
    for k, v in attrs.items():
        setattr(module, k, v)
    module.__stub__ = True
    sys.modules[name] = module
    return module


def shim_transformers() -> None:
    try:
        importlib.import_module("transformers.models.bert.modeling_bert")
        return
    except ImportError:
        pass

    class BertPreTrainedModel(torch.nn.Module):
        """What m2's BertModel needs of transformers' class: the config, and post_init (the init, re-drawn anyway)."""

        def __init__(self, config, *args, **kwargs):
            super().__init__()
            self.config = config

        def post_init(self):
            pass

    shim("transformers", __version__="not installed (import shim)")
    shim("transformers.activations", ACT2FN={"gelu": torch.nn.GELU(), "relu": torch.nn.ReLU()})
    shim("transformers.modeling_outputs", MaskedLMOutput=dict, SequenceClassifierOutput=dict)
    shim("transformers.models")
    shim("transformers.models.bert")
    shim("transformers.models.bert.modeling_bert", BertPreTrainedModel=BertPreTrainedModel)


def import_m2(m2_bert_dir):
    shim_transformers()
    try:
        importlib.import_module("opt_einsum")
    except ImportError:
        shim("opt_einsum", contract=torch.einsum)
    # src/__init__.py imports every module (flash attention included): the packages are made without it.
    stub_packages(m2_bert_dir, ["src", "src.mm", "src.utils"])
    sys.path[:0] = [m2_bert_dir, os.path.join(m2_bert_dir, "src")]
    return importlib.import_module("bert_layers"), importlib.import_module("src.mm.monarch_mixer_sequence_mixer")


def m2_special(name, p):
    """Frequencies around the official w = 10 (one shared Parameter), a positional embedding of unit scale."""
    if name.endswith("freq"):
        return torch.rand(p.shape, generator=m2_special.g) * 10 + 5
    if name.endswith("pos_emb.z"):
        return torch.randn(p.shape, generator=m2_special.g)
    return None


def shared_freq_check(model) -> dict:
    """The official Sin module is one object in every activation slot: its freq is one tensor under several keys."""
    keys = [k for k in model.state_dict() if k.endswith("freq")]
    ptrs = {k: model.state_dict()[k].data_ptr() for k in keys}
    return {"freq_keys": len(keys), "freq_tensors": len(set(ptrs.values()))}


def make_m2_bert(out_dir, m2_dir) -> None:
    bert_layers, _ = import_m2(m2_dir)
    name = "m2_bert"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    m2_special.g = g
    # intermediate 30: BlockdiagLinear pads wo's 30 inputs to 32 (4 blocks of 8) as the official preprocess does.
    config = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, intermediate_size=30, max_position_embeddings=16,
                  type_vocab_size=2, layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  pad_token_id=0, use_positional_encodings=True, monarch_mixer_sequence_mixing=True,
                  long_conv_l_max=16, long_conv_kernel_learning_rate=1e-3, bidirectional=True, hyena_lr_pos_emb=1e-5,
                  hyena_w=10, hyena_w_mod=1, hyena_wd=0.1, hyena_emb_dim=5, hyena_filter_dropout=0.0,
                  hyena_filter_order=8, residual_long_conv=True, hyena_training_additions=False, use_glu_mlp=True,
                  use_monarch_mlp=True, monarch_mlp_nblocks=4, use_flash_mm=False, use_flash_fft=False,
                  num_attention_heads=2, alibi_starting_size=16, pool_all=False, use_cls_token=False,
                  sequence_token_planting=False, hidden_act="gelu")
    model = bert_layers.BertModel(types.SimpleNamespace(**config), add_pooling_layer=False).eval()
    redraw_(model, g, m2_special)
    input_ids = torch.randint(1, config["vocab_size"], (2, 12), generator=g, dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids)[0]
    out = out[-1] if isinstance(out, (list, tuple)) else out
    extra = shared_freq_check(model)
    write_fixture(out_dir, name, model, config, {"input_ids": input_ids}, {"last_hidden_state": out}, extra)


def make_m2_mixer(out_dir, m2_dir) -> None:
    _, mixer_module = import_m2(m2_dir)
    name = "m2_mixer_causal"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 1)
    m2_special.g = g
    kwargs = dict(d_model=16, l_max=16, dropout=0.0, bidirectional=False, hyena_w=10, hyena_w_mod=2, hyena_emb_dim=3,
                  hyena_filter_order=8, residual_long_conv=False, hyena_training_additions=True)
    layer = mixer_module.MonarchMixerSequenceMixing(**kwargs).eval()
    redraw_(layer, g, m2_special)
    x = torch.randn(2, 11, 16, generator=g)
    with torch.no_grad():
        y = layer(x)[0]
    write_fixture(out_dir, name, layer, kwargs, {"x": x}, {"y": y}, shared_freq_check(layer))


def cont2discrete_zoh(system, dt, method="zoh"):
    """scipy.signal.cont2discrete for method 'zoh' as scipy computes it: expm([[A, B], [0, 0]]·dt) in float64."""
    import numpy as np
    assert method == "zoh"
    a, b, c, d = (np.asarray(m, dtype=np.float64) for m in system)
    n, m = a.shape[0], b.shape[1]
    block = np.zeros((n + m, n + m))
    block[:n, :n] = a * dt
    block[:n, n:] = b * dt
    em = torch.linalg.matrix_exp(torch.from_numpy(block)).numpy()
    return em[:n, :n], em[:n, n:], c, d, dt


def import_lmu(lmu_src_dir) -> dict:
    notes = {}
    try:
        signal = importlib.import_module("scipy.signal")
        notes["cont2discrete"] = "scipy.signal.cont2discrete" if not getattr(signal, "__stub__", False) else \
            "scipy not installed: zoh as scipy computes it (expm of the augmented matrix, float64) in the script"
    except ImportError:
        shim("scipy", __version__="not installed (import shim)")
        shim("scipy.signal", cont2discrete=cont2discrete_zoh)
        notes["cont2discrete"] = "scipy not installed: zoh as scipy computes it (expm of the augmented matrix, float64) in the script"
    try:
        if getattr(importlib.import_module("timm.models.layers"), "__stub__", False):
            notes["timm"] = "not installed: import shim (to_2tuple, trunc_normal_, DropPath, register_model, _cfg)"
    except ImportError:
        def trunc_normal_(t, std=1.0, **kwargs):
            with torch.no_grad():
                return t.normal_(0, std).clamp_(-2 * std, 2 * std)

        class DropPath(torch.nn.Identity):
            def __init__(self, *args, **kwargs):
                super().__init__()

        shim("timm", __version__="not installed (import shim)")
        shim("timm.models")
        shim("timm.models.layers", to_2tuple=lambda v: v if isinstance(v, tuple) else (v, v), trunc_normal_=trunc_normal_,
             DropPath=DropPath)
        shim("timm.models.registry", register_model=lambda f: f)
        shim("timm.models.vision_transformer", _cfg=lambda **kwargs: dict(kwargs))
        notes["timm"] = "not installed: import shim (to_2tuple, trunc_normal_, DropPath, register_model, _cfg)"
    # utilities/ imports the spiking neurons (spikingjelly) and evaluation statistics (scipy.stats, sklearn) at the top;
    # the non-spiking LMUFormer (act_type 'relu') never builds or calls them.
    class Unused:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("a spiking neuron was built: the non-spiking LMUFormer does not use one")

    try:
        if getattr(importlib.import_module("spikingjelly.clock_driven.neuron"), "__stub__", False):
            notes["spikingjelly"] = "not installed: import shim (the spiking neurons are never built)"
    except ImportError:
        shim("spikingjelly")
        shim("spikingjelly.clock_driven")
        shim("spikingjelly.clock_driven.neuron", MultiStepLIFNode=Unused, MultiStepParametricLIFNode=Unused)
        notes["spikingjelly"] = "not installed: import shim (the spiking neurons are never built)"
    for name in ("scipy.stats", "sklearn.metrics"):
        try:
            if getattr(importlib.import_module(name), "__stub__", False):
                notes[name] = "not installed: import shim (imported by utilities/stats.py, unused)"
        except ImportError:
            parent = shim(name.split(".")[0])
            setattr(parent, name.split(".")[1], shim(name))
            notes[name] = "not installed: import shim (imported by utilities/stats.py, unused)"
    sys.path.insert(0, lmu_src_dir)
    return notes


def make_lmu_cell(out_dir, lmu_dir) -> None:
    notes = import_lmu(lmu_dir)
    lmu_cell = importlib.import_module("blocks.lmu_cell")
    name = "lmu_cell"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 2)
    kwargs = dict(input_size=6, hidden_size=10, memory_size=8, seq_len=20, theta=20)
    cell = lmu_cell.LMUFFTCell(**kwargs).eval()
    redraw_(cell, g)
    x = torch.randn(2, 20, 6, generator=g)
    with torch.no_grad():
        h, h_n = cell(x)
    write_fixture(out_dir, name, cell, kwargs, {"x": x}, {"h": h, "h_n": h_n}, notes)


def make_lmu_former(out_dir, lmu_dir) -> None:
    notes = import_lmu(lmu_dir)
    lmu_rnn = importlib.import_module("lmu_rnn")
    name = "lmu_former"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 3)
    # The LMU block hard-codes its cell's seq_len = theta = 128 and memory = hidden = dim; the official forward
    # needs sequences of exactly 128 steps (its fft_H has seq_len + 1 bins).
    kwargs = dict(img_size_h=128, img_size_w=128, patch_size=16, in_channels=8, num_classes=5, embed_dims=16,
                  num_heads=1, mlp_ratios=2, depths=2, sr_ratios=1)
    model = lmu_rnn.lmu_rnn_conv1d(**kwargs).eval()
    redraw_(model, g)
    x = torch.randn(2, 128, 8, generator=g)
    with torch.no_grad():
        y = model(x)
    write_fixture(out_dir, name, model, kwargs, {"x": x}, {"logits": y}, notes)


def import_efficientvim(evim_dir, timm_dir):
    """EfficientViM's classification/models/EfficientViM.py and utils.py (package `models`, its __init__ not run).

    The files import timm.layers (trunc_normal_ for the init; SqueezeExcite, which PatchMerging calls), timm.models
    (register_model) and fvcore.nn (flop_count, for a FLOPs helper the forward never calls). timm: the installed one
    where it imports; otherwise timm's own layers files from --timm, as make_catalog3_fixtures.py gives them to
    MambaOut (so SqueezeExcite is timm's). fvcore is stubbed when absent.
    """
    from make_catalog3_fixtures import import_mambaout  # noqa: E402  (same folder: makes timm.layers importable)
    _, timm_source = import_mambaout(timm_dir)
    layers = importlib.import_module("timm.layers")
    if getattr(layers, "SqueezeExcite", None) is None:
        layers.SqueezeExcite = importlib.import_module("timm.layers.squeeze_excite").SqueezeExcite
    models = importlib.import_module("timm.models")
    if getattr(models, "register_model", None) is None:
        models.register_model = lambda f: f
    try:
        importlib.import_module("fvcore.nn")
    except ImportError:
        shim("fvcore")
        shim("fvcore.nn", flop_count=None)
    stub_packages(os.path.abspath(evim_dir), ["models"])  # classification/models/__init__.py imports the zoo eagerly
    return importlib.import_module("models.EfficientViM"), timm_source


def make_hsm_ssd(out_dir, evim_dir, timm_dir) -> None:
    """HSMSSD alone: both outputs (y [B, C, H, W] and the hidden states h [B, C, state_dim])."""
    evim, timm_source = import_efficientvim(evim_dir, timm_dir)
    name = "hsm_ssd"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 4)
    kwargs = dict(d_model=16, ssd_expand=1.5, state_dim=9)
    layer = evim.HSMSSD(**kwargs).eval()
    redraw_(layer, g)
    x = torch.randn(2, 16, 25, generator=g)   # 5×5 tokens, flattened: the official views them as a square map
    with torch.no_grad():
        y, h = layer(x)
    write_fixture(out_dir, name, layer, kwargs, {"x": x}, {"y": y, "h": h},
                  {"source": "mlvlab/EfficientViM classification/models/EfficientViM.py (HSMSSD)", "timm": timm_source})


def make_efficientvim(out_dir, evim_dir, timm_dir) -> None:
    """EfficientViM (EfficientViM_M1's layout: three stages, multi-stage hidden-state fusion heads) at small widths."""
    evim, timm_source = import_efficientvim(evim_dir, timm_dir)
    name = "efficientvim"
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED + 5)
    kwargs = dict(in_dim=3, num_classes=10, embed_dim=[16, 20, 24], depths=[2, 1, 2], mlp_ratio=2.0, ssd_expand=1.5,
                  state_dim=[7, 5, 3], distillation=False)
    model = evim.EfficientViM(**kwargs).eval()
    redraw_(model, g)
    x = torch.randn(2, 3, 80, 80, generator=g)   # stage maps 5×5, 3×3, 2×2 (the downsamples round up)
    with torch.no_grad():
        y = model(x)
    m1 = evim.EfficientViM_M1()
    counts = {"EfficientViM_M1_parameters": sum(p.numel() for p in m1.parameters()),
              "EfficientViM_M1_state_dict_entries": len(m1.state_dict())}
    write_fixture(out_dir, name, model, kwargs, {"x": x}, {"y": y},
                  {"source": "mlvlab/EfficientViM classification/models/EfficientViM.py (EfficientViM)",
                   "timm": timm_source, **counts})


def main() -> int:
    default_out = os.path.normpath(os.path.join(HERE, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--m2", default=None, help="HazyResearch/m2's bert/ folder")
    parser.add_argument("--lmu", default=None, help="zeyuliu1037/LMUFormer's src/ folder")
    parser.add_argument("--evim", default=None, help="mlvlab/EfficientViM's classification/ folder")
    parser.add_argument("--timm", default=None, help="folder holding timm's source (for EfficientViM's timm.layers)")
    parser.add_argument("--path", action="append", default=[], help="extra folder for sys.path (e.g. einops' source)")
    parser.add_argument("--only", default=None, help="comma-separated: m2_bert,m2_mixer_causal,lmu_cell,lmu_former,hsm_ssd,efficientvim")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sys.path[:0] = args.path
    print("versions:", versions(), "python", sys.version.split()[0])
    only = set(args.only.split(",")) if args.only else {"m2_bert", "m2_mixer_causal", "lmu_cell", "lmu_former", "hsm_ssd",
                                                             "efficientvim"}
    makers = []
    if args.m2:
        makers += [(n, f) for n, f in (("m2_bert", make_m2_bert), ("m2_mixer_causal", make_m2_mixer)) if n in only]
        makers = [(n, (lambda f: lambda: f(args.out, args.m2))(f)) for n, f in makers]
    if args.lmu:
        makers += [(n, (lambda f: lambda: f(args.out, args.lmu))(f))
                   for n, f in (("lmu_cell", make_lmu_cell), ("lmu_former", make_lmu_former)) if n in only]
    if args.evim:
        makers += [(n, (lambda f: lambda: f(args.out, args.evim, args.timm))(f))
                   for n, f in (("hsm_ssd", make_hsm_ssd), ("efficientvim", make_efficientvim)) if n in only]
    failures = 0
    for _, make in makers:
        try:
            make()
        except Exception:
            failures += 1
            traceback.print_exc()
    print(f"done; failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
