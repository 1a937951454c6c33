#!/usr/bin/env python3
"""Parity fixtures for the catalog's third part, made by the official code.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the files of
make_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json):

  mambaout          timm MambaOut (timm/models/mambaout.py), femto's layout at small widths, fp32, eval, CPU
  mambaout_options  the same with conv_ratio < 1, SiLU, no stem mid norm and norm-first downsampling
  block_ffn         thunlp/BlockFFN BLockFeedForward (pretrain/cpm/dragonfly/blockffn.py), ReLU router + RMSNorm
                    (norm_after_router="rms"), block-linear experts, with its losses, fp32, CPU

--timm is the folder holding timm's source (huggingface/pytorch-image-models). Where timm imports as a package (the GPU
host) it is used as installed; otherwise (torch 1.13 without torchvision) mambaout.py is imported alone, with timm's own
timm/layers files (norm, drop, layer_scale, weight_init, create_act, classifier) and stubs for what it imports but a
directly built model never calls (the model registry, the pretrained builder, feature helpers) and for torchvision's
FrozenBatchNorm2d (named by timm/layers/create_norm.py at import). No official code is copied into the project.
--blockffn is the folder holding BlockFFN's source (thunlp/BlockFFN). Its training stack (bmtrain, fastmoe, dm-tree) is
not needed for one module's forward: bmtrain's DistributedModule / DistributedParameter become torch.nn.Module /
torch.nn.Parameter, and the names blockffn.py's imports pull in but this forward never calls are stubbed. The losses
are switched on as in training (ActivationContext: L1 "fixed", transfer lambda 1 with one activation window, chunk
regularization over 4 tokens) and stored with the output.
Every parameter is re-drawn (norm weights around 1, biases non-zero) so no test can pass on constants.
"""
import argparse
import importlib
import os
import sys
import traceback
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_catalog2_fixtures import randomize_, versions, write_fixture  # noqa: E402

SEED = 4321


def _package(name, path=None):
    module = types.ModuleType(name)
    module.__path__ = [path] if path else []
    sys.modules[name] = module
    return module


def import_mambaout(timm_dir):
    """timm.models.mambaout: the installed timm if it imports, else the file alone from timm_dir with timm's layers."""
    try:
        import timm.models.mambaout as mambaout  # noqa: F401
        return mambaout, "timm " + importlib.import_module("timm").__version__
    except Exception:
        if not timm_dir:
            raise
    for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
        del sys.modules[name]
    src = os.path.join(os.path.abspath(timm_dir), "timm")
    _package("timm", src)
    data = _package("timm.data")
    data.IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
    data.IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
    layers = _package("timm.layers", os.path.join(src, "layers"))
    if importlib.util.find_spec("torchvision") is None:
        _package("torchvision")
        _package("torchvision.ops")
        misc = _package("torchvision.ops.misc")
        misc.FrozenBatchNorm2d = type("FrozenBatchNorm2d", (torch.nn.Module,), {})
    for file, names in [("norm", ["LayerNorm"]), ("drop", ["DropPath", "calculate_drop_path_rates"]),
                        ("layer_scale", ["LayerScale"]), ("weight_init", ["trunc_normal_"]),
                        ("create_act", ["get_act_layer"]), ("classifier", ["ClNormMlpClassifierHead"])]:
        real = importlib.import_module("timm.layers." + file)
        for n in names:
            setattr(layers, n, getattr(real, n))
    _package("timm.models", os.path.join(src, "models"))
    for file, attrs in [("_builder", {"build_model_with_cfg": None}), ("_features", {"feature_take_indices": None}),
                        ("_manipulate", {"checkpoint_seq": None}),
                        ("_registry", {"register_model": lambda f: f, "generate_default_cfgs": lambda d: d})]:
        stub = types.ModuleType("timm.models." + file)
        stub.__dict__.update(attrs)
        stub.__stub__ = True
        sys.modules[stub.__name__] = stub
    mambaout = importlib.import_module("timm.models.mambaout")
    return mambaout, "timm source (mambaout.py and timm/layers imported alone; registry and builder stubbed)"


