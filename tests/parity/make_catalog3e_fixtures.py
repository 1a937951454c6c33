#!/usr/bin/env python3
"""Parity fixtures for the catalog's third part (PoNet), made by the official code.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the files of
make_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json):

  ponet_lra    lxchtan/PoNet's LRA classifier (examples/LRA/code: model_wrapper.py ModelForSC, model.py Model,
               attention.py Attention with attn_type "ponet", attention_ponet.py PoNetAttention), the ListOps layout
               (two layers, MEAN pooling) at small widths, fp32, eval, CPU; output: the logits
               (seq_classifer(model(input_ids, mask)), what ModelForSC.forward scores), with a mask of ones
  ponet_mixer  the same code's Attention module alone (the token mixer), with more segments than the sequence fills
  ponet_lra_padded    ponet_lra's model and weights (rebuilt from the same seed, checked equal to the fixture's) on
                      padded rows: input_ids, a padding mask (1 at tokens, 0 at padding; rows of 23, 20 and 9 tokens,
                      whole segments of padding in the last) and the logits (only NAME.io.safetensors)
  ponet_mixer_padded  ponet_mixer's module and weights on padded rows (10 and 4 tokens of 13): x, mask, y (only
                      NAME.io.safetensors)

--ponet is the folder holding PoNet's source (lxchtan/PoNet); its LRA code is pure torch and is imported as it is
(torch 1.13 has scatter_reduce). No official code is copied into the project. Every parameter is re-drawn (norm
weights around 1, biases non-zero) so no test can pass on constants.
"""
import argparse
import math
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_catalog2_fixtures import randomize_, save_file, versions, write_fixture  # noqa: E402

SEED = 4321


def import_lra(ponet_dir):
    code = os.path.join(os.path.abspath(ponet_dir), "examples", "LRA", "code")
    if code not in sys.path:
        sys.path.insert(0, code)
    import attention  # noqa: F401
    import model_wrapper
    return model_wrapper, attention


def lra_config(**overrides):
    # lra_config.py's "listops" model and its "ponet" extra config, at small widths; what run_tasks.py adds.
    config = dict(learn_pos_emb=True, tied_weights=False, embedding_dim=16, transformer_dim=16, transformer_hidden_dim=24,
                  head_dim=8, num_head=2, num_layers=2, vocab_size=16, max_seq_len=32, dropout_prob=0.1,
                  attention_dropout=0.1, pooling_mode="MEAN", num_classes=5, attention_grad_checkpointing=False,
                  segment_num=4, mixed_precision=False, attn_type="ponet")
    config.update(overrides)
    return config


def make_ponet_lra(out_dir, ponet_dir) -> None:
    model_wrapper, _ = import_lra(ponet_dir)
    config = lra_config()
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = model_wrapper.ModelForSC(config).eval()
    randomize_(model, g)
    # 23 tokens: segments of 23 // 4 + 1 = 6, the last one short.
    input_ids = torch.randint(0, config["vocab_size"], (2, 23), generator=g)
    mask = torch.ones(2, 23)
    with torch.no_grad():
        logits = model.seq_classifer(model.model(input_ids, mask))
        # ModelForSC.forward's own loss on these logits, as a check that they are what it scores.
        label = torch.tensor([1, 3])
        loss = model(input_ids, mask, label)["loss"]
        assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, label, reduction="none"))
    write_fixture(out_dir, "ponet_lra", model, config, {"input_ids": input_ids}, {"logits": logits},
                  {"source": "lxchtan/PoNet examples/LRA/code (ModelForSC, attn_type ponet)", "device": "cpu",
                   "parameters": sum(p.numel() for p in model.parameters())})


def make_ponet_mixer(out_dir, ponet_dir) -> None:
    _, attention = import_lra(ponet_dir)
    # 13 tokens in segments of 13 // 6 + 1 = 3: five segments, the sixth empty.
    config = lra_config(segment_num=6)
    torch.manual_seed(SEED + 1)
    g = torch.Generator().manual_seed(SEED + 1)
    model = attention.Attention(config).eval()
    randomize_(model, g)
    x = torch.randn(2, 13, config["transformer_dim"], generator=g)
    with torch.no_grad():
        y = model(x, torch.ones(2, 13))
    write_fixture(out_dir, "ponet_mixer", model, config, {"x": x}, {"y": y},
                  {"source": "lxchtan/PoNet examples/LRA/code/attention.py Attention (attn_type ponet)", "device": "cpu"})


def _read_safetensors(path):
    """A safetensors file's tensors (float32 and int64, as the fixtures hold), without the safetensors package."""
    import json
    import numpy as np
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "I64": np.int64}
    out = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
        out[key] = torch.from_numpy(array.copy())
    return out


