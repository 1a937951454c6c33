#!/usr/bin/env python3
"""Parity fixtures for Hydra's matrix-mixer family, JustDense and Hydra's BERT encoder.

Writes, into --out (default: tests/Mix.Runtime.Tests/Fixtures/parity), for each fixture NAME the three files of
make_catalog2_fixtures.py (NAME.weights.safetensors, NAME.io.safetensors, NAME.config.json), all fp32, eval, CPU:

  mm_<type>[_fixed]   goombalab/hydra MatrixMixer (hydra/modules/matrix_mixer.py) for every matrix_mixer_type and both
                      is_data_dependent values (dense: fixed only); mm_vandermonde_dft is MatrixMixer's own fixed
                      Vandermonde (is_dft=True, the only one it builds); mm_vandermonde_fixed swaps in the official
                      Vandermonde(is_dft=False) as the matrix_mixer submodule
  justdense           Thrillcrazyer/JustDense layers/build_matrix.py MatrixMixer("dense"), forward(u, u, u)[0]
  hydra_bert          goombalab/hydra hydra/bert/src/bert_layers.py BertForMaskedLM (matrix_mixer_type "hydra")

The official forwards call mamba_ssm's Triton SSD and gated RMSNorm; as in make_catalog2_fixtures.py they are routed
to mamba_ssm's own pure-torch references (ssd_minimal_discrete and rms_norm_ref), and triton is an import stub when it
is not installed (no kernel runs). bert_layers.py imports transformers for three names only; without transformers a
stub provides them: ACT2FN["gelu"] = torch.nn.GELU() (transformers' "gelu" is the exact erf GELU too), a
BertPreTrainedModel that is an nn.Module holding its config (post_init does nothing: every parameter is re-drawn
here anyway), and empty output classes (the forward returns a tuple with use_return_dict False).
Every parameter is re-drawn (make_catalog2_fixtures.randomize_; the Cauchy bias within [0.3, 0.8] so that
q + k + bias stays away from zero) so no test can pass on constants. The script reloads each weights file strictly
into a fresh module and checks that the output is reproduced bit for bit.

    /usr/bin/python3 tests/parity/make_matrix_mixer_fixtures.py --out out --mamba mamba --hydra hydra \\
        --justdense justdense --path einops_src
"""
import argparse
import importlib
import math
import os
import sys
import traceback
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_catalog2_fixtures as common  # noqa: E402  (randomize_, write_fixture, stubs, the SSD reference)

SEED = common.SEED
D_MODEL, EXPAND, HEADDIM, QK_DIM, MAX_SEQ_LEN, D_CONV, CHUNK = 16, 2, 8, 4, 8, 3, 4
HEADS = D_MODEL * EXPAND // HEADDIM  # 4

# (fixture, matrix_mixer_type, is_data_dependent, sequence length)
VARIANTS = [
    ("mm_dense", "dense", False, MAX_SEQ_LEN),
    ("mm_toeplitz_fixed", "toeplitz", False, MAX_SEQ_LEN),
    ("mm_toeplitz", "toeplitz", True, MAX_SEQ_LEN),
    ("mm_vandermonde_dft", "vandermonde", False, MAX_SEQ_LEN),
    ("mm_vandermonde_fixed", "vandermonde", False, MAX_SEQ_LEN),
    ("mm_vandermonde", "vandermonde", True, 7),
    ("mm_cauchy_fixed", "cauchy", False, MAX_SEQ_LEN),
    ("mm_cauchy", "cauchy", True, 7),
    ("mm_low_rank_fixed", "low_rank", False, MAX_SEQ_LEN),
    ("mm_low_rank", "low_rank", True, 7),
    # The official fixed attention runs only when max_seq_len equals the number of heads (its einsums read the
    # [max_seq_len, heads, qk_dim] parameters as "n t d"): max_seq_len = heads = 4 here.
    ("mm_attention_fixed", "attention", False, HEADS),
    ("mm_attention", "attention", True, 7),
    ("mm_quasiseparable_fixed", "quasiseparable", False, MAX_SEQ_LEN),
    ("mm_quasiseparable", "quasiseparable", True, 7),
]


def load(path: str) -> dict:
    """A safetensors file as a state dict (the safetensors package when installed, else the format read here)."""
    if common.load_file is not None:
        return common.load_file(path)
    import json
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[key] = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[info["dtype"]]).reshape(info["shape"]).clone()
    return out


def reference_norm(norm, rms_norm_ref):
    def forward(x, z=None):
        return rms_norm_ref(x, norm.weight, norm.bias, z=z, eps=norm.eps, group_size=norm.group_size,
                            norm_before_gate=norm.norm_before_gate)
    return forward


