#!/usr/bin/env python3
"""Parity fixtures for the catalog's third part (MS-MLP, RaftMLP, WaveMix), made by the official code.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the files of
make_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json):

  ms_mlp   JegZheng/MS-MLP MS_MLP (models/ms_mlp.py), MS-MLP-T's layout (four stages, shift 5, growing mix sizes) at
           small widths chosen so torch.chunk's ceiling-division groups are unequal in every stage, fp32, eval, CPU
  raft_mlp        okojoalg/raft-mlp RaftMLP (libs/models.py, libs/modules.py), RaftMLP-S's layout ("ser_pm" levels, the
                  cross-scale MLP embedding, shortcut False) at small widths, raft sizes 2 and 4, a 3-kernel embedding
  raft_mlp_mixer  the same with the plain patch embedding ("emb_mixer": Rearrange + Linear)

Run with /usr/bin/python3 (torch 1.13, CPU) from the project root, each official repository unpacked in a scratch
folder outside the project:

  python3 tests/parity/make_catalog3d_fixtures.py --msmlp /tmp/off/MS-MLP --only ms_mlp
  python3 tests/parity/make_catalog3d_fixtures.py --raftmlp /tmp/off/raft-mlp --einops /tmp/off/einops --only raft_mlp

ms_mlp.py imports timm.models.layers (DropPath, to_2tuple, trunc_normal_); timm is not needed for a built model's eval
forward, so the script gives it a stand-in module: DropPath as identity (the fixtures use drop_path 0, where the
official builds nn.Identity anyway), to_2tuple, and trunc_normal_ as a normal draw (every parameter is re-drawn after
construction). raft-mlp's libs/modules.py uses einops (Rearrange layers, rearrange): --einops names a folder holding
einops' source (arogozhnikov/einops), put first on the import path; libs/__init__.py is empty, so `libs.models` imports
alone. No official code is copied into the project. Every parameter and buffer is re-drawn (norm weights
around 1, biases and layer scales non-zero) so no test can pass on constants.
"""
import argparse
import importlib.util
import os
import sys
import traceback
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_catalog2_fixtures import randomize_, versions, write_fixture  # noqa: E402

SEED = 4321


def shim_timm_layers():
    """A stand-in timm.models.layers with what the official files import (none of it runs in an eval forward)."""
    if getattr(sys.modules.get("timm.models.layers"), "__shim__", False):
        return
    for name in ("timm", "timm.models"):
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module

    class DropPath(torch.nn.Module):
        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            assert not self.training or self.drop_prob == 0.0, "the fixtures run in eval mode"
            return x

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    layers.trunc_normal_ = lambda tensor, mean=0.0, std=1.0, a=-2.0, b=2.0: torch.nn.init.normal_(tensor, mean, std)
    layers.__shim__ = True
    sys.modules["timm.models.layers"] = layers
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda f: f
    sys.modules["timm.models.registry"] = registry


def import_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def redraw_buffers_(model, g):
    """BatchNorm running statistics away from 0 and 1 (eval mode reads them)."""
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)


def make_ms_mlp(out_dir, msmlp_dir) -> None:
    shim_timm_layers()
    ms_mlp = import_file("ms_mlp", os.path.join(os.path.abspath(msmlp_dir), "models", "ms_mlp.py"))
    # MS-MLP-T's layout at small widths: 9, 18, 36, 72 channels make chunk groups of 2, 4, 8 and 15 (the last one 1, 2,
    # 4 and 12); a 40×40 input makes 10, 5, 2 and 1 positions per side (5 → 2: the stride-2 patch embedding floors).
    config = dict(img_size=40, patch_size=4, in_chans=3, num_classes=10, embed_dim=9, depths=[1, 1, 2, 1],
                  shift_size=5, shift_dist=[-2, -1, 0, 1, 2],
                  mix_size=[[1, 1, 3, 5, 7], [1, 3, 3, 5, 7], [1, 5, 5, 5, 7], [1, 7, 7, 7, 7]], mlp_ratio=2.0,
                  drop_rate=0.0, drop_path_rate=0.0, patch_norm=True)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = ms_mlp.MS_MLP(**config).eval()
    randomize_(model, g)
    x = torch.randn(2, 3, 40, 40, generator=g)
    with torch.no_grad():
        y = model(x)
    write_fixture(out_dir, "ms_mlp", model, config, {"x": x}, {"y": y},
                  {"source": "JegZheng/MS-MLP models/ms_mlp.py", "device": "cpu",
                   "parameters": sum(p.numel() for p in model.parameters())})


def make_raft_mlp(out_dir, raftmlp_dir, einops_dir) -> None:
    if einops_dir:
        sys.path.insert(0, os.path.abspath(einops_dir))
    sys.path.insert(0, os.path.abspath(raftmlp_dir))
    from libs.models import RaftMLP
    import einops
    # RaftMLP-S's layout at small widths on 32×32 inputs: levels of 8, 4, 2 and 1 positions per side; raft sizes 2 and
    # 4 (the token MLPs mix raft_size × side values); embedding kernels of 1, 2 and 3 strides (unfold padding 0, 1, 2).
    layers = [dict(depth=1, dim=8, patch_size=4, raft_size=2, embedding_kernels=[4, 8]),
              dict(depth=1, dim=12, patch_size=2, raft_size=2, embedding_kernels=[2, 4]),
              dict(depth=2, dim=16, patch_size=2, raft_size=4, embedding_kernels=[2, 4, 6]),
              dict(depth=1, dim=20, patch_size=2, raft_size=2, embedding_kernels=[2])]
    for name, embedding in [("raft_mlp", "emb_cross_mlp"), ("raft_mlp_mixer", "emb_mixer")]:
        config = dict(layers=layers, in_channels=3, pretrained_image_size=32, num_classes=10, token_expansion_factor=2,
                      channel_expansion_factor=3, dropout=0.0, token_mixing_type="ser_pm", embedding_type=embedding,
                      shortcut=False, drop_path_rate=0.0)
        torch.manual_seed(SEED)
        g = torch.Generator().manual_seed(SEED)
        model = RaftMLP(**config).eval()
        randomize_(model, g)
        x = torch.randn(2, 3, 32, 32, generator=g)
        with torch.no_grad():
            y = model(x)
        write_fixture(out_dir, name, model, config, {"x": x}, {"y": y},
                      {"source": "okojoalg/raft-mlp libs/models.py, libs/modules.py", "device": "cpu",
                       "einops": getattr(einops, "__version__", "?"),
                       "parameters": sum(p.numel() for p in model.parameters())})


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--msmlp", default=None, help="folder holding MS-MLP's source (JegZheng/MS-MLP)")
    parser.add_argument("--raftmlp", default=None, help="folder holding RaftMLP's source (okojoalg/raft-mlp)")
    parser.add_argument("--einops", default=None, help="folder holding einops' source, where einops is not installed")
    parser.add_argument("--only", default=None, help="comma-separated fixture makers to run: ms_mlp,raft_mlp")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("versions:", versions(), "python", sys.version.split()[0])
    only = set(args.only.split(",")) if args.only else {"ms_mlp", "raft_mlp"}
    makers = []
    if args.msmlp and "ms_mlp" in only:
        makers.append(lambda: make_ms_mlp(args.out, args.msmlp))
    if args.raftmlp and "raft_mlp" in only:
        makers.append(lambda: make_raft_mlp(args.out, args.raftmlp, args.einops))
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
