#!/usr/bin/env python3
"""State-dict keys, shapes and parameter counts of the catalog's third part's named variants, from the official code.

Prints, for each official named configuration (the zoo model of the same name must equal it), the parameter count,
the number of state-dict entries and the SHA-256 of its sorted "key [d0,d1,...]" lines (one per entry, buffers
included; each line ends in a newline): what tests/Mix.Dsl.Tests/Catalog3VariantTests.cs asserts. --write DIR also
writes each model's lines to DIR/NAME.keys.txt, to diff against the zoo's when a hash differs
(`mix summary` lists the zoo model's keys).

Run with /usr/bin/python3 (torch 1.13, CPU) from the project root, each official repository unpacked in a scratch
folder outside the project (as the parity fixture scripts):

  python3 tests/parity/catalog3_variant_keys.py --timm /tmp/c3/timm --einops /tmp/c3/einops --src .cat3-src

--src is the folder tests/Mix.Benchmarks.Gpu/make_cat3_src.sh builds (the official files only); the imports and stubs
are catalog3_models.py's (timm's own mambaout.py, through its registered functions, with timm's source when timm is
not installed). Each model is built by the official registered function or, where there is none (RaftMLP, MS-MLP,
WaveMix), from the official configuration file named below.
"""
import argparse
import hashlib
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Mix.Benchmarks.Gpu"))
import catalog3_models as c3  # noqa: E402

# RaftMLP: configs/settings/imagenet-raft-mlp-cross-mlp-emb-{s,m,l}.yaml (they differ in the widths only).
RAFT_DIMS = {"raft_mlp_s": [64, 128, 256, 512], "raft_mlp_m": [96, 192, 384, 768], "raft_mlp_l": [128, 192, 512, 1024]}
# MS-MLP: configs/msmlp_{tiny,small,base}_patch4_shift5_224.yaml.
MSMLP = {"ms_mlp_tiny": (96, [3, 3, 9, 3], 0.1), "ms_mlp_small": (96, [3, 3, 27, 3], 0.4),
         "ms_mlp_base": (128, [3, 3, 27, 3], 0.5)}
# WaveMix: Saved_weights/ImageNet/wavemix_28M_75.06.py (the zoo's wavemix_192_16), Saved_weights/cifar10/
# wavemix_cifar10_94.58.py (wavemix_cifar10).
WAVEMIX = {"wavemix_192_16": dict(num_classes=1000, depth=16, mult=2, ff_channel=192, final_dim=192, dropout=0.5,
                                  level=3, initial_conv="pachify", patch_size=4, stride=2),
           "wavemix_cifar10": dict(num_classes=10, depth=7, mult=2, ff_channel=144, final_dim=144, dropout=0.5,
                                   level=1, initial_conv="strided", patch_size=4, stride=1)}

NAMES = (["mambaout_femto", "mambaout_kobe", "mambaout_tiny", "mambaout_small", "mambaout_base"]
         + ["rcvit_xs", "rcvit_s", "rcvit_m", "rcvit_t"]
         + ["iformer_small", "iformer_base", "iformer_large", "iformer_small_384", "iformer_base_384", "iformer_large_384"]
         + ["ffnet_1", "ffnet_2", "ffnet_3", "ffnet_4"]
         + list(RAFT_DIMS) + list(MSMLP) + list(WAVEMIX))


def mambaout(name):
    try:
        import timm
        if not getattr(sys.modules.get("timm.models._builder"), "__stub__", False):
            return timm.create_model(name, pretrained=False)
    except Exception:
        pass
    from make_catalog3_fixtures import import_mambaout
    module, _ = import_mambaout(None)
    # timm's registered function with its builder reduced to the constructor (the builder adds pretrained loading
    # and feature extraction only)
    module.build_model_with_cfg = lambda cls, variant, pretrained, pretrained_filter_fn=None, feature_cfg=None, **kw: cls(**kw)
    return getattr(module, name)()


def build(name, src):
    src = os.path.abspath(src)
    if name.startswith("mambaout_"):
        return mambaout(name)
    if name.startswith("rcvit_"):
        c3.build("rcvit_xs", src)  # loads rcvit.py (and the einops stand-in where einops is missing)
        return getattr(sys.modules["rcvit"], name)()
    if name.startswith("iformer_"):
        c3.build("iformer_small", src)
        return getattr(sys.modules["inception_transformer"], name)()
    if name.startswith("ffnet_"):
        c3.build("ffnet_1", src)
        module = sys.modules["ffnet"]
        # the registered function's arguments: call it with the pretrained-config lookup bypassed (not needed to build)
        module.resolve_pretrained_cfg = lambda variant: type("Cfg", (), {"to_dict": lambda self: {}})()
        module._update_default_kwargs = lambda *a, **k: None
        return getattr(module, name)()
    if name in RAFT_DIMS:
        c3.build("raft_mlp_s", src)
        from libs.models import RaftMLP
        kernels = [[4, 8], [2, 4], [2, 4], [2]]
        layers = [dict(depth=d, dim=w, patch_size=p, raft_size=2, embedding_kernels=k)
                  for d, w, p, k in zip([2, 2, 6, 2], RAFT_DIMS[name], [4, 2, 2, 2], kernels)]
        return RaftMLP(layers=layers, in_channels=3, pretrained_image_size=224, num_classes=1000,
                       token_expansion_factor=2, channel_expansion_factor=4, dropout=0.0, token_mixing_type="ser_pm",
                       embedding_type="emb_cross_mlp", shortcut=False, drop_path_rate=0.1)
    if name in MSMLP:
        c3.build("ms_mlp_tiny", src)
        embed_dim, depths, dpr = MSMLP[name]
        return sys.modules["ms_mlp"].MS_MLP(
            img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=embed_dim, depths=depths, shift_size=5,
            shift_dist=[-2, -1, 0, 1, 2], mix_size=[[1, 1, 3, 5, 7], [1, 3, 3, 5, 7], [1, 5, 5, 5, 7], [1, 7, 7, 7, 7]],
            mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=dpr, patch_norm=True)
    if name in WAVEMIX:
        c3.build("wavemix", src)
        from wavemix.classification import WaveMix
        return WaveMix(**WAVEMIX[name])
    raise KeyError(name)


def key_lines(model):
    return [f"{k} [{','.join(str(d) for d in v.shape)}]\n" for k, v in sorted(model.state_dict().items())]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=".cat3-src")
    ap.add_argument("--timm")
    ap.add_argument("--einops")
    ap.add_argument("--only", default="all")
    ap.add_argument("--write", help="a folder for NAME.keys.txt")
    a = ap.parse_args()
    c3.prepare_imports(a.timm, a.einops)
    names = NAMES if a.only == "all" else a.only.split(",")
    for name in names:
        torch.manual_seed(0)
        model = build(name, a.src)
        lines = key_lines(model)
        digest = hashlib.sha256("".join(lines).encode()).hexdigest()
        params = sum(p.numel() for p in model.parameters())
        print(f'[InlineData("{name}", {params}, {len(lines)}, "{digest}")]', flush=True)
        if a.write:
            os.makedirs(a.write, exist_ok=True)
            with open(os.path.join(a.write, name + ".keys.txt"), "w") as f:
                f.writelines(lines)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