def redraw_(module, generator):
    common.randomize_(module, generator)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "matrix_mixer.bias":  # Cauchy's scalar: q + k + bias must stay away from zero
                p.copy_(torch.rand(p.shape, generator=generator) * 0.5 + 0.3)


def import_hydra(mamba_dir, hydra_dir):
    common.stub_triton()
    common.stub_packages(mamba_dir, ["mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.triton", "mamba_ssm.utils",
                                     "mamba_ssm.modules"])
    common.stub_packages(hydra_dir, ["hydra", "hydra.modules"])
    from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete
    from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref
    return ssd_minimal_discrete, rms_norm_ref


def run_patched(module, x, scan_modules, ssd_minimal_discrete, rms_norm_ref):
    """module(x) with every gated norm on rms_norm_ref and mamba_chunk_scan_combined on ssd_minimal_discrete."""
    norms = [m for m in module.modules() if type(m).__name__ == "RMSNorm" and hasattr(m, "norm_before_gate")]
    originals = {m: m.mamba_chunk_scan_combined for m in scan_modules}
    with torch.no_grad():
        for m in scan_modules:
            m.mamba_chunk_scan_combined = common.ssd_reference(ssd_minimal_discrete)
        for n in norms:
            n.forward = reference_norm(n, rms_norm_ref)
        try:
            return module(x)
        finally:
            for m, f in originals.items():
                m.mamba_chunk_scan_combined = f
            for n in norms:
                del n.forward


def reload_check(name, out_dir, fresh, x, scan_modules, ssd, ref, expected, pick=lambda o: o):
    fresh.load_state_dict(load(os.path.join(out_dir, f"{name}.weights.safetensors")), strict=True)
    fresh.eval()
    again = pick(run_patched(fresh, x, scan_modules, ssd, ref))
    assert torch.equal(again, expected), f"{name}: reload does not reproduce the output"
    print(f"[{name}] strict reload reproduces the output")


def make_matrix_mixers(out_dir, mamba_dir, hydra_dir, only) -> int:
    ssd, ref = import_hydra(mamba_dir, hydra_dir)
    mm_module = importlib.import_module("hydra.modules.matrix_mixer")
    qs_module = importlib.import_module("hydra.modules.matrix_mixers.quasiseparable")
    from hydra.modules.matrix_mixers import Vandermonde
    failures = 0
    for i, (name, kind, dependent, length) in enumerate(VARIANTS):
        if only and name not in only:
            continue
        try:
            kwargs = dict(matrix_mixer_type=kind, is_data_dependent=dependent, d_model=D_MODEL, qk_dim=QK_DIM,
                          max_seq_len=HEADS if name == "mm_attention_fixed" else MAX_SEQ_LEN, d_conv=D_CONV,
                          expand=EXPAND, headdim=HEADDIM, chunk_size=CHUNK)

            def build():
                torch.manual_seed(SEED)
                m = mm_module.MatrixMixer(**kwargs)
                if name == "mm_vandermonde_fixed":
                    m.matrix_mixer = Vandermonde(False, D_MODEL, QK_DIM, is_dft=False, max_seq_len=MAX_SEQ_LEN,
                                                 expand=EXPAND, headdim=HEADDIM)
                return m.eval()

            layer = build()
            g = torch.Generator().manual_seed(SEED + 100 + i)
            redraw_(layer, g)
            x = torch.randn(2, length, D_MODEL, generator=g)
            o = run_patched(layer, x, [qs_module], ssd, ref)
            assert torch.isfinite(o).all() and float(o.std()) > 1e-3, f"{name}: degenerate output"
            config = dict(kwargs, is_dft=(name != "mm_vandermonde_fixed") if kind == "vandermonde" else None)
            extra = {"ssd": "ssd_minimal_discrete (quasiseparable only)", "norm": "rms_norm_ref", "device": "cpu",
                     "seq_len": length}
            common.write_fixture(out_dir, name, layer, config, {"x": x}, {"o": o}, extra)
            reload_check(name, out_dir, build(), x, [qs_module], ssd, ref, o)
        except Exception:
            failures += 1
            traceback.print_exc()
    return failures


def make_justdense(out_dir, justdense_dir) -> None:
    common.stub_triton()
    common.stub_packages(justdense_dir, ["layers"])
    build_matrix = importlib.import_module("layers.build_matrix")
    name = "justdense"
    # As JDiTransformer builds it (expand 1, headdim = d_model / nheads), here 3 heads of 2 channels over 8 tokens.
    kwargs = dict(matrix_mixer_type="dense", is_data_dependent=False, d_model=6, qk_dim=4, max_seq_len=8, nheads=3)

    def build():
        torch.manual_seed(SEED)
        return build_matrix.MatrixMixer(**kwargs).eval()

    layer = build()
    g = torch.Generator().manual_seed(SEED + 200)
    common.randomize_(layer, g)
    x = torch.randn(2, 8, 6, generator=g)
    with torch.no_grad():
        o, attn = layer(x, x, x)
    assert attn is None
    common.write_fixture(out_dir, name, layer, kwargs, {"x": x}, {"o": o},
                         {"device": "cpu", "unused_by_forward": ["in_proj", "norm", "out_proj"]})
    fresh = build()
    fresh.load_state_dict(load(os.path.join(out_dir, f"{name}.weights.safetensors")), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x, x, x)[0], o)
    print(f"[{name}] strict reload reproduces the output")