def make_mambaout(out_dir, timm_dir) -> None:
    mambaout, source = import_mambaout(timm_dir)
    # mambaout_femto's layout (four stages, MlpHead, 7×7 depthwise convs, expansion 8/3) at widths small enough for a
    # fixture of a few hundred kB; 64×64 inputs give 16, 8, 4, 2 tokens per side.
    configs = {
        "mambaout": dict(depths=(2, 1, 2, 1), dims=(16, 24, 32, 40), num_classes=10),
        "mambaout_options": dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 40), num_classes=10, conv_ratio=0.75,
                                 act_layer="silu", stem_mid_norm=False, downsample="conv_nf"),
    }
    for name, kwargs in configs.items():
        torch.manual_seed(SEED)
        g = torch.Generator().manual_seed(SEED)
        model = mambaout.MambaOut(**kwargs).eval()
        randomize_(model, g)
        x = torch.randn(2, 3, 64, 64, generator=g)
        with torch.no_grad():
            y = model(x)
        write_fixture(out_dir, name, model, {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                      {"x": x}, {"y": y}, {"source": source, "device": "cpu"})


def import_blockffn(blockffn_dir):
    """cpm.dragonfly.blockffn from BlockFFN's pretrain/ folder, with bmtrain as plain torch and unused imports stubbed."""
    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        module.__path__ = []
        module.__stub__ = True
        sys.modules[name] = module
        return module

    class DistributedModule(torch.nn.Module):
        pass

    def distributed_parameter(data, init_method=None, **kwargs):
        return torch.nn.Parameter(data)

    bmt = stub("bmtrain", DistributedModule=DistributedModule, DistributedParameter=distributed_parameter,
               ParameterInitializer=lambda *a, **k: None, print_rank=print, world_size=lambda: 1)
    bmt.optim = stub("bmtrain.optim", OptimManager=object)
    stub("fmoe")
    stub("fmoe.layers", _fmoe_general_global_forward=None)
    stub("fmoe.linear", MOELinear=None)
    stub("tree")
    pretrain = os.path.join(os.path.abspath(blockffn_dir), "pretrain")
    _package("cpm", os.path.join(pretrain, "cpm"))
    stub("cpm.training_utils")
    stub("cpm.training_utils.value_scheduler", CosineScheduler=None, LinearScheduler=None, ExpScheduler=None)
    _package("cpm.dragonfly", os.path.join(pretrain, "cpm", "dragonfly"))
    blockffn = importlib.import_module("cpm.dragonfly.blockffn")
    context = importlib.import_module("cpm.dragonfly.activation_context").ActivationContext
    return blockffn, context


def make_block_ffn(out_dir, blockffn_dir) -> None:
    blockffn, context = import_blockffn(blockffn_dir)
    chunk = 4
    context.set_l1_lambda_option("fixed")
    context.set_l1_lambda(1.0)
    context.set_transfer_lambda(1.0)
    context._stat_act_window_sizes = [1]
    context._stat_window_activation_nums = [0]
    context._stat_window_total_nums = [0]
    context.set_chunk_regularization_enabled(True)
    context.set_chunk_regularization_length(chunk)
    config = dict(dim_model=16, dim_expert=6, num_expert=4, router_activate_fn="relu", ffn_activate_fn="silu",
                  norm_after_router="rms", use_linear=True, expert_gated=False, gate_policy="null", eps=1e-6)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = blockffn.BLockFeedForward(dtype=torch.float32, **config).eval()
    randomize_(model, g)
    b, n = 2, 8
    x = torch.randn(b, n, config["dim_model"], generator=g)
    # The previous token of the same row (-1 at a row's start): the segments are the rows.
    shift = torch.arange(b * n) - 1
    shift[torch.arange(b) * n] = -1
    with torch.no_grad():
        y, l1, balance, entropy, transfer, chunk_loss, token_balance = model(
            x, segment_shift_indices=shift, seq_mask=torch.ones(b * n))
    outputs = {"y": y, "l1_loss": l1, "balance_loss": balance, "router_entropy": entropy, "transfer_loss": transfer,
               "chunk_loss": chunk_loss}
    extra = {"source": "thunlp/BlockFFN pretrain/cpm/dragonfly/blockffn.py (bmtrain as plain torch)", "device": "cpu",
             "chunk_regularization_length": chunk, "transfer_lambda": 1.0, "sigmoid_steep": context._sigmoid_steep,
             "l1_scale": 1e-8, "token_balance_loss": float(token_balance)}
    write_fixture(out_dir, "block_ffn", model, config, {"x": x}, outputs, extra)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--timm", default=None, help="folder holding timm's source (huggingface/pytorch-image-models)")
    parser.add_argument("--blockffn", default=None, help="folder holding BlockFFN's source (thunlp/BlockFFN)")
    parser.add_argument("--only", default=None, help="comma-separated fixture makers to run: mambaout,block_ffn")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("versions:", versions(), "python", sys.version.split()[0])
    only = set(args.only.split(",")) if args.only else {"mambaout", "block_ffn"}
    makers = []
    if "mambaout" in only:
        makers.append(lambda: make_mambaout(args.out, args.timm))
    if args.blockffn and "block_ffn" in only:
        makers.append(lambda: make_block_ffn(args.out, args.blockffn))
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
