#!/usr/bin/env python3
"""Parity fixtures for the catalog's third part (iFormer, FFNet), made by the official code.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the files of
make_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json):

  iformer       sail-sg/iFormer InceptionTransformer (models/inception_transformer.py), iformer_small's layout (four
                stages, Inception mixers with a per-block frequency ramp, layer scale in stages 3-4, pooled attention in
                stages 1-2) at small widths, eval, BatchNorm running statistics re-drawn, fp32, CPU
  iformer_96    the same model (weights: iformer) on a 96×96 input: the official interpolates its positional embeddings
                (only NAME.io.safetensors)
  ffnet         ysj9909/FFNet FFNet (models/ffnet.py), ffnet_1's layout (3×3 channel-mixer convs, 3×3 token-mixer convs
                in stages 1-2 and RepVGG 7×7 + 3×3 branches in stages 3-4, RepVGG patch merging) at small widths, in
                its training form, eval, BatchNorm running statistics re-drawn, fp32, CPU
  ffnet_deploy  the same model after the official re-parameterisation (export_model.py's replace_batchnorm: every
                module with a fuse() becomes one conv): its state dict and its output on the same input
  ffnet_ls      ffnet_3's options (7×7 RepVGG channel-mixer convs everywhere, layer scale) at small widths, eval

--iformer is the folder holding iFormer's source (sail-sg/iFormer), --ffnet FFNet's (ysj9909/FFNet), --timm timm's
(huggingface/pytorch-image-models). Both official files import timm; where timm imports as a package (the GPU host) it
is used as installed; otherwise (torch 1.13 without torchvision, no timm) the script makes timm's own layers files
importable (as make_catalog3_fixtures.py does for MambaOut) and stubs what the files import but a directly built model
never calls: the model registry and builders, the pretrained-config helpers, and names of layers the configurations
here do not build (iFormer's import of timm's PatchEmbed, which the file redefines; FFNet's SqueezeExcite, off in every
official configuration). The iFormer module's own trunc_normal_/lecun_normal_ are used; timm's Mlp, DropPath and
to_2tuple are timm's. No official code is copied into the project.
Every parameter is re-drawn (norm weights around 1, biases non-zero, layer scales and positional embeddings of order 1)
and BatchNorm running means and variances too, so no test can pass on constants.
"""
import argparse
import importlib
import os
import sys
import traceback
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_catalog2_fixtures import randomize_, save_file, versions, write_fixture  # noqa: E402
from make_catalog3_fixtures import import_mambaout  # noqa: E402

SEED = 4321


def _module(name, **attrs):
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
    for k, v in attrs.items():
        if not hasattr(module, k):
            setattr(module, k, v)
    return module


def _timm_layers(timm_dir):
    """timm's layers (the installed timm, or its source's layers files imported alone)."""
    import_mambaout(timm_dir)
    layers = importlib.import_module("timm.layers")
    for file in ("mlp", "helpers", "drop", "weight_init", "norm"):
        importlib.import_module("timm.layers." + file)
    return layers