def _same_weights(model, out_dir, name):
    """The rebuilt model's state dict equals the checked-in fixture's (the padded io files reuse its weights)."""
    saved = _read_safetensors(os.path.join(out_dir, name + ".weights.safetensors"))
    mine = model.state_dict()
    assert sorted(saved) == sorted(mine), f"{name}: other keys than the fixture's"
    for k, v in saved.items():
        assert torch.equal(v, mine[k]), f"{name}: {k} differs from the fixture's; run ponet_lra/ponet_mixer first"


def _save_io(out_dir, name, model, weights, tensors):
    meta = {"fixture": name, "class": type(model).__name__, "seed": str(SEED), "weights": weights}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, name + ".io.safetensors"), metadata=meta)
    print(f"[{name}] io {sorted(tensors)} (weights: {weights})")


def make_ponet_padded(out_dir, ponet_dir) -> None:
    """The official forward with a padding mask: the LRA model and the mixer, on the fixtures' weights."""
    model_wrapper, attention = import_lra(ponet_dir)
    config = lra_config()
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = model_wrapper.ModelForSC(config).eval()
    randomize_(model, g)
    _same_weights(model, out_dir, "ponet_lra")
    g = torch.Generator().manual_seed(SEED + 2)
    # 23 positions in segments of 6 (the last short): rows of 23, 20 and 9 tokens; the last row's segments 2 and 3 are
    # all padding. Padding ids are drawn too: a padded position must not matter whatever its id.
    input_ids = torch.randint(0, config["vocab_size"], (3, 23), generator=g)
    mask = torch.zeros(3, 23)
    for row, n in enumerate((23, 20, 9)):
        mask[row, :n] = 1
    with torch.no_grad():
        logits = model.seq_classifer(model.model(input_ids, mask))
        label = torch.tensor([1, 3, 0])
        loss = model(input_ids, mask, label)["loss"]
        assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, label, reduction="none"))
        # the padding changes the answer (else the test could pass without the mask)
        unmasked = model.seq_classifer(model.model(input_ids, torch.ones_like(mask)))
        print(f"[ponet_lra_padded] max |masked - unmasked| logits: {(logits - unmasked).abs().max().item():.3g}")
    _save_io(out_dir, "ponet_lra_padded", model, "ponet_lra", {"input_ids": input_ids, "mask": mask, "logits": logits})

    config = lra_config(segment_num=6)
    torch.manual_seed(SEED + 1)
    g = torch.Generator().manual_seed(SEED + 1)
    mixer = attention.Attention(config).eval()
    randomize_(mixer, g)
    _same_weights(mixer, out_dir, "ponet_mixer")
    g = torch.Generator().manual_seed(SEED + 3)
    x = torch.randn(2, 13, config["transformer_dim"], generator=g)
    mask = torch.zeros(2, 13)
    mask[0, :10] = 1
    mask[1, :4] = 1
    with torch.no_grad():
        y = mixer(x, mask)
    _save_io(out_dir, "ponet_mixer_padded", mixer, "ponet_mixer", {"x": x, "mask": mask, "y": y})


def listops_parameters(ponet_dir) -> int:
    """The parameter count of the ListOps model as run_tasks.py builds it (max_seq_len rounded up to a power of two)."""
    model_wrapper, _ = import_lra(ponet_dir)
    sys.path.insert(0, os.path.join(os.path.abspath(ponet_dir), "examples", "LRA", "code"))
    import lra_config as official
    config = dict(official.config["listops"]["model"])
    config.update(official.config["listops"]["extra_attn_config"]["ponet"])
    config.update(mixed_precision=False, attn_type="ponet", max_seq_len=int(2 ** math.ceil(math.log2(config["max_seq_len"]))))
    return sum(p.numel() for p in model_wrapper.ModelForSC(config).parameters())


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--ponet", required=True, help="folder holding PoNet's source (lxchtan/PoNet)")
    parser.add_argument("--only", default=None, help="comma-separated fixture makers to run: ponet_lra,ponet_mixer,ponet_padded")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("versions:", versions(), "python", sys.version.split()[0])
    only = set(args.only.split(",")) if args.only else {"ponet_lra", "ponet_mixer", "ponet_padded"}
    makers = []
    if "ponet_lra" in only:
        makers.append(lambda: make_ponet_lra(args.out, args.ponet))
        makers.append(lambda: print("ponet_lra_listops parameters (official ListOps model):", listops_parameters(args.ponet)))
    if "ponet_mixer" in only:
        makers.append(lambda: make_ponet_mixer(args.out, args.ponet))
    if "ponet_padded" in only:
        makers.append(lambda: make_ponet_padded(args.out, args.ponet))
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