def stub_transformers():
    try:
        importlib.import_module("transformers")
        return
    except ImportError:
        pass
    names = ["transformers", "transformers.activations", "transformers.modeling_outputs", "transformers.models",
             "transformers.models.bert", "transformers.models.bert.modeling_bert"]
    for n in names:
        sys.modules[n] = types.ModuleType(n)
        sys.modules[n].__stub__ = True
    sys.modules["transformers"].__version__ = "not installed (import stub)"
    sys.modules["transformers.activations"].ACT2FN = {"gelu": torch.nn.GELU()}
    for cls in ("MaskedLMOutput", "SequenceClassifierOutput", "QuestionAnsweringModelOutput"):
        setattr(sys.modules["transformers.modeling_outputs"], cls, type(cls, (), {}))

    class BertPreTrainedModel(torch.nn.Module):
        def __init__(self, config, *args, **kwargs):
            super().__init__()
            self.config = config

        def post_init(self):
            pass

    sys.modules["transformers.models.bert.modeling_bert"].BertPreTrainedModel = BertPreTrainedModel


def make_hydra_bert(out_dir, mamba_dir, hydra_dir) -> None:
    ssd, ref = import_hydra(mamba_dir, hydra_dir)
    stub_transformers()
    sys.path.insert(0, os.path.join(hydra_dir, "hydra", "bert", "src"))
    sys.path.insert(0, os.path.join(hydra_dir, "hydra"))  # bert_layers imports `modules` from there
    bert_layers = importlib.import_module("bert_layers")
    hydra_module = sys.modules["modules.hydra"]
    name = "hydra_bert"
    config = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, max_position_embeddings=16, type_vocab_size=2,
                  layer_norm_eps=1e-12, hidden_dropout_prob=0.0, pad_token_id=0, hidden_act="gelu",
                  use_position_embeddings=False, matrix_mixer_type="hydra", is_prenorm=False, d_conv=3, expand=2,
                  chunk_size=4, d_state=8, is_data_dependent=True, qk_dim=4, headdim=8, is_decoder=False,
                  pool_all=False, use_return_dict=False)

    def build():
        torch.manual_seed(SEED)
        return bert_layers.BertForMaskedLM(types.SimpleNamespace(**config)).eval()

    model = build()
    g = torch.Generator().manual_seed(SEED + 300)
    common.randomize_(model, g)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight  # tied
    input_ids = torch.randint(0, 64, (2, 7), generator=g, dtype=torch.long)
    logits = run_patched(model, input_ids, [hydra_module], ssd, ref)[0]
    common.write_fixture(out_dir, name, model, config, {"input_ids": input_ids}, {"logits": logits},
                         {"device": "cpu", "ssd": "ssd_minimal_discrete", "norm": "rms_norm_ref",
                          "tied": {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}})
    reload_check(name, out_dir, build(), input_ids, [hydra_module], ssd, ref, logits, pick=lambda o: o[0])


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "Mix.Runtime.Tests", "Fixtures", "parity"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--mamba", required=True, help="folder holding the mamba_ssm package (state-spaces/mamba)")
    parser.add_argument("--hydra", required=True, help="folder holding goombalab/hydra's hydra/ (modules and bert)")
    parser.add_argument("--justdense", default=None, help="folder holding Thrillcrazyer/JustDense's layers/")
    parser.add_argument("--path", action="append", default=[], help="extra folder for sys.path (e.g. einops' source)")
    parser.add_argument("--only", default=None, help="comma-separated fixture names")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sys.path[:0] = [os.path.abspath(p) for p in args.path]
    print("versions:", common.versions())
    only = set(args.only.split(",")) if args.only else None
    failures = make_matrix_mixers(args.out, os.path.abspath(args.mamba), os.path.abspath(args.hydra), only)
    makers = []
    if args.justdense and (not only or "justdense" in only):
        makers.append(lambda: make_justdense(args.out, os.path.abspath(args.justdense)))
    if not only or "hydra_bert" in only:
        makers.append(lambda: make_hydra_bert(args.out, os.path.abspath(args.mamba), os.path.abspath(args.hydra)))
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