def _stub_timm(timm_dir):
    layers = _timm_layers(timm_dir)
    mlp = importlib.import_module("timm.layers.mlp")
    helpers = importlib.import_module("timm.layers.helpers")
    drop = importlib.import_module("timm.layers.drop")
    init = importlib.import_module("timm.layers.weight_init")
    norm = importlib.import_module("timm.layers.norm")
    _module("timm.data", IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406), IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225),
            IMAGENET_INCEPTION_MEAN=(0.5, 0.5, 0.5), IMAGENET_INCEPTION_STD=(0.5, 0.5, 0.5))
    never_called = None
    _module("timm.models", register_model=lambda f: f)
    _module("timm.models.helpers", build_model_with_cfg=never_called, named_apply=never_called,
            adapt_input_conv=never_called)
    _module("timm.models.registry", register_model=lambda f: f)
    _module("timm.models.layers", PatchEmbed=never_called, Mlp=mlp.Mlp, DropPath=drop.DropPath,
            trunc_normal_=init.trunc_normal_, lecun_normal_=getattr(init, "lecun_normal_", never_called),
            to_2tuple=helpers.to_2tuple, SqueezeExcite=never_called, LayerNorm2d=norm.LayerNorm2d)
    _module("timm.models.layers.helpers", to_2tuple=helpers.to_2tuple)
    _module("timm.models.vision_transformer", trunc_normal_=init.trunc_normal_)
    _module("timm.models._builder", resolve_pretrained_cfg=never_called, _update_default_kwargs=never_called)
    return layers


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_iformer(iformer_dir, timm_dir):
    try:
        import timm.models.layers  # noqa: F401  (the installed timm)
        import timm.models.helpers  # noqa: F401
    except Exception:
        _stub_timm(timm_dir)
    return _load(os.path.join(os.path.abspath(iformer_dir), "models", "inception_transformer.py"), "inception_transformer")


def import_ffnet(ffnet_dir, timm_dir):
    try:
        import timm.models._builder  # noqa: F401  (the installed timm)
        from timm.models.layers import SqueezeExcite, LayerNorm2d  # noqa: F401
    except Exception:
        _stub_timm(timm_dir)
    return _load(os.path.join(os.path.abspath(ffnet_dir), "models", "ffnet.py"), "ffnet")


def _redraw(model, g):
    randomize_(model, g)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)


def count(model):
    return sum(p.numel() for p in model.parameters())


def make_iformer(out_dir, iformer_dir, timm_dir) -> None:
    m = import_iformer(iformer_dir, timm_dir)
    official = m.iformer_small()
    print(f"iformer_small: {count(official)} parameters, {len(official.state_dict())} state-dict entries")
    # iformer_small's layout at small widths: head_dim 4 everywhere; the frequency ramp gives 1, 1 | 2 | 3, 4 | 5
    # attention heads (low-frequency channels 4, 4 | 8 | 12, 16 | 20), the rest (4, 4 | 8 | 12, 8 | 12) split between
    # the depthwise-conv and max-pool branches; 64×64 inputs give 16, 8, 4, 2 tokens per side (stages 1-2 pool by 2).
    config = dict(img_size=64, depths=[2, 1, 2, 1], embed_dims=[8, 16, 24, 32], num_heads=[2, 4, 6, 8],
                  attention_heads=[1, 1, 2, 3, 4, 5], num_classes=10, use_layer_scale=True, layer_scale_init_value=1e-6)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = m.InceptionTransformer(**config).eval()
    _redraw(model, g)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        y = model(x)
    write_fixture(out_dir, "iformer", model, config, {"x": x}, {"y": y},
                  {"source": "sail-sg/iFormer models/inception_transformer.py", "device": "cpu",
                   "iformer_small_parameters": count(official)})
    # Another input size: the official interpolates each positional embedding bilinearly to the stage's map (96×96:
    # 24, 12, 6, 3 per side for embeddings of 16, 8, 4, 2). Same weights; only the input and output are stored.
    x96 = torch.randn(1, 3, 96, 96, generator=g)
    with torch.no_grad():
        y96 = model(x96)
    meta = {"fixture": "iformer_96", "class": type(model).__name__, "seed": str(SEED), "weights": "iformer"}
    save_file({"x": x96.contiguous(), "y": y96.contiguous()}, os.path.join(out_dir, "iformer_96.io.safetensors"), metadata=meta)
    print(f"[iformer_96] io ['x', 'y'] (weights: iformer), y {list(y96.shape)}")


def replace_batchnorm(net):
    """export_model.py's re-parameterisation (its file imports coremltools, so it is not imported): every child with a
    fuse() is replaced by what fuse() returns."""
    for child_name, child in net.named_children():
        if hasattr(child, "fuse"):
            fused = child.fuse()
            setattr(net, child_name, fused)
            replace_batchnorm(fused)
        else:
            replace_batchnorm(child)


