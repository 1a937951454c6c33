#!/usr/bin/env python3
"""Writes the expected state-dict keys and shapes of timm MetaFormer models, one `key [d0,d1,...]` a line.

Derived by hand from timm/models/metaformer.py and timm/layers (Mlp, GroupNorm1, LayerNorm, LayerNorm2d),
without importing torch or timm: every entry below states what timm registers, in timm's registration
order (a module's own parameters first, then its children in the order they are assigned in __init__).
Modules that timm sets to nn.Identity (None norm, no layer/res scale, drop_path == 0) add no keys, and
norms whose bias timm sets to None (GroupNorm1NoBias, LayerNorm2dNoBias, LayerNormNoBias) add only
`weight`. Re-run with `python3 gen_metaformer_keys.py` in this folder.
"""


def conv(prefix, cin, cout, k, bias=True, groups=1):
    out = [(f"{prefix}.weight", [cout, cin // groups, k, k])]
    if bias:
        out.append((f"{prefix}.bias", [cout]))
    return out


def linear(prefix, fin, fout, bias=True):
    out = [(f"{prefix}.weight", [fout, fin])]
    if bias:
        out.append((f"{prefix}.bias", [fout]))
    return out


def norm(prefix, kind, c):
    if kind is None:                      # nn.Identity
        return []
    if kind in ("GroupNorm1", "LayerNorm2d", "LayerNorm"):
        return [(f"{prefix}.weight", [c]), (f"{prefix}.bias", [c])]
    if kind in ("GroupNorm1NoBias", "LayerNorm2dNoBias", "LayerNormNoBias"):
        return [(f"{prefix}.weight", [c])]
    raise ValueError(kind)


def act(prefix, kind):
    # StarReLU: own params scale [1], bias [1] (its relu child has none); GELU: none.
    return [(f"{prefix}.scale", [1]), (f"{prefix}.bias", [1])] if kind == "StarReLU" else []


def mixer(prefix, kind, dim):
    if kind in ("Pooling", "Identity"):
        return []
    if kind == "SepConv":                 # 1x1 Conv2d pointwise layers in timm (not Linear), no bias
        mid = 2 * dim
        return (conv(f"{prefix}.pwconv1", dim, mid, 1, bias=False)
                + act(f"{prefix}.act1", "StarReLU")
                + conv(f"{prefix}.dwconv", mid, mid, 7, bias=False, groups=mid)
                + conv(f"{prefix}.pwconv2", mid, dim, 1, bias=False))
    if kind == "Attention":               # head_dim 32, qkv_bias False, proj_bias False
        heads = max(dim // 32, 1)
        adim = heads * 32
        return linear(f"{prefix}.qkv", dim, 3 * adim, bias=False) + linear(f"{prefix}.proj", adim, dim, bias=False)
    if kind.startswith("RandomMixing"):
        n = int(kind.split(":")[1])
        return [(f"{prefix}.random_matrix", [n, n])]
    raise ValueError(kind)


def block(prefix, dim, cfg, stage):
    nchw = cfg["mixers"][stage] != "Attention"
    ls = cfg["ls"][stage]
    rs = cfg["rs"][stage]
    ln = cfg["norms"][stage]
    keys = []
    keys += norm(f"{prefix}.norm1", ln, dim)
    keys += mixer(f"{prefix}.token_mixer", cfg["mixers"][stage], dim)
    if ls is not None:
        keys.append((f"{prefix}.layer_scale1.scale", [dim]))
    if rs is not None:
        keys.append((f"{prefix}.res_scale1.scale", [dim]))
    keys += norm(f"{prefix}.norm2", ln, dim)
    hidden = 4 * dim
    if nchw:
        keys += conv(f"{prefix}.mlp.fc1", dim, hidden, 1, bias=cfg["mlp_bias"])
    else:
        keys += linear(f"{prefix}.mlp.fc1", dim, hidden, bias=cfg["mlp_bias"])
    keys += act(f"{prefix}.mlp.act", cfg["mlp_act"])
    if nchw:
        keys += conv(f"{prefix}.mlp.fc2", hidden, dim, 1, bias=cfg["mlp_bias"])
    else:
        keys += linear(f"{prefix}.mlp.fc2", hidden, dim, bias=cfg["mlp_bias"])
    if ls is not None:
        keys.append((f"{prefix}.layer_scale2.scale", [dim]))
    if rs is not None:
        keys.append((f"{prefix}.res_scale2.scale", [dim]))
    return keys


def metaformer(cfg):
    dims, depths = cfg["dims"], cfg["depths"]
    keys = conv("stem.conv", 3, dims[0], 7) + norm("stem.norm", cfg["ds_norm"], dims[0])
    prev = dims[0]
    for i, (d, n) in enumerate(zip(dims, depths)):
        if prev != d:
            keys += norm(f"stages.{i}.downsample.norm", cfg["ds_norm"], prev)
            keys += conv(f"stages.{i}.downsample.conv", prev, d, 3)
        for j in range(n):
            keys += block(f"stages.{i}.blocks.{j}", d, cfg, i)
        prev = d
    c = dims[-1]
    keys += norm("head.norm", "LayerNorm2d", c)
    if cfg["mlp_head"]:
        keys += linear("head.fc.fc1", c, 4 * c) + norm("head.fc.norm", "LayerNorm", 4 * c) + linear("head.fc.fc2", 4 * c, 1000)
    else:
        keys += linear("head.fc", c, 1000)
    return keys


DIMS = [64, 128, 320, 512]
V2 = dict(ds_norm="LayerNorm2dNoBias", mlp_act="StarReLU", mlp_bias=False, ls=[None] * 4, rs=[None, None, 1.0, 1.0])
CONFIGS = {
    "poolformer_s12": dict(dims=DIMS, depths=[2, 2, 6, 2], mixers=["Pooling"] * 4, norms=["GroupNorm1"] * 4,
                           ds_norm=None, mlp_act="GELU", mlp_bias=True, ls=[1e-5] * 4, rs=[None] * 4, mlp_head=False),
    "convformer_s18": dict(V2, dims=DIMS, depths=[3, 3, 9, 3], mixers=["SepConv"] * 4, norms=["LayerNorm2dNoBias"] * 4,
                           mlp_head=True),
    "caformer_s18": dict(V2, dims=DIMS, depths=[3, 3, 9, 3], mixers=["SepConv"] * 2 + ["Attention"] * 2,
                         norms=["LayerNorm2dNoBias"] * 2 + ["LayerNormNoBias"] * 2, mlp_head=True),
    # sail-sg models (not in timm), in timm's layout and naming, like timm's poolformerv2:
    "identityformer_s12": dict(V2, dims=DIMS, depths=[2, 2, 6, 2], mixers=["Identity"] * 4,
                               norms=["GroupNorm1NoBias"] * 4, mlp_head=False),
    "randformer_s12": dict(V2, dims=DIMS, depths=[2, 2, 6, 2],
                           mixers=["Identity", "Identity", "RandomMixing:196", "RandomMixing:49"],
                           norms=["GroupNorm1NoBias"] * 4, mlp_head=False),
}

if __name__ == "__main__":
    for name, cfg in CONFIGS.items():
        keys = metaformer(cfg)
        total = 0
        with open(f"{name}.keys.txt", "w") as f:
            for k, shape in keys:
                n = 1
                for s in shape:
                    n *= s
                total += n
                f.write(f"{k} [{','.join(str(s) for s in shape)}]\n")
        print(f"{name}: {len(keys)} tensors, {total} parameters ({total / 1e6:.2f} M)")