def make_ffnet(out_dir, ffnet_dir, timm_dir) -> None:
    m = import_ffnet(ffnet_dir, timm_dir)
    # ffnet_1's arguments (the registered function also resolves a pretrained config, not needed to build it).
    ffnet_1 = dict(depth=[2, 2, 8, 2], embed_dim=[80, 160, 320, 640], in_dim=64, kernel_sizes=[3, 3, 3, 3],
                   kernel_sizes1=[3, 3, 7, 7], kernel_sizes2=[3, 3, 7, 7], expansion_ratios=[3, 3, 3, 3],
                   drop_path_rate=0.1)
    official = m.FFNet(**ffnet_1)
    print(f"ffnet_1: {count(official)} parameters, {len(official.state_dict())} state-dict entries")
    official.eval()
    replace_batchnorm(official)
    print(f"ffnet_1 deploy: {count(official)} parameters, {len(official.state_dict())} state-dict entries")
    configs = {
        "ffnet": dict(depth=[2, 1, 2, 1], embed_dim=[8, 16, 32, 32], in_dim=8, kernel_sizes=[3, 3, 3, 3],
                      kernel_sizes1=[3, 3, 7, 7], kernel_sizes2=[3, 3, 7, 7], expansion_ratios=[3, 3, 3, 3],
                      num_classes=10, drop_path_rate=0.1),
        "ffnet_ls": dict(depth=[1, 1, 1, 1], embed_dim=[8, 16, 32, 32], in_dim=8, kernel_sizes=[7, 7, 7, 7],
                         kernel_sizes1=[3, 3, 7, 7], kernel_sizes2=[3, 3, 7, 7], expansion_ratios=[3, 3, 3, 3],
                         num_classes=10, use_layer_scale=True, layer_scale_init_value=1e-6, drop_path_rate=0.1),
    }
    for name, config in configs.items():
        torch.manual_seed(SEED)
        g = torch.Generator().manual_seed(SEED)
        model = m.FFNet(**config).eval()
        _redraw(model, g)
        x = torch.randn(2, 3, 64, 64, generator=g)
        with torch.no_grad():
            y = model(x)
        extra = {"source": "ysj9909/FFNet models/ffnet.py", "device": "cpu"}
        if name == "ffnet":
            extra["ffnet_1_parameters"] = count(m.FFNet(**ffnet_1))
        write_fixture(out_dir, name, model, config, {"x": x}, {"y": y}, extra)
        if name == "ffnet":
            replace_batchnorm(model)
            with torch.no_grad():
                y_deploy = model(x)
            print(f"[ffnet_deploy] max |train-form - deploy-form| = {(y - y_deploy).abs().max().item():.3g}")
            write_fixture(out_dir, "ffnet_deploy", model, config, {"x": x}, {"y": y_deploy},
                          {"source": "ysj9909/FFNet models/ffnet.py, re-parameterised as export_model.py's "
                                     "replace_batchnorm", "device": "cpu"})


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--timm", default=None, help="folder holding timm's source (huggingface/pytorch-image-models)")
    parser.add_argument("--iformer", default=None, help="folder holding iFormer's source (sail-sg/iFormer)")
    parser.add_argument("--ffnet", default=None, help="folder holding FFNet's source (ysj9909/FFNet)")
    parser.add_argument("--only", default=None, help="comma-separated fixture makers to run: iformer,ffnet")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("versions:", versions(), "python", sys.version.split()[0])
    only = set(args.only.split(",")) if args.only else {"iformer", "ffnet"}
    makers = []
    if args.iformer and "iformer" in only:
        makers.append(lambda: make_iformer(args.out, args.iformer, args.timm))
    if args.ffnet and "ffnet" in only:
        makers.append(lambda: make_ffnet(args.out, args.ffnet, args.timm))
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
